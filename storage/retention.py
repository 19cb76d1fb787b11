"""Pruning append-only bookkeeping past its retention, in small batches.

Each call deletes at most `limit` rows of one table (SKIP LOCKED: workers pruning at the same
time take different rows, and nothing on the hot path waits for a pruner)."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

# table -> the row's age column: the tables pruned by age.
_AGE_OF = {
    "processed_events": "processed_at",
    "allocation_requests_done": "done_at",
    "submissions": "created_at",
}


class RetentionRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # Both deletes name their rows by ctid (a TID scan: straight to each row). Written as
    # `key IN (subquery)`, the planner may join the batch against a scan of the whole
    # table, which holds the retention window's rows (bench.soak: ~70 rows read per change).

    async def prune_older_than(self, table: str, before: datetime, *, limit: int) -> int:
        age = _AGE_OF[table]
        result = await self.conn.execute(
            # Oldest first, by the age index (migration 0005).
            f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}"
            f" WHERE {age} < $1 ORDER BY {age} LIMIT $2 FOR UPDATE SKIP LOCKED))",
            before,
            limit,
        )
        return int(result.split()[-1])

    async def prune_email_records(self, before_day: date, *, limit: int) -> int:
        """Final email rows (sent, failed, skipped, suppressed, cancelled) of bookings dated
        before `before_day`. Rows still to be sent are never pruned."""
        result = await self.conn.execute(
            "DELETE FROM notifications WHERE ctid = ANY(ARRAY("
            " SELECT n.ctid FROM notifications n JOIN bookings b USING (booking_id)"
            " WHERE b.booking_date < $1 AND n.status NOT IN ('held', 'due', 'sending')"
            " LIMIT $2 FOR UPDATE OF n SKIP LOCKED))",
            before_day,
            limit,
        )
        return int(result.split()[-1])

    async def table_sizes(self) -> dict[str, int]:
        """Bytes on disk per table (with indexes and TOAST), for benchmarks and ops."""
        rows = await self.conn.fetch(
            "SELECT relname, pg_total_relation_size(c.oid) AS bytes FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
        return {r["relname"]: r["bytes"] for r in rows}
