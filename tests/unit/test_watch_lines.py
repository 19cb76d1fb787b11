"""`seatflow watch` lines (seatflow/watch.py), from records built here: no broker."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime

from config.topics import TopicNames
from seatflow.watch import RESET, Formatter, use_colour
from streams.deadletter import SourceMessage, build_dead_letter

TOPICS = TopicNames("seatflow.")
TS = int(datetime(2031, 12, 5, 19, 2, 11).timestamp() * 1000)


@dataclass
class Record:
    topic: str
    key: bytes | None
    value: bytes | None
    timestamp: int = TS
    partition: int = 0
    offset: int = 7
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def status(bid: str = "b-1", **extra: object) -> Record:
    value = {"event_id": "e", "type": "booking.confirmed", "booking_id": bid,
             "restaurant_id": "r-ember", "status": "confirmed", "pending_ref": "p",
             "reason": "created", "variant": "standard", "table_ids": ["t4", "t5"],
             "booking_version": 2, **extra}
    return Record(TOPICS.booking_status, bid.encode(), json.dumps(value).encode())


def notification(bid: str = "b-1", **extra: object) -> Record:
    value = {"notification_id": "n", "booking_id": bid, "restaurant_id": "r-ember",
             "kind": "confirmed", "channel": "email", "to": "ada@example.com",
             "pending_ref": "p", "status": "queued", "reason": None, **extra}
    return Record(TOPICS.notifications, bid.encode(), json.dumps(value).encode())


def dead_letter(key: bytes = b"b-9") -> Record:
    src = SourceMessage(topic=TOPICS.booking_changes, partition=1, offset=40, timestamp_ms=TS,
                        key=key, value=b"{not json", headers=[])
    letter = build_dead_letter(src, "decode", ValueError("not JSON"), datetime(2031, 12, 5))
    return Record(TOPICS.dead_letters, letter.key, letter.value, partition=2, offset=3,
                  headers=list(letter.headers))


def test_a_status_event_is_one_readable_line() -> None:
    line = Formatter(TOPICS).line(status())
    assert line is not None
    assert line.startswith("19:02:11  b-1 ")
    assert line.split()[2:] == ["booking.confirmed", "confirmed", "tables", "t4,t5",
                                "(created,", "v2)"]


def test_a_notification_names_kind_status_and_recipient() -> None:
    line = Formatter(TOPICS).line(notification())
    assert line is not None
    assert line.split()[1:] == ["b-1", "email", "confirmed", "queued", "to", "ada@example.com"]
    skipped = Formatter(TOPICS).line(notification(status="skipped", to="w@system.local",
                                                  reason="synthetic_address"))
    assert skipped is not None and skipped.endswith("skipped    to w@system.local "
                                                    "(synthetic_address)")


def test_a_dead_letter_names_stage_position_exception_and_origin() -> None:
    line = Formatter(TOPICS).line(dead_letter())
    assert line is not None
    assert "b-9" in line and "dead letter (decode)" in line and "@2:3" in line
    assert "ValueError: not JSON" in line
    assert "from seatflow.booking-changes[1]@40" in line


def test_json_is_the_value_with_its_topic() -> None:
    formatter = Formatter(TOPICS, as_json=True)
    obj = json.loads(formatter.line(status()) or "")
    assert obj["topic"] == "seatflow.booking-status"
    assert obj["type"] == "booking.confirmed" and obj["table_ids"] == ["t4", "t5"]
    mail = json.loads(formatter.line(notification()) or "")
    assert (mail["topic"], mail["kind"], mail["to"]) == (
        "seatflow.notifications", "confirmed", "ada@example.com")
    dead = json.loads(formatter.line(dead_letter()) or "")
    assert (dead["topic"], dead["dead_letter"], dead["stage"]) == (
        "seatflow.dead-letters", "2:3", "decode")


def test_booking_filter_keeps_only_that_bookings_records() -> None:
    formatter = Formatter(TOPICS, booking="b-1")
    assert formatter.line(status("b-1")) is not None
    assert formatter.line(notification("b-1")) is not None
    assert formatter.line(status("b-2")) is None
    assert formatter.line(notification("b-2")) is None
    assert formatter.line(dead_letter(b"b-2")) is None
    assert Formatter(TOPICS, booking="b-2").line(dead_letter(b"b-2")) is not None


def test_colour_only_when_asked_and_never_in_json() -> None:
    coloured = Formatter(TOPICS, colour=True).line(status())
    assert coloured is not None and coloured.startswith("\x1b[32m") and coloured.endswith(RESET)
    plain = Formatter(TOPICS).line(status())
    assert plain is not None and "\x1b" not in plain
    assert "\x1b" not in (Formatter(TOPICS, as_json=True, colour=True).line(status()) or "")


def test_colour_on_a_terminal_unless_no_color() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_colour(Tty(), {})
    assert not use_colour(Tty(), {"NO_COLOR": "1"})
    assert not use_colour(io.StringIO(), {})


def test_a_value_that_is_not_json_is_shown_not_fatal() -> None:
    record = Record(TOPICS.booking_status, b"b-1", b"\xff garbage")
    line = Formatter(TOPICS).line(record)
    assert line is not None and "not a JSON object at 0:7" in line
    assert json.loads(Formatter(TOPICS, as_json=True).line(record) or "")["unreadable"] is True
