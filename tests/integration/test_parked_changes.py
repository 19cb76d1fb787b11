"""Changes parked until their restaurant is configured (docs/interface.md §4), on a real
PostgreSQL: one that fails once released is undone alone and handed back with the message
it came in; the configuration and the other changes stay."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from producers.publisher import make_change
from services.changes import ChangePolicy, apply_changes
from services.restaurants import apply_restaurant
from storage.intake import SourceMessage
from storage.uow import Database
from tests.integration.conftest import restaurant

pytestmark = pytest.mark.integration
CHANGES = ChangePolicy(auto_assign=True, inline_window=timedelta(seconds=2))


def created(rid: str, bid: str, **booking: Any):
    fields = {"booking_date": "2031-06-14", "start_time": "19:00", "end_time": "20:30",
              "party_size": 2, "customer_name": "G", **booking}
    return make_change("booking.created", bid, rid, **fields)


async def test_a_released_change_that_fails_is_undone_alone_and_keeps_its_message(
    database: Database,
) -> None:
    rid = f"r-park-{uuid.uuid4().hex[:8]}"
    good, bad, later = created(rid, f"{rid}-good"), created(
        # The hold of a booking ending 23:59 on 9999-12-31 runs past the last date Python
        # can represent: valid input that fails in processing.
        rid, f"{rid}-bad", booking_date="9999-12-31", start_time="22:00", end_time="23:59",
    ), make_change("booking.updated", f"{rid}-good", rid, booking_date="2031-06-14",
                   start_time="19:00", end_time="20:30", party_size=2, customer_name="G",
                   notes="window seat")
    sources = {
        c.event_id: SourceMessage("t.booking-changes", 3, 100 + i, 1_700_000_000_000,
                                  c.booking.booking_id.encode(), c.model_dump_json().encode(),
                                  (("trace", b"abc"),))
        for i, c in enumerate([good, bad, later])
    }
    async with database.transaction() as uow:
        parked = await apply_changes(uow, [good, bad, later], CHANGES, sources=sources)
    assert parked.parked == 3

    async with database.transaction() as uow:
        result = await apply_restaurant(uow, restaurant(rid), CHANGES)

    [failed] = result.failed
    assert failed.change.booking_id == f"{rid}-bad"
    assert failed.change.source == sources[bad.event_id]  # topic, offset, bytes, headers
    assert isinstance(failed.error, OverflowError | ValueError)
    note = [r.value for r in result.rows if r.topic == "ops-events"][-1]
    assert note["event_type"] == "restaurant.configured"
    assert (note["context"]["released_parked_changes"],
            note["context"]["failed_parked_changes"]) == (3, 1)
    async with database.transaction() as uow:
        assert await uow.restaurants.load([rid])  # the configuration is kept
        assert await uow.intake.take_parked(rid) == []  # nothing left waiting
    stored = dict(await database.pool.fetch(
        "SELECT booking_id, notes FROM bookings WHERE restaurant_id = $1", rid))
    assert stored == {f"{rid}-good": "window seat"}  # applied, and the edit after it too
    # The failed change is not marked applied: a replay of its dead letter is processed.
    assert await database.pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE event_id = $1", bad.event_id) == 0
