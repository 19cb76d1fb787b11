"""The day view (docs/interface.md §6): `GET /restaurants/{restaurant_id}/days/{YYYY-MM-DD}`, a
restaurant's day at a glance, as one server-rendered HTML page with an inline SVG timeline.

- one row per table, grouped by zone (in configuration order);
- each confirmed booking a bar on every table it holds, from its start to its end, with the
  buffer after it shaded; colour by status; party size on the bar; the bar links to
  `/bookings/{id}`;
- service periods shaded behind the rows; pending bookings listed beside the grid;
- a booking past midnight is drawn on the day it starts, the axis running on past 24:00.

No JavaScript and no external assets: the page works offline and prints. `render_day` is
pure (configuration + the day's bookings -> HTML). Every element a test or a person needs
to find carries data attributes: rows `data-table-id`, bars `data-booking-id`,
`data-table-id`, `data-start-minute`/`data-end-minute` (minutes after the day's 00:00, so
01:30 the next morning is 1530), axis ticks `data-minute`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from urllib.parse import quote
from zoneinfo import ZoneInfo

from models.restaurant import RestaurantConfig, Table
from storage.days import DayBooking
from storage.uow import Database

PX_PER_MINUTE = 1.6
LABEL_WIDTH = 132
AXIS_HEIGHT = 34
ZONE_HEIGHT = 24
ROW_HEIGHT = 30
BAR_INSET = 4
DEFAULT_FIRST_HOUR = 12
DEFAULT_LAST_HOUR = 23
# Identifiers longer than this cannot exist (models.events.BookingPayload).
MAX_ID_LENGTH = 200
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

STATUS_LABELS = {
    "confirmed": "confirmed",
    "modified": "confirmed after a change",
    "walkin": "walk-in",
    "pending": "pending",
    "exhausted": "pending, retries used up",
}


# --- path parameters ----------------------------------------------------------------------------


def parse_day(text: str) -> date | None:
    """The date of the path, or None when it is not a YYYY-MM-DD calendar date."""
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def possible_id(identifier: str) -> bool:
    """An id a booking or restaurant could have: short, no NUL, valid Unicode. Anything else
    is a 404 without asking the database (which would refuse the text with a 5xx)."""
    if not identifier or len(identifier) > MAX_ID_LENGTH or "\x00" in identifier:
        return False
    try:
        identifier.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def day_href(restaurant_id: str, day: date) -> str:
    return f"/restaurants/{quote(restaurant_id, safe='')}/days/{day.isoformat()}"


def booking_href(booking_id: str) -> str:
    return f"/bookings/{quote(booking_id, safe='')}"


# --- geometry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """Minutes after the day's 00:00 <-> x in the SVG."""

    first_minute: int
    last_minute: int

    def x(self, minute: float) -> float:
        return round(LABEL_WIDTH + (minute - self.first_minute) * PX_PER_MINUTE, 1)

    @property
    def width(self) -> float:
        return self.x(self.last_minute) + 24  # room for the last tick's label

    def clamp(self, minute: float) -> float:
        return min(max(minute, self.first_minute), self.last_minute)


def _minute(day: date, moment: datetime) -> int:
    return int((moment - datetime.combine(day, datetime.min.time())).total_seconds() // 60)


def service_spans(cfg: RestaurantConfig, day: date) -> list[tuple[str, int, int]]:
    """(name, first minute, last minute) of each service period touching `day`: each that
    starts on it, and the early-morning tail of one that began the evening before."""
    spans = []
    for service in cfg.services:
        start = service.start.hour * 60 + service.start.minute
        end = service.end.hour * 60 + service.end.minute
        if service.past_midnight:
            spans.append((service.name, 0, end))  # began yesterday evening
            spans.append((service.name, start, end + 24 * 60))
        else:
            spans.append((service.name, start, end))
    return spans


def axis_for(cfg: RestaurantConfig, day: date, bookings: Iterable[DayBooking]) -> Axis:
    """Whole hours around the services that start on the day and every booking."""
    firsts: list[int] = []
    lasts: list[int] = []
    for _, start, end in service_spans(cfg, day):
        if start > 0:  # a tail of yesterday's service alone does not stretch the axis
            firsts.append(start)
            lasts.append(end)
    for booking in bookings:
        firsts.append(_minute(day, booking.start))
        ends = [m for m in (booking.end, booking.held_until) if m is not None]
        lasts.append(_minute(day, max(ends)) if ends else _minute(day, booking.start) + 60)
    first = min(firsts, default=DEFAULT_FIRST_HOUR * 60)
    last = max(lasts, default=DEFAULT_LAST_HOUR * 60)
    first_hour = max(0, first // 60)
    last_hour = min(48, -(-last // 60))
    if last_hour <= first_hour:
        last_hour = first_hour + 1
    return Axis(first_hour * 60, last_hour * 60)


def clock(minute: int) -> str:
    """12:00, and 01:30 for 1530 (the next morning)."""
    return f"{(minute // 60) % 24:02d}:{minute % 60:02d}"


# --- the page -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    table_id: str
    label: str
    zone: str
    capacity: int | None
    active: bool
    y: float


def _rows(cfg: RestaurantConfig, bookings: list[DayBooking]) -> tuple[list[_Row], list[tuple[str, float]], float]:
    """Table rows grouped by zone (configuration order), zone headers, and the height used.
    A table some booking holds that the configuration no longer has gets a row of its own."""
    by_zone: dict[str, list[Table | str]] = {}
    for table in cfg.tables:
        by_zone.setdefault(table.zone, []).append(table)
    known = {t.table_id for t in cfg.tables}
    strays = sorted({tid for b in bookings for tid in b.table_ids} - known)
    if strays:
        by_zone.setdefault("not in the configuration", []).extend(strays)
    rows: list[_Row] = []
    zones: list[tuple[str, float]] = []
    y = float(AXIS_HEIGHT)
    for zone, tables in by_zone.items():
        zones.append((zone, y))
        y += ZONE_HEIGHT
        for table in tables:
            if isinstance(table, str):
                rows.append(_Row(table, table, zone, None, True, y))
            else:
                rows.append(_Row(table.table_id, table.number or table.table_id, zone,
                                 table.capacity, table.active, y))
            y += ROW_HEIGHT
    return rows, zones, y


def bar_class(booking: DayBooking) -> str:
    if booking.status == "pending":
        return "exhausted" if booking.alloc_state == "exhausted" else "pending"
    if booking.source == "ops":
        return "walkin"
    if booking.episode_kind == "modification":
        return "modified"
    return "confirmed"


def _hhmm(moment: datetime | None) -> str:
    return moment.strftime("%H:%M") if moment is not None else "?"


def _bar(booking: DayBooking, row: _Row, axis: Axis, day: date) -> str:
    start = _minute(day, booking.start)
    end = _minute(day, booking.end) if booking.end is not None else start + 60
    held = _minute(day, booking.held_until) if booking.held_until is not None else end
    x0, x1 = axis.x(axis.clamp(start)), axis.x(axis.clamp(end))
    x2 = axis.x(axis.clamp(max(held, end)))
    y = row.y + BAR_INSET
    height = ROW_HEIGHT - 2 * BAR_INSET
    css = bar_class(booking)
    name = booking.customer_name or ""
    tables = ", ".join(booking.table_ids)
    title = (f"{booking.booking_id}: {_hhmm(booking.start)}-{_hhmm(booking.end)}, party of "
             f"{booking.party_size}, {name} — {STATUS_LABELS[css]}; tables {tables}")
    label = str(booking.party_size)
    room = int((x1 - x0 - 10) / 6.5)  # characters that fit on the bar
    if name and room > len(label) + 4:
        label = f"{label} · {name}"
        if len(label) > room:
            label = label[:room - 1].rstrip() + "…"
    parts = [
        f'<a class="booking {css}" href="{escape(booking_href(booking.booking_id))}" '
        f'data-booking-id="{escape(booking.booking_id)}" data-table-id="{escape(row.table_id)}" '
        f'data-status="{escape(booking.status)}" data-start-minute="{start}" '
        f'data-end-minute="{end}" data-party="{booking.party_size}">',
        f"<title>{escape(title)}</title>",
    ]
    if x2 > x1:
        parts.append(f'<rect class="buffer" x="{x1}" y="{y}" width="{round(x2 - x1, 1)}" '
                     f'height="{height}"/>')
    parts.append(f'<rect class="bar" x="{x0}" y="{y}" width="{max(round(x1 - x0, 1), 2)}" '
                 f'height="{height}" rx="4"/>')
    parts.append(f'<text class="party" x="{x0 + 5}" y="{y + height / 2}">{escape(label)}</text>')
    parts.append("</a>")
    return "".join(parts)


def _svg(cfg: RestaurantConfig, day: date, bookings: list[DayBooking],
         now: datetime | None) -> str:
    axis = axis_for(cfg, day, bookings)
    rows, zones, bottom = _rows(cfg, bookings)
    width = axis.width
    height = bottom + 6
    out = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="tables and bookings of {escape(cfg.name)} on {day.isoformat()}">']
    for name, start, end in service_spans(cfg, day):
        if end <= axis.first_minute or start >= axis.last_minute:
            continue
        x0, x1 = axis.x(axis.clamp(start)), axis.x(axis.clamp(end))
        out.append(f'<rect class="service" data-service="{escape(name)}" x="{x0}" '
                   f'y="{AXIS_HEIGHT - 6}" width="{round(x1 - x0, 1)}" '
                   f'height="{bottom - AXIS_HEIGHT + 6}"/>')
        out.append(f'<text class="service-label" x="{x0 + 4}" y="{AXIS_HEIGHT - 10}">'
                   f"{escape(name)} {clock(start)}–{clock(end)}</text>")
    for zone, y in zones:
        out.append(f'<text class="zone" x="6" y="{y + ZONE_HEIGHT - 7}">{escape(zone)}</text>')
        out.append(f'<line class="zone-rule" x1="0" x2="{width}" y1="{y + ZONE_HEIGHT - 1}" '
                   f'y2="{y + ZONE_HEIGHT - 1}"/>')
    for i, row in enumerate(rows):
        css = "table-row" + (" inactive" if not row.active else "") + (" odd" if i % 2 else "")
        seats = f" · {row.capacity} seats" if row.capacity is not None else ""
        note = " (inactive)" if not row.active else ""
        out.append(
            f'<g class="{css}" data-table-id="{escape(row.table_id)}" '
            f'data-zone="{escape(row.zone)}"><rect class="row-bg" x="0" y="{row.y}" '
            f'width="{width}" height="{ROW_HEIGHT}"/><text class="table-label" x="12" '
            f'y="{row.y + ROW_HEIGHT / 2}">{escape(row.label)}{seats}{note}</text></g>')
    for minute in range(axis.first_minute, axis.last_minute + 1, 30):
        x = axis.x(minute)
        major = minute % 60 == 0
        out.append(f'<line class="tick{" major" if major else ""}" data-minute="{minute}" '
                   f'x1="{x}" x2="{x}" y1="{AXIS_HEIGHT - 4 if major else AXIS_HEIGHT}" '
                   f'y2="{bottom}"/>')
        if major:
            out.append(f'<text class="tick-label" x="{x}" y="14">{clock(minute)}</text>')
    row_of = {row.table_id: row for row in rows}
    for booking in bookings:
        if booking.status != "confirmed":
            continue
        for table_id in booking.table_ids:
            out.append(_bar(booking, row_of[table_id], axis, day))
    if now is not None:
        minute = _minute(day, now)
        if axis.first_minute <= minute <= axis.last_minute:
            x = axis.x(minute)
            out.append(f'<line class="now" x1="{x}" x2="{x}" y1="{AXIS_HEIGHT - 6}" '
                       f'y2="{bottom}"><title>now {clock(minute)}</title></line>')
    out.append("</svg>")
    return "\n".join(out)


def _pending(bookings: list[DayBooking]) -> str:
    pending = [b for b in bookings if b.status == "pending"]
    items = []
    for b in pending:
        css = bar_class(b)
        why = {"queued": "waiting for the allocator", "retry": "no table yet, retrying",
               "exhausted": "no table, retries used up", "idle": "not auto-assigned"}.get(
            b.alloc_state, b.alloc_state)
        if b.last_failure:
            why += f" ({b.last_failure})"
        items.append(
            f'<li class="pending-booking {css}" data-booking-id="{escape(b.booking_id)}">'
            f'<a href="{escape(booking_href(b.booking_id))}">{_hhmm(b.start)}–{_hhmm(b.end)} · '
            f'party of {b.party_size} · {escape(b.customer_name or "")}</a>'
            f'<span class="why">{escape(why)}</span></li>')
    body = "\n".join(items) if items else '<li class="none">none</li>'
    return (f'<aside class="pending"><h2>Pending ({len(pending)})</h2>'
            f"<ul>\n{body}\n</ul></aside>")


_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px;
       color: #1d232a; background: #fff; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 18px; }
h1 { font-size: 20px; margin: 0; }
header .summary { color: #555; }
nav a { margin-right: 10px; }
.legend { margin: 8px 0 12px; display: flex; gap: 14px; flex-wrap: wrap; color: #444; }
.legend span::before { content: ""; display: inline-block; width: 14px; height: 10px;
                       margin-right: 5px; border-radius: 2px; background: var(--c); }
main { display: flex; gap: 18px; align-items: flex-start; }
.grid { overflow-x: auto; border: 1px solid #d8dde3; border-radius: 6px; flex: 0 1 auto; }
svg text { font-size: 12px; dominant-baseline: middle; }
.row-bg { fill: #fff; } .odd .row-bg { fill: #f6f8fa; }
.inactive .row-bg { fill: #eee; } .inactive .table-label { fill: #999; }
.table-label { fill: #333; }
.zone { font-weight: 600; fill: #555; text-transform: uppercase; letter-spacing: .05em;
        font-size: 11px; }
.zone-rule { stroke: #c9d1d9; }
.service { fill: #e8f1fb; opacity: .55; }
.service-label { fill: #3b6ea5; font-size: 11px; }
.tick { stroke: #e3e7eb; } .tick.major { stroke: #c9d1d9; }
.tick-label { fill: #555; text-anchor: middle; }
.now { stroke: #d1242f; stroke-width: 2; }
a.booking .bar { fill: var(--c); stroke: rgba(0,0,0,.25); }
a.booking .buffer { fill: var(--c); opacity: .3; }
a.booking .party { fill: #fff; font-weight: 600; pointer-events: none; }
a.booking:hover .bar { stroke: #000; stroke-width: 2; }
.confirmed { --c: #2f8f5b; } .modified { --c: #2b6cb0; } .walkin { --c: #7b4fb5; }
.pending { --c: #d39b12; } .exhausted { --c: #c0392b; }
aside.pending { min-width: 260px; max-width: 340px; }
aside.pending h2 { font-size: 16px; margin: 0 0 6px; }
aside.pending ul { list-style: none; padding: 0; margin: 0; }
aside.pending li { border-left: 4px solid var(--c); padding: 4px 8px; margin-bottom: 6px;
                   background: #fbfbfb; }
aside.pending li.none { border-left-color: #ccc; color: #777; }
aside.pending .why { display: block; color: #666; font-size: 12px; }
"""


def render_day(
    cfg: RestaurantConfig,
    day: date,
    bookings: list[DayBooking],
    *,
    now: datetime | None = None,
) -> str:
    """The whole page. `bookings`: the day's confirmed (with tables) and pending bookings;
    `now`: the restaurant's local time, drawn as a line when it falls on the axis."""
    confirmed = [b for b in bookings if b.status == "confirmed"]
    pending = [b for b in bookings if b.status == "pending"]
    guests = sum(b.party_size for b in confirmed)
    title = f"{cfg.name} — {day:%a} {day.isoformat()}"
    previous, following = day - timedelta(days=1), day + timedelta(days=1)
    legend = "".join(f'<span class="{css}">{escape(label)}</span>'
                     for css, label in STATUS_LABELS.items())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{escape(title)}</h1>
<span class="summary">{len(confirmed)} confirmed ({guests} guests) · {len(pending)} pending ·
{escape(cfg.timezone)}</span>
<nav><a href="{escape(day_href(cfg.restaurant_id, previous))}">← {previous.isoformat()}</a>
<a href="{escape(day_href(cfg.restaurant_id, following))}">{following.isoformat()} →</a></nav>
</header>
<div class="legend">{legend}<span class="buffer-note" style="--c: #9bb">shaded: buffer after
the booking</span></div>
<main>
<div class="grid">
{_svg(cfg, day, bookings, now)}
</div>
{_pending(bookings)}
</main>
</body>
</html>
"""


def not_found_page(restaurant_id: str) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unknown "
            f"restaurant</title></head><body><h1>Unknown restaurant</h1><p>No restaurant "
            f"{escape(restaurant_id)!s} is configured.</p></body></html>")


def bad_date_page(text: str) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Bad date"
            f"</title></head><body><h1>Bad date</h1><p>{escape(text)} is not a date: use "
            "YYYY-MM-DD, e.g. /restaurants/r-ember/days/2026-12-05.</p></body></html>")


async def day_page(database: Database, restaurant_id: str, day_text: str) -> tuple[int, str]:
    """(HTTP status, HTML) for the path's restaurant id and date: 400 for a date that is
    not YYYY-MM-DD, 404 for a restaurant the service has no configuration of."""
    day = parse_day(day_text)
    if day is None:
        return 400, bad_date_page(day_text)
    if not possible_id(restaurant_id):
        return 404, not_found_page(restaurant_id)
    async with database.transaction() as uow:
        cfg = (await uow.restaurants.load([restaurant_id])).get(restaurant_id)
        if cfg is None:
            return 404, not_found_page(restaurant_id)
        bookings = await uow.days.bookings(restaurant_id, day)
    now = datetime.now(ZoneInfo(cfg.timezone)).replace(tzinfo=None)
    return 200, render_day(cfg, day, bookings, now=now)
