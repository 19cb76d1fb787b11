"""Render the contract's emails (docs/interface.md §4 "Emails") as ready-to-send EmailMessages.

Pure: no I/O beyond reading the packaged templates. Everything a guest typed (name, notes)
goes only into bodies and into a structured To address, never into raw header text, so it
cannot add headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from zoneinfo import ZoneInfo

import icalendar
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from domain.allocation import local_span
from domain.walkins import is_synthetic
from models.events import derived_id

SUBJECTS: dict[str, str] = {
    "request_received": "Reservation request received",
    "confirmed": "Your reservation is confirmed",
    "modification_pending": "Reservation modification requested",
    "modification_confirmed": "Reservation modified",
    "cancelled": "Booking cancelled",
    "allocation_failed": "Booking needs attention",
}
# Kinds whose email carries the calendar event.
CALENDAR_KINDS = frozenset({"confirmed", "modification_confirmed"})

MESSAGE_ID_DOMAIN = "seatflow"
_ICS_PRODID = "-//seatflow//booking emails//EN"
# SEQUENCE for a modified event must exceed the one calendars already hold; the episodes'
# pending_refs are not ordered, so count minutes since this epoch instead.
_SEQUENCE_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

class _HeaderClasses(HeaderRegistry):
    """The standard header registry, building each header's class once: the stdlib's makes
    a new class for every header of every message (the largest cost of rendering one)."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        made = self._made.get(name.lower())
        if made is None:
            made = self._made[name.lower()] = super().__getitem__(name)
        return made


_POLICY = SMTP.clone(header_factory=_HeaderClasses())
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


@dataclass(frozen=True)
class EmailBooking:
    booking_id: str
    restaurant_id: str
    pending_ref: str | None
    booking_date: date
    start_time: time
    end_time: time | None
    party_size: int
    customer_name: str | None
    customer_email: str | None
    table_ids: list[str] = field(default_factory=list)
    notes: str | None = None


@dataclass(frozen=True)
class EmailRestaurant:
    name: str
    timezone: str
    contact_email: str | None = None
    contact_phone: str | None = None
    # Not in the restaurant config today; used as the calendar LOCATION when given.
    address: str | None = None


# One rule for "never mail this address" (docs/interface.md §4), shared with the walk-in logic.
is_synthetic_address = is_synthetic


def message_id_for(booking_id: str, kind: str, pending_ref: str | None) -> str:
    """The Message-ID of an email: a resend of the same (booking, kind, episode) repeats it."""
    return f"<{derived_id(booking_id, kind, pending_ref)}@{MESSAGE_ID_DOMAIN}>"


def calendar_uid_for(booking_id: str) -> str:
    """One calendar UID per booking, so a modification updates the guest's existing entry."""
    return f"{derived_id('calendar-event', booking_id)}@{MESSAGE_ID_DOMAIN}"


def render_email(
    kind: str,
    booking: EmailBooking,
    restaurant: EmailRestaurant,
    *,
    to: str,
    sender: str,
    failure_reason: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """Build the email of `kind` for `booking`, addressed to the bare address `to`.

    Raises ValueError for an unknown kind or an address that does not parse.
    `now` (default: the current time) only stamps the Date header and the calendar DTSTAMP.
    """
    if kind not in SUBJECTS:
        raise ValueError(f"unknown email kind {kind!r}; expected one of {sorted(SUBJECTS)}")
    now = now or datetime.now(UTC)
    # The restaurant's own alert is addressed to the restaurant, everything else to the guest.
    to_name = restaurant.name if kind == "allocation_failed" else booking.customer_name
    context = _template_context(kind, booking, restaurant, failure_reason)

    msg = EmailMessage(policy=_POLICY)
    msg["Subject"] = SUBJECTS[kind]
    msg["From"] = sender
    msg["To"] = _to_address(to, display_name=_one_line(to_name))
    reply_to = _reply_to(kind, restaurant)
    if reply_to is not None:
        msg["Reply-To"] = reply_to
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = message_id_for(booking.booking_id, kind, booking.pending_ref)
    msg["X-Seatflow-Kind"] = kind
    msg["X-Seatflow-Booking"] = _one_line(booking.booking_id)
    msg["Auto-Submitted"] = "auto-generated"

    templates = _templates()
    msg.set_content(templates.get_template(f"{kind}.txt.j2").render(context))
    msg.add_alternative(templates.get_template(f"{kind}.html.j2").render(context), subtype="html")
    if kind in CALENDAR_KINDS:
        ics = build_calendar_event(kind, booking, restaurant, organizer=sender, now=now)
        # As bytes (base64) so the CRLF line endings RFC 5545 asks for survive transport.
        msg.add_attachment(
            ics,
            maintype="text",
            subtype="calendar",
            filename="reservation.ics",
            params={"charset": "utf-8", "method": "REQUEST"},
        )
    return msg


def build_calendar_event(
    kind: str,
    booking: EmailBooking,
    restaurant: EmailRestaurant,
    *,
    organizer: str,
    now: datetime,
) -> bytes:
    """An iTIP REQUEST for the booking, in the restaurant's time zone (RFC 5545 text, written
    directly: the calendar library costs more than the rest of the email together; a test
    holds this to what icalendar builds)."""
    zone = ZoneInfo(restaurant.timezone)
    start, end = event_times(booking, zone)
    description = [f"Booking {booking.booking_id}, party of {booking.party_size}."]
    if booking.notes:
        description.append(f"Notes: {booking.notes}")
    lines = [
        "BEGIN:VEVENT",
        f"SUMMARY:{_ics_text(f'{restaurant.name}: table for {booking.party_size}')}",
        _ics_datetime("DTSTART", start),
        *([_ics_datetime("DTEND", end)] if end is not None else []),
        f"DTSTAMP:{now.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        f"UID:{_ics_text(calendar_uid_for(booking.booking_id))}",
        f"SEQUENCE:{_sequence(kind, now)}",
        f"DESCRIPTION:{_ics_text(chr(10).join(description))}",
        f"LOCATION:{_ics_text(_one_line(restaurant.address) or _one_line(restaurant.name))}",
        "STATUS:CONFIRMED",
    ]
    _, organizer_addr = parseaddr(organizer)
    if organizer_addr:
        lines.append(f"ORGANIZER;CN={_ics_param(_one_line(restaurant.name))}:"
                     f"mailto:{organizer_addr}")
    if booking.customer_email and not is_synthetic_address(booking.customer_email):
        cn = (f"CN={_ics_param(_one_line(booking.customer_name))};"
              if booking.customer_name else "")
        lines.append(f"ATTENDEE;{cn}PARTSTAT=ACCEPTED;RSVP=FALSE:"
                     f"mailto:{booking.customer_email.strip()}")
    lines.append("END:VEVENT")
    timezone = _vtimezone(restaurant.timezone, booking.booking_date.year)
    body = b"".join(_fold(line) for line in lines)
    return (b"".join(_fold(line) for line in
                     ("BEGIN:VCALENDAR", f"PRODID:{_ICS_PRODID}", "VERSION:2.0", "METHOD:REQUEST"))
            + (timezone or b"") + body + _fold("END:VCALENDAR"))


# Zones whose times are written in UTC ("...Z"), with no VTIMEZONE.
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"})


def _ics_datetime(name: str, moment: datetime) -> str:
    key = getattr(moment.tzinfo, "key", None)
    if key in _UTC_ZONES:
        return f"{name}:{moment:%Y%m%dT%H%M%S}Z"
    return f"{name};TZID={_ics_param(str(key))}:{moment:%Y%m%dT%H%M%S}"


def _ics_text(value: str) -> str:
    """A TEXT value: backslash, semicolon, comma and line breaks escaped (RFC 5545 3.3.11)."""
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def _ics_param(value: str) -> str:
    """A parameter value: ^, double quote and newline caret-encoded (RFC 6868), quoted when
    it holds , ; or :."""
    value = value.replace("^", "^^").replace('"', "^'").replace("\n", "^n")
    return f'"{value}"' if any(c in value for c in ",;:") else value


def _fold(line: str) -> bytes:
    """One content line, folded at 75 octets without splitting a character, CRLF-ended."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return data + b"\r\n"
    out, chunk, limit = [], b"", 75
    for ch in line:
        encoded = ch.encode("utf-8")
        if len(chunk) + len(encoded) > limit:
            out.append(chunk)
            chunk, limit = b" ", 75
        chunk += encoded
    out.append(chunk)
    return b"\r\n".join(out) + b"\r\n"


@lru_cache(maxsize=512)
def _vtimezone(tzid: str, year: int) -> bytes | None:
    """The zone's VTIMEZONE from the year before to the year after (not 1970-2038), as
    content lines: the same for every booking of that zone and year, so built once."""
    if tzid in _UTC_ZONES:
        return None
    try:
        zone = icalendar.Timezone.from_tzid(tzid, first_date=date(year - 1, 1, 1),
                                            last_date=date(year + 1, 12, 31))
    except ValueError:  # a zone icalendar cannot describe: the event names it by TZID only
        return None
    return zone.to_ical()


def event_times(booking: EmailBooking, zone: ZoneInfo) -> tuple[datetime, datetime | None]:
    """The calendar event's start and end, aware, in the restaurant's zone."""
    start, end = local_span(booking.booking_date, booking.start_time, booking.end_time)
    return start.replace(tzinfo=zone), end.replace(tzinfo=zone) if end is not None else None


# --- helpers --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _one_line(value: str | None) -> str:
    """Control characters (CR, LF, ...) become single spaces: one-line fields stay one line."""
    if not value:
        return ""
    return _CONTROL_CHARS.sub(" ", value).strip()


def _multi_line(value: str | None) -> str:
    if not value:
        return ""
    return "\n".join(_one_line(line) for line in value.splitlines()).strip()


def _to_address(addr: str, *, display_name: str) -> Address:
    if _CONTROL_CHARS.search(addr):
        raise ValueError(f"recipient address contains control characters: {addr!r}")
    return Address(display_name=display_name, addr_spec=addr.strip())


def _reply_to(kind: str, restaurant: EmailRestaurant) -> Address | None:
    """Guest replies go to the restaurant when it has a usable contact address."""
    contact = restaurant.contact_email
    if kind == "allocation_failed" or not contact or is_synthetic_address(contact):
        return None
    try:
        return _to_address(contact, display_name=_one_line(restaurant.name))
    except ValueError:
        return None


def _sequence(kind: str, now: datetime) -> int:
    if kind != "modification_confirmed":
        return 0
    return max(1, int((now - _SEQUENCE_EPOCH).total_seconds() // 60))


def _template_context(
    kind: str,
    booking: EmailBooking,
    restaurant: EmailRestaurant,
    failure_reason: str | None,
) -> dict[str, object]:
    start = booking.start_time.strftime("%H:%M")
    end = booking.end_time.strftime("%H:%M") if booking.end_time else None
    return {
        "kind": kind,
        "subject": SUBJECTS[kind],
        "booking_id": _one_line(booking.booking_id),
        "guest_name": _one_line(booking.customer_name) or "guest",
        "guest_email": _one_line(booking.customer_email),
        "party_size": booking.party_size,
        "date_text": _date_text(booking.booking_date),
        "start_text": start,
        "end_text": end,
        "table_ids": [_one_line(t) for t in booking.table_ids],
        "notes": _multi_line(booking.notes),
        "restaurant_name": _one_line(restaurant.name),
        "restaurant_email": _one_line(restaurant.contact_email),
        "restaurant_phone": _one_line(restaurant.contact_phone),
        "timezone": restaurant.timezone,
        "failure_reason": _multi_line(failure_reason),
    }


def _date_text(day: date) -> str:
    # Locale-independent English, e.g. "Tuesday 1 December 2026".
    return f"{day:%A} {day.day} {day:%B %Y}"
