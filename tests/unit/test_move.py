"""A confirmed booking re-seated (domain.lifecycle.apply_move): pure, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time

import pytest

from domain.lifecycle import apply_move
from domain.model import BookingState

CONFIRMED = BookingState(
    booking_id="b-1", restaurant_id="r-1", status="confirmed", pending_ref="p-1",
    episode_kind="modification", episode_caused_by="e-7", booking_date=date(2031, 6, 14),
    start_time=time(19, 0), requested_end_time=None, end_time=time(20, 0), party_size=2,
    customer_name="Ada", customer_email="ada@example.com", customer_phone=None,
    table_ids=("t4",), version=4, alloc_state="done", ever_confirmed=True,
)


def test_a_move_keeps_the_booking_confirmed_and_publishes_its_next_version() -> None:
    decision = apply_move(CONFIRMED, ("t1", "t2"), to_seat="b-9")
    assert decision.state == replace(CONFIRMED, table_ids=("t1", "t2"), version=5)
    (change,) = decision.status_changes
    assert (change.type, change.status, change.pending_ref, change.caused_by) == (
        "booking.tables_changed", "confirmed", "p-1", "e-7")
    assert change.table_ids == ("t1", "t2") and change.booking_version == 5
    assert decision.notifications == [] and not decision.cancel_held_emails
    assert not decision.release_tables and decision.allocation is None
    (note,) = decision.ops
    assert note.event_type == "booking.tables_reassigned"
    assert note.context == {"from": ["t4"], "to": ["t1", "t2"], "to_seat_booking_id": "b-9"}


@pytest.mark.parametrize("status", ["pending", "cancelled"])
def test_only_a_confirmed_booking_moves(status: str) -> None:
    with pytest.raises(ValueError, match="only a confirmed booking moves"):
        apply_move(replace(CONFIRMED, status=status), ("t1",), to_seat="b-9")
