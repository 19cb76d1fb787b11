"""services.allocation._BatchSeating: a decision sees the bookings that can touch its date,
however many dates its batch loaded for the restaurant; re-seating moves a booking."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from domain.allocation import Seated, Window, booking_window
from domain.model import BookingState, StatusReason
from models.restaurant import RestaurantConfig
from services.allocation import _BatchSeating, _seating_queries

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



def _pending(booking_id: str, restaurant_id: str, start: str, end: str) -> BookingState:
    return BookingState(booking_id, restaurant_id, "pending", "ref", "request", None, D,
                        time.fromisoformat(start), time.fromisoformat(end), None, 2,
                        "G", None, None)


def _dinner_only(restaurant_id: str) -> RestaurantConfig:
    return RestaurantConfig.model_validate({
        "restaurant_id": restaurant_id, "name": restaurant_id, "slug": restaurant_id,
        "tables": [{"table_id": "t1", "capacity": 4}], "buffer_after_minutes": 0,
        "services": [{"name": "dinner", "start": "17:00", "end": "23:00",
                      "allow_overrun": True}]})


def test_each_decision_asks_for_its_reach_allowing_for_the_batchs_longest_window() -> None:
    """A booking the batch seats earlier is shown to its later decisions before it is a
    row: each query of its restaurant carries its window's length as the longest
    (storage.bookings.SeatingQuery); one that cannot form a window asks for nothing."""
    configs = {"r": _dinner_only("r"), "other": _dinner_only("other")}
    batch: list[tuple[BookingState, StatusReason]] = [
        (_pending("short", "r", "19:00", "20:00"), "requested"),
        (_pending("long", "r", "17:00", "23:30"), "requested"),
        (_pending("closed", "r", "09:00", "10:00"), "requested"),  # outside every service
        (_pending("elsewhere", "other", "19:00", "20:00"), "requested"),
    ]
    queries = _seating_queries(batch, configs)
    assert [(q.restaurant_id, q.window.start.hour if q.window else None, q.longest)
            for q in queries] == [
        ("r", 19, timedelta(hours=6, minutes=30)),
        ("r", 17, timedelta(hours=6, minutes=30)),
        ("other", 19, timedelta(hours=1)),
    ]
    short = batch[0][0]
    assert queries[0].window == booking_window(configs["r"], D, short.start_time,
                                               short.requested_end_time, 2)
