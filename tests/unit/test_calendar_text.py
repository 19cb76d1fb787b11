"""The `.ics` the renderer writes by hand says exactly what the icalendar library would build
from the same booking: same properties, values and parameters once parsed, valid folding."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from email.utils import parseaddr
from zoneinfo import ZoneInfo

import icalendar
import pytest

from mail.render import (
    EmailBooking,
    EmailRestaurant,
    _one_line,
    _sequence,
    build_calendar_event,
    calendar_uid_for,
    event_times,
    is_synthetic_address,
)

NOW = datetime(2031, 3, 1, 9, 30, tzinfo=UTC)
ORGANIZER = "seatflow <no-reply@seatflow.local>"


def reference(kind: str, booking: EmailBooking, restaurant: EmailRestaurant) -> bytes:
    """What the calendar library builds (the renderer's previous implementation)."""
    zone = ZoneInfo(restaurant.timezone)
    start, end = event_times(booking, zone)
    event = icalendar.Event()
    event.add("uid", calendar_uid_for(booking.booking_id))
    event.add("dtstamp", NOW.astimezone(UTC))
    event.add("sequence", _sequence(kind, NOW))
    event.add("dtstart", start)
    if end is not None:
        event.add("dtend", end)
    event.add("summary", f"{restaurant.name}: table for {booking.party_size}")
    event.add("location", _one_line(restaurant.address) or _one_line(restaurant.name))
    event.add("status", "CONFIRMED")
    description = [f"Booking {booking.booking_id}, party of {booking.party_size}."]
    if booking.notes:
        description.append(f"Notes: {booking.notes}")
    event.add("description", "\n".join(description))
    _, organizer_addr = parseaddr(ORGANIZER)
    organizer = icalendar.vCalAddress(f"mailto:{organizer_addr}")
    organizer.params["CN"] = _one_line(restaurant.name)
    event.add("organizer", organizer)
    if booking.customer_email and not is_synthetic_address(booking.customer_email):
        attendee = icalendar.vCalAddress(f"mailto:{booking.customer_email.strip()}")
        if booking.customer_name:
            attendee.params["CN"] = _one_line(booking.customer_name)
        attendee.params["PARTSTAT"] = "ACCEPTED"
        attendee.params["RSVP"] = "FALSE"
        event.add("attendee", attendee)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//seatflow//booking emails//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    calendar.add_component(event)
    calendar.add_missing_timezones(first_date=date(booking.booking_date.year - 1, 1, 1),
                                   last_date=date(booking.booking_date.year + 1, 12, 31))
    return calendar.to_ical()


def meaning(ics: bytes) -> dict:
    """Every component's properties as parsed values with their parameters."""
    out = {}
    for component in icalendar.Calendar.from_ical(ics).walk():
        props = {}
        for name, value in component.property_items(recursive=False):
            if name in ("BEGIN", "END"):
                continue
            decoded = component.decoded(name) if name not in ("ORGANIZER", "ATTENDEE") else value
            params = dict(getattr(value, "params", {}))
            props.setdefault(name, []).append((str(decoded), params))
        out.setdefault(component.name, []).append(props)
    return out


def booking(**changes: object) -> EmailBooking:
    base = dict(booking_id="b-1001", restaurant_id="r-1", pending_ref="p-1",
                booking_date=date(2031, 3, 5), start_time=time(19, 0), end_time=time(20, 15),
                party_size=4, customer_name="Ada Lovelace", customer_email="ada@example.com",
                table_ids=["t1"], notes=None)
    return EmailBooking(**{**base, **changes})  # type: ignore[arg-type]


RESTAURANT = EmailRestaurant("Ember & Oak", "Europe/London", "hello@ember.example")
CASES = [
    pytest.param(booking(), RESTAURANT, id="plain"),
    pytest.param(booking(notes="Window, please; birthday\nand a cake \\ candles " * 6,
                         customer_name="Zoë O'Brien, Jr.; \"Z\""),
                 EmailRestaurant("Café: Ønsker, Ltd; Bar", "Europe/Paris", None), id="escapes"),
    pytest.param(booking(start_time=time(23, 30), end_time=time(1, 0)), RESTAURANT,
                 id="past-midnight"),
    pytest.param(booking(end_time=None), RESTAURANT, id="open-end"),
    pytest.param(booking(customer_email="walkin+desk1@system.local"), RESTAURANT,
                 id="synthetic-attendee"),
    pytest.param(booking(customer_name=None), EmailRestaurant("UTC Grill", "UTC"), id="utc"),
    pytest.param(booking(booking_date=date(2031, 10, 26), start_time=time(1, 30)),
                 EmailRestaurant("Night", "America/New_York"), id="dst-zone"),
]


@pytest.mark.parametrize(("booked", "restaurant"), CASES)
@pytest.mark.parametrize("kind", ["confirmed", "modification_confirmed"])
def test_the_written_calendar_means_what_the_library_builds(
    kind: str, booked: EmailBooking, restaurant: EmailRestaurant
) -> None:
    written = build_calendar_event(kind, booked, restaurant, organizer=ORGANIZER, now=NOW)
    assert meaning(written) == meaning(reference(kind, booked, restaurant))
    for line in written.split(b"\r\n"):
        assert len(line) <= 75, line  # folded
        line.decode("utf-8")  # never a character cut in half
    assert written.endswith(b"END:VCALENDAR\r\n")
