"""Pruning past retention on a real PostgreSQL: what goes, and what must stay."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.retention import PRUNED, RetentionPolicy, prune_batch, unfinished
from storage.retention import RetentionRepository
from storage.uow import Database
from tests.support.pgstats import rows_read

pytestmark = pytest.mark.integration
NOW = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
POLICY = RetentionPolicy(dedupe=timedelta(days=14), email_records=timedelta(days=90),
                         batch_rows=2, guest_data=timedelta(days=30))


async def test_bookkeeping_past_retention_is_pruned_in_small_batches(database: Database) -> None:
    old, fresh = NOW - timedelta(days=15), NOW - timedelta(days=13)
    pool = database.pool
    await pool.executemany(
        "INSERT INTO processed_events (event_id, booking_id, processed_at) VALUES ($1, 'b', $2)",
        [(f"old-{i}", old) for i in range(5)] + [("fresh", fresh)])
    await pool.executemany(
        "INSERT INTO allocation_requests_done (request_id, restaurant_id, done_at)"
        " VALUES ($1, 'r', $2)", [("old-req", old), ("fresh-req", fresh)])
    await pool.executemany(
        "INSERT INTO submissions (restaurant_id, idempotency_key, booking_id, created_at)"
        " VALUES ('r', $1, 'b', $2)", [("old-key", old), ("fresh-key", fresh)])
    past, future = NOW.date() - timedelta(days=91), NOW.date() + timedelta(days=1)
    for bid, day in (("b-past", past), ("b-future", future)):
        await pool.execute(
            "INSERT INTO bookings (booking_id, restaurant_id, status, episode_kind,"
            " booking_date, start_time, party_size, source) VALUES ($1, 'r', 'confirmed',"
            " 'created', $2, '19:00', 2, 'guest')", bid, day)
    await pool.executemany(
        "INSERT INTO notifications (notification_id, booking_id, restaurant_id, kind,"
        " pending_ref, recipient, status, due_at) VALUES ($1, $2, 'r', $3, 'p', 'a@b.c', $4, $5)",
        [("past-sent", "b-past", "confirmed", "sent", NOW),
         ("past-skipped", "b-past", "request_received", "skipped", NOW),
         ("past-due", "b-past", "cancelled", "due", NOW),  # still to send: never pruned
         ("future-sent", "b-future", "confirmed", "sent", NOW)])

    # Guest data kept longer than email records here: its erasure would cancel (and so
    # let this prune) the email still due (test below).
    policy = replace(POLICY, guest_data=timedelta(days=365))
    rounds = []
    tables: Collection[str] = PRUNED
    while tables:
        async with database.transaction() as uow:
            deleted = await prune_batch(uow, policy, NOW, tables)
        rounds.append(deleted)
        tables = unfinished(deleted, policy)
    # A table whose batch was not full is not searched again in the round.
    assert rounds == [
        {"processed_events": 2, "allocation_requests_done": 1, "submissions": 1,
         "notifications": 2, "guest_data": 0},
        {"processed_events": 2, "notifications": 0},
        {"processed_events": 1},
    ]

    async def ids(sql: str) -> set[str]:
        return {r[0] for r in await pool.fetch(sql)}

    assert await ids("SELECT event_id FROM processed_events") == {"fresh"}
    assert await ids("SELECT request_id FROM allocation_requests_done") == {"fresh-req"}
    assert await ids("SELECT idempotency_key FROM submissions") == {"fresh-key"}
    assert await ids("SELECT notification_id FROM notifications") == {"past-due", "future-sent"}
    assert await ids("SELECT booking_id FROM bookings") == {"b-past", "b-future"}


async def test_guest_data_past_retention_is_erased_in_small_batches_keeping_the_facts(
    database: Database, settings: Any,
) -> None:
    from tests.integration.test_erasure import guest, seed
    from tests.support.privacy import traces_in_database

    old_day = NOW.date() - timedelta(days=31)  # POLICY keeps guest data 30 days
    old = {f"b-old-{i}": guest(f"o{i}", "Old") for i in range(3)}
    fresh = guest("f1", "Fresh")
    for bid, who in old.items():
        await seed(database.pool, bid, "r", who, day=old_day)
    await seed(database.pool, "b-fresh", "r", fresh, day=NOW.date() - timedelta(days=29))

    erased = []
    while True:
        async with database.transaction() as uow:
            erased.append((await prune_batch(uow, POLICY, NOW))["guest_data"])
        if erased[-1] < POLICY.batch_rows:
            break
    assert erased == [2, 1]  # small batches, then nothing left

    rows = {r["booking_id"]: r for r in await database.pool.fetch(
        "SELECT booking_id, status, party_size, booking_date, customer_name, customer_email,"
        " customer_phone, notes, erased_at FROM bookings")}
    for bid in old:
        r = rows[bid]
        assert (r["status"], r["party_size"], r["booking_date"]) == ("confirmed", 2, old_day)
        assert (r["customer_name"], r["customer_email"], r["customer_phone"], r["notes"]) == (
            None, None, None, None)
        assert r["erased_at"] == NOW
    assert rows["b-fresh"]["customer_email"] == fresh["customer_email"]
    assert rows["b-fresh"]["erased_at"] is None
    assert await traces_in_database(settings.database_url,
                                    [v for who in old.values() for v in who.values()]) == []
    assert await traces_in_database(settings.database_url, [fresh["customer_email"]])


@pytest.mark.parametrize("table", ["processed_events", "allocation_requests_done"])
async def test_a_prune_batch_reads_the_rows_it_deletes_not_the_table(
    database: Database, table: str
) -> None:
    """Found by bench.soak: each batch of 1,000 scanned the whole table (the dedupe
    window's rows), so pruning cost grew with the window, not with what it deleted."""
    kept, old = 40_000, 3_000
    key, age = {"processed_events": ("event_id", "processed_at"),
                "allocation_requests_done": ("request_id", "done_at")}[table]
    other = "booking_id" if table == "processed_events" else "restaurant_id"
    async with database.pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {table} ({key}, {other}, {age})"
            f" SELECT 'k' || i, 'x', $1::timestamptz + i * interval '1 ms'"
            f" FROM generate_series(1, $2) AS i",
            NOW - timedelta(days=15), old)
        await conn.execute(
            f"INSERT INTO {table} ({key}, {other}, {age})"
            f" SELECT 'f' || i, 'x', $1::timestamptz FROM generate_series(1, $2) AS i",
            NOW, kept)
        await conn.execute(f"ANALYZE {table}")

        before = await rows_read(conn, table)
        # As a worker's connection plans it after a few rounds: one plan for any values.
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        async with conn.transaction():
            deleted = await RetentionRepository(conn).prune_older_than(
                table, NOW - POLICY.dedupe, limit=1_000)
        assert deleted == 1_000
        assert await rows_read(conn, table) - before < kept  # it did not scan the table
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == kept + old - 1_000
