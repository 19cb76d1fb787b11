"""The allocation service against real PostgreSQL (no broker): wiring, re-seating, constraint."""

from __future__ import annotations

from datetime import date, time, timedelta

import asyncpg
import pytest

from config.settings import Settings
from domain.allocation import Window, booking_window, reach
from models.events import AllocationRequest
from models.restaurant import RestaurantConfig
from producers.publisher import make_cancel, make_change
from services.allocation import AllocationPolicy, run_requests
from services.changes import ChangePolicy, apply_changes
from services.restaurants import apply_restaurant
from storage import db
from storage.bookings import BookingRepository, SeatingQuery
from storage.uow import Database
from tests.support.pgstats import rows_read

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
async def database(settings: Settings):
    database = Database(await db.create_pool(settings.database_url))
    yield database
    await database.close()


async def step(database: Database, change, *, repack: bool) -> None:
    """Apply one change, then the allocation requests it caused, like the two agents do."""
    async with database.transaction() as uow:
        result = await apply_changes(uow, [change], CHANGES)
    requests = [AllocationRequest.model_validate(r.value) for r in result.rows
                if r.topic == "allocation-requests"]
    if requests:
        async with database.transaction() as uow:
            await run_requests(uow, requests, AllocationPolicy([], timedelta(seconds=2), repack))


async def tables_of(database: Database, booking_id: str) -> tuple[str, ...]:
    async with database.transaction() as uow:
        return (await uow.bookings.table_ids_of([booking_id])).get(booking_id, ())


async def status_of(database: Database, booking_id: str) -> str:
    return await database.pool.fetchval(
        "SELECT status FROM bookings WHERE booking_id = $1", booking_id)


@pytest.mark.parametrize("repack", [True, False])
async def test_a_party_of_four_is_seated_by_moving_a_couple_off_the_four_top(
    database: Database, repack: bool
) -> None:
    async with database.transaction() as uow:
        await apply_restaurant(uow, two_tables(), CHANGES)
    await step(database, create("early", "18:00", 2, end="19:00"), repack=repack)
    await step(database, create("couple", "18:30", 2, end="19:30"), repack=repack)
    assert await tables_of(database, "early") == ("a",)
    assert await tables_of(database, "couple") == ("b",)  # a was taken at 18:30
    await step(database, make_cancel("early", "r-repack"), repack=repack)

    await step(database, create("four", "19:00", 4, end="20:00"), repack=repack)

    if repack:
        assert await status_of(database, "four") == "confirmed"
        assert await tables_of(database, "four") == ("b",)
        assert await tables_of(database, "couple") == ("a",)
        moved = await database.pool.fetch(
            "SELECT payload FROM outbox WHERE topic = 'ops-events'"
            " AND convert_from(payload, 'UTF8')::jsonb->>'event_type' = 'booking.tables_reassigned'"
        )
        assert len(moved) == 1
    else:
        assert await status_of(database, "four") == "pending"
        assert await tables_of(database, "couple") == ("b",)


async def test_the_exclusion_constraint_refuses_a_double_booking(database: Database) -> None:
    async with database.transaction() as uow:
        await apply_restaurant(uow, two_tables(), CHANGES)
    await step(database, create("one", "19:00", 2), repack=False)
    await step(database, create("two", "19:30", 2), repack=False)
    one, two = await tables_of(database, "one"), await tables_of(database, "two")
    assert one == ("a",) and two == ("b",)
    async with database.pool.acquire() as conn:
        with pytest.raises(asyncpg.exceptions.ExclusionViolationError):
            await conn.execute(
                "INSERT INTO booking_tables (booking_id, table_key, restaurant_id, booking_date,"
                " during) SELECT 'two', table_key, 'r-repack', $1::date,"
                " tsrange($1::date + time '19:30', $1::date + time '20:30')"
                " FROM restaurant_tables WHERE restaurant_id = 'r-repack' AND table_id = 'a'",
                date.fromisoformat(DAY),
            )


async def test_a_batch_over_adjacent_days_sees_each_booking_on_its_tables_once(
    database: Database,
) -> None:
    """A booking on the second of two dates in one batch matches both (the first date's
    neighbour, and its own): it still sits on its tables once. A doubled table list made
    re-seating refuse to move it (`_can_move` compares the lists)."""
    async with database.transaction() as uow:
        await apply_restaurant(uow, two_tables(), CHANGES)
    day = date.fromisoformat(DAY)
    next_day = day + timedelta(days=1)
    await step(database, make_change("booking.created", "tomorrow", "r-repack",
                                     booking_date=next_day.isoformat(), start_time="19:00",
                                     party_size=4, customer_name="G"), repack=False)
    await step(database, create("today", "19:00", 2), repack=False)
    async with database.transaction() as uow:
        seated = await uow.bookings.seated([SeatingQuery("r-repack", day),
                                            SeatingQuery("r-repack", next_day)])
    assert {bid: s.table_ids for bid, s in seated["r-repack"].items()} == {
        "today": ("a",), "tomorrow": ("b",)}


async def test_a_request_that_never_got_an_answer_is_asked_for_again(database: Database) -> None:
    from datetime import UTC, datetime

    from services.allocation import STUCK_QUEUED, enqueue_due_attempts

    async with database.transaction() as uow:
        await apply_restaurant(uow, two_tables(), CHANGES)
        await apply_changes(uow, [create("lost", "19:00", 2)], CHANGES)  # request never run
    now = datetime.now(UTC)
    async with database.transaction() as uow:
        assert await enqueue_due_attempts(uow, now=now) == []  # still fresh: not re-asked
    async with database.transaction() as uow:
        rows = await enqueue_due_attempts(uow, now=now + STUCK_QUEUED + timedelta(seconds=1))
    assert [(r.value["booking_id"], r.value["reason"]) for r in rows] == [("lost", "retry")]


@pytest.mark.parametrize("plan_cache_mode", ["auto", "force_generic_plan"])
async def test_the_retry_timer_reads_the_due_attempts_not_every_pending_booking(
    database: Database, plan_cache_mode: str
) -> None:
    """Found by bench.soak: each tick of the retry timer walked every pending booking
    (those out of attempts pile up), under the generic plan a worker's connection settles on."""
    from datetime import UTC, datetime

    from services.allocation import STUCK_QUEUED

    now = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
    stale = now - STUCK_QUEUED - timedelta(seconds=1)
    async with database.pool.acquire() as conn:
        # 8,000 pending out of attempts and 192,000 confirmed, as late in bench.soak; then
        # what the timer must take: retries due, a request never answered; and what not.
        await conn.execute(
            "INSERT INTO bookings (booking_id, restaurant_id, status, episode_kind,"
            " booking_date, start_time, party_size, source, alloc_state, attempts, updated_at)"
            " SELECT 'b' || i, 'r' || (i % 200), CASE WHEN i % 25 = 0 THEN 'pending'"
            "  ELSE 'confirmed' END, 'created', date '2031-06-01' + i % 60, time '19:00', 2,"
            "  'web', CASE WHEN i % 25 = 0 THEN 'exhausted' ELSE 'done' END, 4, $1"
            " FROM generate_series(1, 200000) AS i", stale)
        # And a few hundred in flight: retries not yet due, requests just made.
        await conn.execute(
            "INSERT INTO bookings (booking_id, restaurant_id, status, episode_kind,"
            " booking_date, start_time, party_size, source, alloc_state, attempts,"
            " next_attempt_at, updated_at)"
            " SELECT 'f' || i, 'r' || (i % 200), 'pending', 'created', date '2031-06-01',"
            "  time '19:00', 2, 'web', CASE WHEN i % 2 = 0 THEN 'retry' ELSE 'queued' END, 1,"
            "  CASE WHEN i % 2 = 0 THEN $1::timestamptz + interval '1 minute' END, $1"
            " FROM generate_series(1, 400) AS i", now)
        await conn.executemany(
            "INSERT INTO bookings (booking_id, restaurant_id, status, episode_kind,"
            " booking_date, start_time, party_size, source, alloc_state, attempts,"
            " next_attempt_at, updated_at) VALUES ($1, 'r1', $2, 'created', date '2031-06-01',"
            " time '19:00', 2, 'web', $3, 1, $4, $5)",
            [("due-1", "pending", "retry", now - timedelta(seconds=5), stale),
             ("due-2", "pending", "retry", now, stale),
             ("never-answered", "pending", "queued", None, stale),
             ("later", "pending", "retry", now + timedelta(seconds=5), stale),
             ("fresh", "pending", "queued", None, now),
             # Cannot happen (leaving pending sets alloc_state done); if it did, not retried.
             ("left-pending", "confirmed", "retry", now - timedelta(seconds=5), stale)])
        await conn.execute("ANALYZE bookings")

        before = await rows_read(conn, "bookings")
        await conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        async with conn.transaction():
            due = await BookingRepository(conn).take_due_attempts(
                now=now, stuck_after=STUCK_QUEUED, limit=100)
        read = await rows_read(conn, "bookings") - before

    assert sorted(d.booking_id for d in due) == ["due-1", "due-2", "never-answered"]
    assert read < 100, f"the retry timer read {read} rows to find {len(due)}"


async def test_a_decision_reads_only_the_bookings_within_its_reach(database: Database) -> None:
    """With a window, `seated` returns exactly the bookings of the whole dates that meet
    `allocation.reach` of it (the longest window taken from those rows): the next day's
    are left out, an earlier service's kept while a re-seating chain can reach them."""
    cfg = RestaurantConfig.model_validate({
        **two_tables().model_dump(),
        "tables": [{"table_id": f"t{i}", "capacity": 4} for i in range(6)],
        "services": [{"name": "lunch", "start": "12:00", "end": "15:00", "allow_overrun": True},
                     {"name": "dinner", "start": "17:00", "end": "23:00"}],
    })
    async with database.transaction() as uow:
        await apply_restaurant(uow, cfg, CHANGES)
    day = date.fromisoformat(DAY)
    for offset, start in ((-1, "21:00"), (0, "12:00"), (0, "14:30"), (0, "18:00"),
                          (0, "20:30"), (0, "22:00"), (1, "12:00"), (1, "19:00")):
        on = day + timedelta(days=offset)
        await step(database, make_change(
            "booking.created", f"b-{on}-{start}", "r-repack", booking_date=on.isoformat(),
            start_time=start, party_size=2, customer_name="G"), repack=False)
    window = booking_window(cfg, day, time(19), None, 2)
    assert isinstance(window, Window)
    async with database.transaction() as uow:
        whole = (await uow.bookings.seated([SeatingQuery("r-repack", day)]))["r-repack"]
        near = (await uow.bookings.seated([SeatingQuery("r-repack", day, window)]))["r-repack"]
    longest = max(s.window.blocked_until - s.window.start for s in whole.values())
    span = reach(window, longest)
    assert span is not None
    expected = {b: s for b, s in whole.items()
                if s.window.blocked_until > span[0] and s.window.start < span[1]}
    assert near == expected
    assert f"b-{day + timedelta(days=1)}-19:00" in whole and len(near) < len(whole)
    # Lunch ends before dinner starts, yet a re-seating chain may reach it: kept.
    assert near[f"b-{day}-14:30"].window.blocked_until <= window.service_start
