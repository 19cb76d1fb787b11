"""The day view's renderer (streams/dayview.py): geometry read back from the SVG it draws."""

from __future__ import annotations

import re
from datetime import date, datetime, time

import pytest

from models.restaurant import RestaurantConfig
from storage.days import DayBooking
from streams.dayview import (
    ROW_HEIGHT,
    axis_for,
    parse_day,
    possible_id,
    render_day,
)
from tests.support.dayview import SVG, bars, rect, rows, svg_of, ticks, x_at

DAY = date(2026, 12, 5)


def config(**extra: object) -> RestaurantConfig:
    return RestaurantConfig.model_validate({
        "restaurant_id": "r-test",
        "name": "Test & Kitchen",
        "slug": "test",
        "timezone": "Europe/London",
        "tables": [
            {"table_id": "a1", "number": "1", "zone": "main", "capacity": 2},
            {"table_id": "a2", "number": "2", "zone": "main", "capacity": 4},
            {"table_id": "b1", "number": "T1", "zone": "terrace", "capacity": 4},
            {"table_id": "b2", "number": "T2", "zone": "terrace", "capacity": 2, "active": False},
        ],
        "adjacency": [["a1", "a2"]],
        "services": [{"name": "lunch", "start": "12:00", "end": "15:00"},
                     {"name": "dinner", "start": "17:00", "end": "22:00"}],
        **extra,
    })


def booking(bid: str, start: str, end: str, *, tables: tuple[str, ...] = (), party: int = 2,
            status: str = "confirmed", name: str = "Ada", buffer_min: int = 5,
            **extra: object) -> DayBooking:
    start_t, end_t = time.fromisoformat(start), time.fromisoformat(end)
    end_at = datetime.combine(DAY, end_t)
    if end_t <= start_t:
        end_at = datetime.combine(date(2026, 12, 6), end_t)
    held = end_at.replace() if status != "confirmed" else end_at + (
        datetime(2000, 1, 1, 0, buffer_min) - datetime(2000, 1, 1))
    fields: dict[str, object] = dict(
        booking_id=bid, status=status, booking_date=DAY, start_time=start_t, end_time=end_t,
        party_size=party, customer_name=name, source="guest", channel=None,
        alloc_state="done" if status == "confirmed" else "retry", attempts=1, last_failure=None,
        episode_kind="created", table_ids=tables,
        held_until=held if status == "confirmed" else None)
    fields.update(extra)
    return DayBooking(**fields)  # type: ignore[arg-type]


def test_each_confirmed_booking_is_a_bar_on_each_of_its_tables_rows_at_its_time() -> None:
    day = [booking("b-1", "19:00", "20:15", tables=("a2",), party=4),
           booking("b-2", "12:30", "13:30", tables=("a1",)),
           booking("b-3", "18:00", "19:30", tables=("a1", "a2"), party=6)]
    svg = svg_of(render_day(config(), DAY, day))

    row_span, tick_x = rows(svg), ticks(svg)
    drawn = {(a.get("data-booking-id"), a.get("data-table-id")): a for a in bars(svg)}
    assert set(drawn) == {("b-1", "a2"), ("b-2", "a1"), ("b-3", "a1"), ("b-3", "a2")}
    for (bid, table), bar in drawn.items():
        b = next(x for x in day if x.booking_id == bid)
        x, y, width, height = rect(bar, "bar")
        top, bottom = row_span[table]
        assert top <= y and y + height <= bottom, (bid, table)
        start = b.start_time.hour * 60 + b.start_time.minute
        assert b.end_time is not None
        end = b.end_time.hour * 60 + b.end_time.minute
        assert x == pytest.approx(x_at(tick_x, start), abs=0.2)
        assert x + width == pytest.approx(x_at(tick_x, end), abs=0.2)
        assert bar.get("href") == f"/bookings/{bid}"
        party = next(t for t in bar.iter(f"{SVG}text") if t.get("class") == "party")
        assert (party.text or "").split(" ")[0] == str(b.party_size)


def test_the_buffer_is_shaded_after_the_bar_up_to_when_the_tables_are_free() -> None:
    svg = svg_of(render_day(config(), DAY, [
        booking("b-1", "19:00", "20:00", tables=("a1",), buffer_min=15)]))
    [bar] = bars(svg)
    tick_x = ticks(svg)
    x, _, width, _ = rect(bar, "buffer")
    assert x == pytest.approx(x_at(tick_x, 20 * 60), abs=0.2)
    assert x + width == pytest.approx(x_at(tick_x, 20 * 60 + 15), abs=0.2)


def test_rows_are_grouped_by_zone_in_configuration_order() -> None:
    page = render_day(config(), DAY, [])
    svg = svg_of(page)
    order = sorted(rows(svg).items(), key=lambda item: item[1][0])
    assert [tid for tid, _ in order] == ["a1", "a2", "b1", "b2"]
    zones = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "zone"]
    assert zones == ["main", "terrace"]
    # a zone header sits between the last main row and the first terrace row
    assert order[2][1][0] - order[1][1][1] >= ROW_HEIGHT / 2
    inactive = [g for g in svg.iter(f"{SVG}g") if "inactive" in g.get("class", "")]
    assert [g.get("data-table-id") for g in inactive] == ["b2"]


def test_service_periods_are_shaded() -> None:
    svg = svg_of(render_day(config(), DAY, []))
    tick_x = ticks(svg)
    shaded = {r.get("data-service"): (float(r.get("x", "nan")), float(r.get("width", "nan")))
              for r in svg.iter(f"{SVG}rect") if r.get("class") == "service"}
    assert set(shaded) == {"lunch", "dinner"}
    x, width = shaded["dinner"]
    assert x == pytest.approx(x_at(tick_x, 17 * 60), abs=0.2)
    assert x + width == pytest.approx(x_at(tick_x, 22 * 60), abs=0.2)


def test_a_booking_past_midnight_is_drawn_on_the_day_it_starts_the_axis_running_on() -> None:
    late = booking("b-late", "23:00", "01:30", tables=("a1",))
    svg = svg_of(render_day(config(), DAY, [late]))
    [bar] = bars(svg)
    assert (bar.get("data-start-minute"), bar.get("data-end-minute")) == ("1380", "1530")
    tick_x = ticks(svg)
    assert max(tick_x) >= 1530 + 5  # the buffer too
    x, _, width, _ = rect(bar, "bar")
    assert x + width == pytest.approx(x_at(tick_x, 1530), abs=0.2)
    labels = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick-label"]
    assert "01:00" in labels and labels.index("23:00") < labels.index("01:00")


def test_pending_bookings_are_listed_beside_the_grid_not_drawn() -> None:
    page = render_day(config(), DAY, [
        booking("b-ok", "19:00", "20:00", tables=("a1",)),
        booking("b-wait", "19:00", "20:15", status="pending", party=8, name="Grace",
                last_failure="no_capacity"),
        booking("b-lost", "20:00", "21:15", status="pending", alloc_state="exhausted")])
    assert [a.get("data-booking-id") for a in bars(svg_of(page))] == ["b-ok"]
    aside = page[page.index('<aside class="pending">'):]
    assert "Pending (2)" in aside
    assert 'data-booking-id="b-wait"' in aside and 'href="/bookings/b-wait"' in aside
    assert "party of 8" in aside and "no_capacity" in aside
    assert 'class="pending-booking exhausted" data-booking-id="b-lost"' in aside
    assert "1 confirmed (2 guests) · 2 pending" in page


def test_colour_follows_status_and_kind() -> None:
    svg = svg_of(render_day(config(), DAY, [
        booking("b-1", "12:00", "13:00", tables=("a1",)),
        booking("b-2", "13:00", "14:00", tables=("a1",), episode_kind="modification"),
        booking("b-3", "18:00", "19:00", tables=("a1",), source="ops")]))
    kinds = {a.get("data-booking-id"): a.get("class") for a in bars(svg)}
    assert kinds == {"b-1": "booking confirmed", "b-2": "booking modified",
                     "b-3": "booking walkin"}


def test_text_is_escaped_and_nothing_external_is_loaded() -> None:
    hostile = '<script>alert("x")</script> & "quotes"'
    page = render_day(config(name=hostile), DAY, [
        booking('b-<i>&"', "19:00", "20:00", tables=("a1",), name=hostile)])
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    svg_of(page)  # still well-formed
    assert 'href="/bookings/b-%3Ci%3E%26%22"' in page
    external = re.findall(r"(?:src|href)=\"(?!/|#)[^\"]*\"", page)
    assert external == []
    assert re.findall(r"https?://", page) == ["http://"]  # only the SVG namespace


def test_a_table_held_but_no_longer_configured_gets_a_row_of_its_own() -> None:
    svg = svg_of(render_day(config(), DAY, [booking("b-1", "19:00", "20:00", tables=("gone",))]))
    assert "gone" in rows(svg)
    [bar] = bars(svg)
    assert bar.get("data-table-id") == "gone"


def test_the_axis_covers_services_and_bookings_in_whole_hours() -> None:
    axis = axis_for(config(), DAY, [booking("b-1", "10:40", "11:40", tables=("a1",))])
    assert (axis.first_minute, axis.last_minute) == (10 * 60, 22 * 60)
    empty = axis_for(config(services=[]), DAY, [])
    assert (empty.first_minute, empty.last_minute) == (12 * 60, 23 * 60)


def test_now_is_a_line_when_it_falls_on_the_axis() -> None:
    svg = svg_of(render_day(config(), DAY, [], now=datetime(2026, 12, 5, 19, 30)))
    [now] = [line for line in svg.iter(f"{SVG}line") if line.get("class") == "now"]
    assert float(now.get("x1", "nan")) == pytest.approx(x_at(ticks(svg), 19 * 60 + 30))
    elsewhere = svg_of(render_day(config(), DAY, [], now=datetime(2026, 12, 4, 19, 30)))
    assert not [line for line in elsewhere.iter(f"{SVG}line") if line.get("class") == "now"]


@pytest.mark.parametrize("text", ["2026-12-05", "2024-02-29"])
def test_days_in_the_path(text: str) -> None:
    assert parse_day(text) == date.fromisoformat(text)


@pytest.mark.parametrize("text", ["2026-13-01", "2025-02-29", "20261205", "tomorrow", "",
                                  "2026-12-05x", "２０２６-12-05"])
def test_bad_days_in_the_path(text: str) -> None:
    assert parse_day(text) is None


def test_ids_that_cannot_exist() -> None:
    assert possible_id("r-ember")
    assert not possible_id("")
    assert not possible_id("x" * 201)
    assert not possible_id("a\x00b")
    assert not possible_id("\ud800")
