"""What PostgreSQL read for a statement: a test of a query's plan that does not depend on
timing, only on the rows the plan walks."""

from __future__ import annotations

import asyncpg


async def rows_read(conn: asyncpg.Connection, table: str) -> int:
    """Rows of `table` read so far by scans of it plus entries read from its indexes (this
    backend's counts flushed first, a fresh snapshot of the statistics read)."""
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return await conn.fetchval(
        "SELECT t.seq_tup_read + coalesce((SELECT sum(i.idx_tup_read)"
        "  FROM pg_stat_user_indexes i WHERE i.relid = t.relid), 0)"
        " FROM pg_stat_user_tables t WHERE t.relname = $1", table)
