"""render_email: subjects, headers, structure, Message-ID, calendar, header injection (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from zoneinfo import ZoneInfo

import icalendar
import pytest

from mail.render import (
    SUBJECTS,
    EmailBooking,
    EmailRestaurant,
    calendar_uid_for,
    is_synthetic_address,
    render_email,
)

SENDER = "seatflow <no-reply@seatflow.local>"
GUEST = "ada@example.com"
CONTRACT_SUBJECTS = {
    "request_received": "Reservation request received",
    "confirmed": "Your reservation is confirmed",
    "modification_pending": "Reservation modification requested",
    "modification_confirmed": "Reservation modified",
    "cancelled": "Booking cancelled",
    "allocation_failed": "Booking needs attention",
}
ALL_KINDS = sorted(CONTRACT_SUBJECTS)
CALENDAR_KINDS = {"confirmed", "modification_confirmed"}


def make_booking(**changes: object) -> EmailBooking:
    fields: dict[str, object] = {
        "booking_id": "b-1001",
        "restaurant_id": "r-ember",
        "pending_ref": "ref-1",
        "booking_date": date(2026, 7, 1),  # summer: London is on BST (UTC+1)
        "start_time": time(19, 0),
        "end_time": time(20, 15),
        "party_size": 4,
        "customer_name": "Ada Lovelace",
        "customer_email": GUEST,
        "table_ids": ["t4", "t5"],
        "notes": "Window seat, please",
    }
    fields.update(changes)
    return EmailBooking(**fields)  # type: ignore[arg-type]


RESTAURANT = EmailRestaurant(
    name="Ember & Oak",
    timezone="Europe/London",
    contact_email="hello@ember.example",
    contact_phone="+44 20 7946 0000",
)


def render(kind: str, booking: EmailBooking | None = None, **kwargs: object) -> EmailMessage:
    kwargs.setdefault("to", GUEST)
    kwargs.setdefault("sender", SENDER)
    return render_email(kind, booking or make_booking(), RESTAURANT, **kwargs)  # type: ignore[arg-type]


def reparsed(msg: EmailMessage) -> EmailMessage:
    """What a receiving mail system sees: the serialised bytes parsed back."""
    return message_from_bytes(msg.as_bytes(), policy=default_policy)  # type: ignore[return-value]


def alternative_parts(msg: EmailMessage) -> dict[str, str]:
    [alternative] = [p for p in msg.walk() if p.get_content_type() == "multipart/alternative"]
    return {part.get_content_type(): part.get_content() for part in alternative.iter_parts()}


def calendar_parts(msg: EmailMessage) -> list[EmailMessage]:
    return [p for p in msg.walk() if p.get_content_type() == "text/calendar"]


def the_event(msg: EmailMessage) -> icalendar.Event:
    [part] = calendar_parts(msg)
    calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    assert calendar.get("METHOD") == "REQUEST"
    [event] = calendar.walk("VEVENT")
    return event


def test_subjects_are_the_contracts() -> None:
    assert SUBJECTS == CONTRACT_SUBJECTS


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_renders_subject_headers_and_text_plus_html(kind: str) -> None:
    msg = reparsed(render(kind, failure_reason="no table for 4 at 19:00"))

    assert msg["Subject"] == CONTRACT_SUBJECTS[kind]
    assert msg["X-Seatflow-Kind"] == kind
    assert msg["X-Seatflow-Booking"] == "b-1001"
    assert msg["From"].addresses[0].addr_spec == "no-reply@seatflow.local"
    assert [a.addr_spec for a in msg["To"].addresses] == [GUEST]
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@seatflow>")

    parts = alternative_parts(msg)
    assert set(parts) == {"text/plain", "text/html"}
    for body in parts.values():
        assert "Ember &amp; Oak" in body or "Ember & Oak" in body
        assert "b-1001" in body
    assert "<html" in parts["text/html"]
    assert "<html" not in parts["text/plain"]


@pytest.mark.parametrize("kind", sorted(set(ALL_KINDS) - {"allocation_failed"}))
def test_guest_emails_greet_the_guest_and_show_the_booking(kind: str) -> None:
    text = alternative_parts(render(kind))["text/plain"]
    assert "Hello Ada Lovelace," in text
    assert "Wednesday 1 July 2026" in text
    assert "19:00 to 20:15" in text
    assert "Window seat, please" in text


def test_allocation_failed_addresses_the_restaurant_with_the_reason() -> None:
    msg = render(
        "allocation_failed", to="hello@ember.example", failure_reason="no free table for 4"
    )
    parts = alternative_parts(msg)
    assert msg["To"].addresses[0].display_name == "Ember & Oak"
    assert "Hello Ember & Oak team," in parts["text/plain"]
    assert "no free table for 4" in parts["text/plain"]
    assert "no free table for 4" in parts["text/html"]
    assert "Ada Lovelace <ada@example.com>" in parts["text/plain"]


def test_guest_email_replies_go_to_the_restaurant() -> None:
    assert render("confirmed")["Reply-To"].addresses[0].addr_spec == "hello@ember.example"


def test_message_id_is_stable_for_same_booking_kind_and_episode() -> None:
    first = render("confirmed", now=datetime(2026, 6, 1, tzinfo=UTC))
    # A resend later, with other mutable details changed, is the same message.
    again = render(
        "confirmed",
        make_booking(customer_name="Ada King", notes="changed"),
        now=datetime(2026, 6, 2, tzinfo=UTC),
    )
    assert first["Message-ID"] == again["Message-ID"]


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        ("request_received", {}),  # other kind
        ("confirmed", {"pending_ref": "ref-2"}),  # other episode
        ("confirmed", {"booking_id": "b-1002"}),  # other booking
    ],
)
def test_message_id_differs_for_other_booking_kind_or_episode(
    kind: str, changes: dict[str, object]
) -> None:
    baseline = render("confirmed")["Message-ID"]
    assert render(kind, make_booking(**changes))["Message-ID"] != baseline


def test_message_ids_of_all_kinds_are_distinct() -> None:
    ids = {render(kind)["Message-ID"] for kind in ALL_KINDS}
    assert len(ids) == len(ALL_KINDS)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_calendar_attached_exactly_on_confirmations(kind: str) -> None:
    parts = calendar_parts(reparsed(render(kind)))
    if kind in CALENDAR_KINDS:
        assert len(parts) == 1
        assert parts[0].get_filename().endswith(".ics")
        assert parts[0].get_param("method") == "REQUEST"
    else:
        assert parts == []


@pytest.mark.parametrize("kind", sorted(CALENDAR_KINDS))
def test_calendar_event_in_restaurant_time_zone(kind: str) -> None:
    event = the_event(reparsed(render(kind)))

    start = event.decoded("DTSTART")
    end = event.decoded("DTEND")
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert start == datetime(2026, 7, 1, 19, 0, tzinfo=ZoneInfo("Europe/London"))
    assert start.utcoffset().total_seconds() == 3600  # BST
    assert start.astimezone(UTC) == datetime(2026, 7, 1, 18, 0, tzinfo=UTC)
    assert end == datetime(2026, 7, 1, 20, 15, tzinfo=ZoneInfo("Europe/London"))
    assert "Ember & Oak" in str(event["SUMMARY"])
    assert "4" in str(event["SUMMARY"])
    assert str(event["LOCATION"]) == "Ember & Oak"
    assert str(event["UID"]) == calendar_uid_for("b-1001")


def test_calendar_carries_a_vtimezone_for_its_tzid() -> None:
    [part] = calendar_parts(render("confirmed"))
    calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/London"]


def test_calendar_uid_is_per_booking_so_a_modification_updates_the_entry() -> None:
    confirmed = the_event(render("confirmed"))
    modified = the_event(
        render("modification_confirmed", make_booking(pending_ref="ref-2", start_time=time(20)))
    )
    other_booking = the_event(render("confirmed", make_booking(booking_id="b-2")))

    assert confirmed["UID"] == modified["UID"]
    assert confirmed["UID"] != other_booking["UID"]
    assert modified.decoded("SEQUENCE") > confirmed.decoded("SEQUENCE")
    assert modified.decoded("DTSTART").hour == 20


def test_calendar_end_after_midnight_is_next_day_and_open_end_is_omitted() -> None:
    late = the_event(render("confirmed", make_booking(start_time=time(23), end_time=time(0, 30))))
    assert late.decoded("DTEND") == datetime(2026, 7, 2, 0, 30, tzinfo=ZoneInfo("Europe/London"))

    open_ended = the_event(render("confirmed", make_booking(end_time=None)))
    assert "DTEND" not in open_ended


def test_calendar_uses_the_restaurants_own_zone() -> None:
    restaurant = EmailRestaurant("Tokyo Grill", "Asia/Tokyo", None, None)
    msg = render_email("confirmed", make_booking(), restaurant, to=GUEST, sender=SENDER)
    start = the_event(msg).decoded("DTSTART")
    assert start.astimezone(UTC) == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


INJECTIONS = [
    "Eve\r\nBcc: x@evil.example",
    "Eve\nBcc: x@evil.example",
    "Eve\rBcc: x@evil.example",
    "Eve\r\n\r\nBody takeover",
    "Eve\u2028Bcc: x@evil.example",
]


@pytest.mark.parametrize("name", INJECTIONS)
@pytest.mark.parametrize("kind", ["confirmed", "allocation_failed"])
def test_guest_name_and_notes_cannot_add_headers(kind: str, name: str) -> None:
    booking = make_booking(customer_name=name, notes=f"note\r\n{name}\r\nX-Evil: 1")
    raw = render(kind, booking).as_bytes()
    msg = message_from_bytes(raw, policy=default_policy)

    assert msg["Bcc"] is None
    assert msg["X-Evil"] is None
    assert [a.addr_spec for a in msg["To"].addresses] == [GUEST]
    assert msg["Subject"] == CONTRACT_SUBJECTS[kind]
    assert not msg.defects
    # The message still has its full structure (the name did not end the headers early).
    assert set(alternative_parts(msg)) == {"text/plain", "text/html"}
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in header_block
    assert b"\r\nX-Evil" not in header_block


def test_html_body_escapes_guest_text() -> None:
    booking = make_booking(customer_name="<script>alert(1)</script>", notes="<b>bold</b>")
    parts = alternative_parts(render("confirmed", booking))
    assert "<script>" not in parts["text/html"]
    assert "&lt;script&gt;" in parts["text/html"]
    assert "&lt;b&gt;bold&lt;/b&gt;" in parts["text/html"]
    assert "<b>bold</b>" in parts["text/plain"]  # plain text is not HTML-escaped


def test_non_ascii_guest_name_survives() -> None:
    msg = reparsed(render("confirmed", make_booking(customer_name="Zoë Ümlaut")))
    assert msg["To"].addresses[0].display_name == "Zoë Ümlaut"
    assert "Hello Zoë Ümlaut," in alternative_parts(msg)["text/plain"]


@pytest.mark.parametrize("bad_to", ["ada@example.com\r\nBcc: x@evil.example", "not an address"])
def test_bad_recipient_address_is_rejected(bad_to: str) -> None:
    with pytest.raises(ValueError):
        render("confirmed", to=bad_to)


def test_unknown_kind_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="reminder"):
        render("reminder")


@pytest.mark.parametrize(
    ("address", "synthetic"),
    [
        ("walkin+req7f3a@system.local", True),
        ("WALKIN+X@System.Local", True),
        ("Walk-in <walkin+x@system.local>", True),
        (" walkin+x@system.local ", True),
        ("ada@example.com", False),
        ("ada@system.local.example.com", False),
        ("ada@notsystem.local", False),
        ("", False),
        (None, False),
    ],
)
def test_is_synthetic_address(address: str | None, synthetic: bool) -> None:
    assert is_synthetic_address(address) is synthetic
