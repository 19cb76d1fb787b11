"""`seatflow dev --demo`'s evening (seatflow/demo.py) is what the issue asks for, and valid."""

from __future__ import annotations

from collections import Counter
from datetime import date

from producers.restaurants import load_file
from seatflow.cli import SAMPLE_RESTAURANT
from seatflow.demo import demo_day, script

DAY = date(2031, 12, 6)


def test_a_dozen_bookings_an_edit_a_cancellation_and_a_walk_in() -> None:
    steps = script("r-ember", DAY, "t")
    kinds = Counter(change.type for _, change in steps)
    assert kinds["booking.created"] >= 12
    assert kinds["booking.updated"] == 1 and kinds["booking.cancelled"] == 1
    walk_ins = [c for _, c in steps if c.source == "ops"]
    assert len(walk_ins) == 1 and walk_ins[0].channel == "ops.walkin"
    assert walk_ins[0].booking.customer_email is None


def test_edits_and_cancellations_follow_the_booking_they_change() -> None:
    steps = script("r-ember", DAY, "t")
    created_at = {c.booking.booking_id: i for i, (_, c) in enumerate(steps)
                  if c.type == "booking.created"}
    for i, (_, change) in enumerate(steps):
        if change.type != "booking.created":
            assert created_at[change.booking.booking_id] < i


def test_every_booking_is_on_the_demo_day_inside_a_sample_service() -> None:
    [sample] = load_file(SAMPLE_RESTAURANT)
    for _, change in script(sample.restaurant_id, DAY, "t"):
        assert change.booking.restaurant_id == sample.restaurant_id
        if change.type == "booking.cancelled":
            continue
        assert change.booking_date == DAY
        assert any(s.contains(change.start_time) for s in sample.services), change


def test_ids_differ_between_runs_and_the_day_is_tomorrow() -> None:
    first = {c.booking.booking_id for _, c in script("r", DAY, "a")}
    second = {c.booking.booking_id for _, c in script("r", DAY, "b")}
    assert not first & second
    assert demo_day(date(2031, 12, 31)) == date(2032, 1, 1)
