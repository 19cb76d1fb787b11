"""services.allocation._BatchSeating: a decision sees the bookings that can touch its date,
however many dates its batch loaded for the restaurant; re-seating moves a booking."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from domain.allocation import Seated, Window
from services.allocation import _BatchSeating

D = date(2030, 6, 14)


def booking(booking_id: str, day: date, hour: int, tables: tuple[str, ...] = ("t1",),
            hours: int = 2) -> Seated:
    start = datetime(day.year, day.month, day.day, hour)
    end = start + timedelta(hours=hours)
    return Seated(booking_id, 2, Window(start=start, end=end, blocked_until=end), tables)


def test_a_decision_sees_its_date_and_the_neighbours_only() -> None:
    loaded = {f"b{n}": booking(f"b{n}", D + timedelta(days=n), 19) for n in range(-3, 4)}
    seating = _BatchSeating({"r": loaded, "other": {"x": booking("x", D, 19)}})
    assert sorted(seating.near("r", D)) == ["b-1", "b0", "b1"]
    assert sorted(seating.near("other", D)) == ["x"]
    assert seating.near("nowhere", D) == {}


def test_a_late_booking_of_the_day_before_is_seen_across_midnight() -> None:
    late = booking("late", D - timedelta(days=1), 23, hours=3)  # until 02:00 on D
    seating = _BatchSeating({"r": {"late": late}})
    assert list(seating.near("r", D)) == ["late"]


def test_put_seats_and_re_seats_and_near_is_a_copy() -> None:
    seating = _BatchSeating({})
    seating.put("r", booking("a", D, 19))
    view = seating.near("r", D)
    seating.put("r", booking("a", D, 19, tables=("t2", "t3")))  # re-seated
    seating.put("r", booking("b", D + timedelta(days=5), 12))
    assert view["a"].table_ids == ("t1",)  # what the decision was shown
    assert seating.near("r", D)["a"].table_ids == ("t2", "t3")
    assert list(seating.near("r", D)) == ["a"]
    assert sorted(seating.by_restaurant["r"]) == ["a", "b"]
