"""The email claim on a real PostgreSQL: which rows it takes, and what it reads to find them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.notifications import NotificationRepository
from storage.uow import Database
from tests.support.pgstats import rows_read

pytestmark = pytest.mark.integration
NOW = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("plan_cache_mode", ["auto", "force_generic_plan"])
async def test_a_claim_reads_the_due_rows_not_those_still_held(
    database: Database, plan_cache_mode: str
) -> None:
    """Found by bench.soak: each claim walked every email still held in its inline window
    (~640 index entries per change), because only one branch of its OR bounded due_at."""
    held, sent = 20_000, 100_000
    rows = (
        [(f"held-{i}", "held", NOW + timedelta(seconds=2), None) for i in range(held)]
        + [(f"due-{i}", "due", NOW - timedelta(seconds=1), None) for i in range(5)]
        + [(f"held-due-{i}", "held", NOW - timedelta(seconds=1), None) for i in range(2)]
        # Leases run from when the row fell due: out ones are claimed again, live ones not.
        + [(f"lease-out-{i}", "sending", NOW - timedelta(minutes=5), NOW - timedelta(seconds=1))
           for i in range(3)]
        + [(f"lease-live-{i}", "sending", NOW - timedelta(seconds=10), NOW + timedelta(seconds=50))
           for i in range(2)]
        # As in a live database: most email records are done with (the index skips them).
        + [(f"sent-{i}", "sent", NOW - timedelta(minutes=1), None) for i in range(sent)]
    )
    async with database.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO notifications (notification_id, booking_id, restaurant_id, kind,"
            " pending_ref, status, due_at, lease_until)"
            " SELECT x.id, x.id, 'r', 'booking_confirmed', 'p', x.status, x.due_at, x.lease_until"
            " FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])"
            "  AS x(id, status, due_at, lease_until)",
            *map(list, zip(*rows, strict=True)))
        await conn.execute("ANALYZE notifications")

        before = await rows_read(conn, "notifications")
        await conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        async with conn.transaction():
            claimed = await NotificationRepository(conn).lock_due(now=NOW, limit=100)
        read = await rows_read(conn, "notifications") - before

    assert sorted(r["notification_id"] for r in claimed) == sorted(
        [f"due-{i}" for i in range(5)] + [f"held-due-{i}" for i in range(2)]
        + [f"lease-out-{i}" for i in range(3)])
    assert [r["due_at"] for r in claimed] == sorted(r["due_at"] for r in claimed)
    assert read < 100, f"the claim read {read} rows to find {len(claimed)}"
