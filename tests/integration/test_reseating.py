"""Re-seating on a real PostgreSQL (docs/interface.md §4): a move is published truthfully,
and a booking another transaction is changing is never moved."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from models.events import AllocationRequest
from models.restaurant import RestaurantConfig
from producers.publisher import make_change
from services.allocation import AllocationPolicy, run_requests
from services.changes import ChangePolicy, apply_changes
from services.restaurants import apply_restaurant
from storage import db
from storage.outbox import OutboxRow
from storage.uow import Database

pytestmark = pytest.mark.integration
DAY = "2031-06-14"
CHANGES = ChangePolicy(auto_assign=True, inline_window=timedelta(seconds=2))
RESEAT = AllocationPolicy([60.0], timedelta(seconds=2), repack=True)
TIDY = AllocationPolicy([60.0], timedelta(seconds=2), repack=True, tidy_moves=True)


def two_tables() -> RestaurantConfig:
    """A two-top and a four-top: a couple on the four-top blocks a party of four unless it
    moves to the two-top."""
    return RestaurantConfig.model_validate({
        "restaurant_id": "r-move", "name": "Move", "slug": "move",
        "tables": [{"table_id": "a", "capacity": 2, "max_party": 2},
                   {"table_id": "b", "capacity": 4, "max_party": 4}],
    })


def create(booking_id: str, start: str, party: int, end: str):
    return make_change("booking.created", booking_id, "r-move", booking_date=DAY,
                       start_time=start, end_time=end, party_size=party, customer_name="G")


@pytest.fixture
async def database(settings: Any):
    database = Database(await db.create_pool(settings.database_url, size=4))
    async with database.transaction() as uow:
        await apply_restaurant(uow, two_tables(), CHANGES)
    yield database
    await database.close()


async def step(database: Database, change, policy: AllocationPolicy = RESEAT
               ) -> list[OutboxRow]:
    """Apply a change, then the allocation requests it caused; returns what was published."""
    async with database.transaction() as uow:
        result = await apply_changes(uow, [change], CHANGES)
    requests = [AllocationRequest.model_validate(r.value) for r in result.rows
                if r.topic == "allocation-requests"]
    async with database.transaction() as uow:
        decided = await run_requests(uow, requests, policy)
    return result.rows + decided.rows


async def couple_on_the_four_top(database: Database) -> None:
    await step(database, create("early", "18:00", 2, "19:00"))   # takes a
    await step(database, create("couple", "18:30", 2, "19:30"))  # a is taken: b
    async with database.transaction() as uow:
        tables = await uow.bookings.table_ids_of(["early", "couple"])
    assert tables == {"early": ("a",), "couple": ("b",)}
    await step(database, make_change("booking.cancelled", "early", "r-move"))  # a is free


async def test_a_move_is_published_as_tables_changed_with_the_next_version(
    database: Database,
) -> None:
    await couple_on_the_four_top(database)
    rows = await step(database, create("four", "19:00", 4, "20:00"))

    status = [r.value for r in rows if r.topic == "booking-status"]
    moved = [e for e in status if e["type"] == "booking.tables_changed"]
    (event,) = moved
    assert event["booking_id"] == "couple" and event["status"] == "confirmed"
    assert event["table_ids"] == ["a"] and event["booking_version"] == 3  # pending, confirmed
    confirmed = [e for e in status if e["type"] == "booking.confirmed"]
    assert [(e["booking_id"], e["table_ids"]) for e in confirmed] == [("four", ["b"])]
    ops = [r.value for r in rows if r.topic == "ops-events"
           and r.value["event_type"] == "booking.tables_reassigned"]
    assert ops[0]["booking_id"] == "couple"
    assert ops[0]["context"] == {"from": ["b"], "to": ["a"], "to_seat_booking_id": "four"}
    async with database.transaction() as uow:
        view = await uow.bookings.view("couple")
        mails = await uow.notifications.of_booking("couple")
    assert view is not None and view["table_ids"] == ["a"] and view["version"] == 3
    assert [m["kind"] for m in mails] == ["request_received", "confirmed"]  # no email for a move
    # The event's id derives from its version: a second move of the couple is another event.
    assert len({e["event_id"] for e in status}) == len(status)


async def test_a_booking_being_changed_right_now_is_not_moved(database: Database) -> None:
    await couple_on_the_four_top(database)
    # Another transaction (the changes agent editing the couple) holds its row.
    async with database.pool.acquire() as other:
        async with other.transaction():
            await other.execute("SELECT 1 FROM bookings WHERE booking_id = 'couple' FOR UPDATE")
            async with database.transaction() as uow:
                result = await apply_changes(uow, [create("four", "19:00", 4, "20:00")], CHANGES)
            requests = [AllocationRequest.model_validate(r.value) for r in result.rows
                        if r.topic == "allocation-requests"]
            async with database.transaction() as uow:
                decided = await run_requests(uow, requests, RESEAT)
    assert (decided.moved, decided.moves_refused, decided.failed) == (0, 1, 1)
    async with database.transaction() as uow:
        tables = await uow.bookings.table_ids_of(["couple", "four"])
        four = await uow.bookings.view("four")
    assert tables == {"couple": ("b",)}
    assert four is not None and four["status"] == "pending" and four["alloc_state"] == "retry"

    # Once the row is free, the retry re-seats: it was the lock, nothing else.
    async with database.transaction() as uow:
        again = await run_requests(uow, [AllocationRequest(
            restaurant_id="r-move", reason="retry", booking_id="four",
            pending_ref=four["pending_ref"], attempt=2,
            request_id=AllocationRequest.attempt_id("four", four["pending_ref"], 2))], RESEAT)
    assert (again.moved, again.confirmed) == (1, 1)
    published = [json.loads(r.payload) for r in again.rows if r.topic == "booking-status"]
    assert {e["type"] for e in published} == {"booking.tables_changed", "booking.confirmed"}


def three_tables() -> RestaurantConfig:
    """A three-top, a four-top and a six-top."""
    return RestaurantConfig.model_validate({
        "restaurant_id": "r-tidy", "name": "Tidy", "slug": "tidy",
        "tables": [{"table_id": "t3", "capacity": 3}, {"table_id": "t4", "capacity": 4},
                   {"table_id": "t6", "capacity": 6}],
    })


async def seat_a_four_beside_a_three(database: Database, policy: AllocationPolicy
                                    ) -> list[OutboxRow]:
    """A four finds only the six-top free while a three sits at the four-top and the
    three-top is free."""
    async with database.transaction() as uow:
        await apply_restaurant(uow, three_tables(), CHANGES)

    def tidy_create(booking_id: str, start: str, party: int, end: str | None = None):
        return make_change("booking.created", booking_id, "r-tidy", booking_date=DAY,
                           start_time=start, end_time=end, party_size=party, customer_name="G")

    await step(database, tidy_create("early", "18:00", 3, "19:00"), policy)  # takes t3
    await step(database, tidy_create("three", "19:00", 3), policy)  # t3 held until 19:05: t4
    await step(database, make_change("booking.cancelled", "early", "r-tidy"), policy)
    return await step(database, tidy_create("four", "19:00", 4), policy)  # t3 is free now


async def test_a_booking_that_can_be_seated_moves_nobody(database: Database) -> None:
    """Contract §4: confirmed bookings move only when a booking cannot otherwise be seated.
    The four fits the six-top, so the three stays where it is and nothing else is said."""
    rows = await seat_a_four_beside_a_three(database, RESEAT)
    status = [r.value for r in rows if r.topic == "booking-status"]
    assert [e["type"] for e in status] == ["booking.pending", "booking.confirmed"]
    assert {e["booking_id"] for e in status} == {"four"}
    assert status[-1]["table_ids"] == ["t6"]
    async with database.transaction() as uow:
        tables = await uow.bookings.table_ids_of(["three", "four"])
    assert tables == {"three": ("t4",), "four": ("t6",)}


async def test_an_opt_in_move_that_only_saves_seats_is_published_like_any_other(
    database: Database,
) -> None:
    """SEATFLOW_ALLOCATION_TIDY_MOVES: the three moves to the three-top
    (booking.tables_changed, no email) and the four takes the four-top, so the six-top stays
    free for a party only it can seat."""
    rows = await seat_a_four_beside_a_three(database, TIDY)

    status = [r.value for r in rows if r.topic == "booking-status"]
    (moved,) = [e for e in status if e["type"] == "booking.tables_changed"]
    assert (moved["booking_id"], moved["table_ids"], moved["status"]) == (
        "three", ["t3"], "confirmed")
    confirmed = [e for e in status if e["type"] == "booking.confirmed"]
    assert [(e["booking_id"], e["table_ids"]) for e in confirmed] == [("four", ["t4"])]
    async with database.transaction() as uow:
        tables = await uow.bookings.table_ids_of(["three", "four"])
        mails = await uow.notifications.of_booking("three")
    assert tables == {"three": ("t3",), "four": ("t4",)}
    assert [m["kind"] for m in mails] == ["request_received", "confirmed"]  # no email for a move
