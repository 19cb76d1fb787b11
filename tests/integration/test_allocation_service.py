"""The allocation service against real PostgreSQL (no broker): wiring, re-seating, constraint."""

from __future__ import annotations

from datetime import date, timedelta

import asyncpg
import pytest

from models.events import AllocationRequest
from models.restaurant import RestaurantConfig
from producers.publisher import make_cancel, make_change
from seatflow.settings import Settings
from services.allocation import AllocationPolicy, run_requests
from services.changes import ChangePolicy, apply_changes
from services.restaurants import apply_restaurant
from storage import db, repository

DAY = "2030-06-14"
CHANGES = ChangePolicy(auto_assign=True, inline_window=timedelta(seconds=2))


def two_tables() -> RestaurantConfig:
    return RestaurantConfig.model_validate(
        {
            "restaurant_id": "r-repack",
            "name": "Repack",
            "slug": "repack",
            "tables": [
                {"table_id": "a", "capacity": 2, "max_party": 2},
                {"table_id": "b", "capacity": 4, "max_party": 4},
            ],
            "services": [{"name": "dinner", "start": "17:00", "end": "23:00",
                          "allow_overrun": True}],
        }
    )


def create(booking_id: str, start: str, party: int, end: str | None = None):
    return make_change("booking.created", booking_id, "r-repack", booking_date=DAY,
                       start_time=start, end_time=end, party_size=party, customer_name="G")


@pytest.fixture
async def pool(settings: Settings):
    pool = await db.create_pool(settings.database_url)
    yield pool
    await pool.close()


async def step(pool: asyncpg.Pool, change, *, repack: bool) -> None:
    """Apply one change, then the allocation requests it caused, like the two agents do."""
    async with pool.acquire() as conn, conn.transaction():
        result = await apply_changes(conn, [change], CHANGES)
    requests = [AllocationRequest.model_validate(r.value) for r in result.rows
                if r.topic == "allocation-requests"]
    if requests:
        async with pool.acquire() as conn, conn.transaction():
            await run_requests(conn, requests, AllocationPolicy([], timedelta(seconds=2), repack))


async def tables_of(pool: asyncpg.Pool, booking_id: str) -> tuple[str, ...]:
    async with pool.acquire() as conn:
        return (await repository.table_ids_of(conn, [booking_id])).get(booking_id, ())


async def status_of(pool: asyncpg.Pool, booking_id: str) -> str:
    return await pool.fetchval("SELECT status FROM bookings WHERE booking_id = $1", booking_id)


@pytest.mark.parametrize("repack", [True, False])
async def test_a_party_of_four_is_seated_by_moving_a_couple_off_the_four_top(
    pool: asyncpg.Pool, repack: bool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await apply_restaurant(conn, two_tables(), CHANGES)
    await step(pool, create("early", "18:00", 2, end="19:00"), repack=repack)
    await step(pool, create("couple", "18:30", 2, end="19:30"), repack=repack)
    assert await tables_of(pool, "early") == ("a",)
    assert await tables_of(pool, "couple") == ("b",)  # a was taken at 18:30
    await step(pool, make_cancel("early", "r-repack"), repack=repack)

    await step(pool, create("four", "19:00", 4, end="20:00"), repack=repack)

    if repack:
        assert await status_of(pool, "four") == "confirmed"
        assert await tables_of(pool, "four") == ("b",)
        assert await tables_of(pool, "couple") == ("a",)
        moved = await pool.fetch(
            "SELECT payload FROM outbox WHERE topic = 'ops-events'"
            " AND convert_from(payload, 'UTF8')::jsonb->>'event_type' = 'booking.tables_reassigned'"
        )
        assert len(moved) == 1
    else:
        assert await status_of(pool, "four") == "pending"
        assert await tables_of(pool, "couple") == ("b",)


async def test_the_exclusion_constraint_refuses_a_double_booking(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await apply_restaurant(conn, two_tables(), CHANGES)
    await step(pool, create("one", "19:00", 2), repack=False)
    await step(pool, create("two", "19:30", 2), repack=False)
    one, two = await tables_of(pool, "one"), await tables_of(pool, "two")
    assert one == ("a",) and two == ("b",)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.exceptions.ExclusionViolationError):
            await conn.execute(
                "INSERT INTO booking_tables (booking_id, table_key, restaurant_id, booking_date,"
                " during) SELECT 'two', table_key, 'r-repack', $1::date,"
                " tsrange($1::date + time '19:30', $1::date + time '20:30')"
                " FROM restaurant_tables WHERE restaurant_id = 'r-repack' AND table_id = 'a'",
                date.fromisoformat(DAY),
            )


async def test_a_request_that_never_got_an_answer_is_asked_for_again(pool: asyncpg.Pool) -> None:
    from datetime import UTC, datetime

    from services.allocation import STUCK_QUEUED, claim_due_retries

    async with pool.acquire() as conn, conn.transaction():
        await apply_restaurant(conn, two_tables(), CHANGES)
        await apply_changes(conn, [create("lost", "19:00", 2)], CHANGES)  # request never run
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        assert await claim_due_retries(conn, now=now) == []  # still fresh: not re-asked
    async with pool.acquire() as conn, conn.transaction():
        rows = await claim_due_retries(conn, now=now + STUCK_QUEUED + timedelta(seconds=1))
    assert [(r.value["booking_id"], r.value["reason"]) for r in rows] == [("lost", "retry")]
