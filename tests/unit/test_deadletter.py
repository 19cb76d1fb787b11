"""Dead-letter headers (docs/interface.md §5), replay headers, and the CLI's view of a dead letter."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from streams.deadletter import (
    DEAD_LETTER_STAGES,
    MAX_EXCEPTION_MESSAGE_CHARS,
    SourceMessage,
    build_dead_letter,
    dead_letter_headers,
    parse_dead_letter,
    preview,
    replay_headers,
)

CONTRACT_HEADERS = [
    "x-dlq-original-topic",
    "x-dlq-original-partition",
    "x-dlq-original-offset",
    "x-dlq-original-timestamp",
    "x-dlq-stage",
    "x-dlq-exception-class",
    "x-dlq-exception-message",
    "x-dlq-attempts",
    "x-dlq-failed-at",
]

NOW = datetime(2026, 11, 21, 18, 0, 5, 123456, tzinfo=UTC)


def source(
    *, headers: list[tuple[str, bytes]] | None = None, value: bytes | None = b'{"not": "ok"'
) -> SourceMessage:
    return SourceMessage(
        topic="seatflow.booking-changes",
        partition=3,
        offset=1234,
        timestamp_ms=1_795_284_000_000,
        key=b"b-1001",
        value=value,
        headers=headers or [],
    )


def as_dict(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: raw.decode("utf-8") for name, raw in headers}


@dataclass(frozen=True)
class FakeRecord:
    """Shape of aiokafka's ConsumerRecord as far as parse_dead_letter cares."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def test_headers_are_exactly_the_contract_names_with_string_values() -> None:
    headers = dead_letter_headers(source(), "decode", ValueError("Expecting ',' delimiter"), NOW)

    assert [name for name, _ in headers] == CONTRACT_HEADERS
    assert all(isinstance(raw, bytes) for _, raw in headers)
    assert as_dict(headers) == {
        "x-dlq-original-topic": "seatflow.booking-changes",
        "x-dlq-original-partition": "3",
        "x-dlq-original-offset": "1234",
        "x-dlq-original-timestamp": "1795284000000",
        "x-dlq-stage": "decode",
        "x-dlq-exception-class": "ValueError",
        "x-dlq-exception-message": "Expecting ',' delimiter",
        "x-dlq-attempts": "1",
        "x-dlq-failed-at": "2026-11-21T18:00:05.123Z",
    }


def test_dead_letter_keeps_original_key_and_value_bytes() -> None:
    raw = b"\xff\xfe not utf-8 \x00"
    letter = build_dead_letter(source(value=raw), "process", RuntimeError("boom"), NOW)

    assert letter.key == b"b-1001"
    assert letter.value == raw
    assert as_dict(letter.headers)["x-dlq-stage"] == "process"


def test_null_value_and_missing_timestamp_are_allowed() -> None:
    src = SourceMessage("t", 0, 0, None, None, None, [])
    letter = build_dead_letter(src, "decode", ValueError("empty"), NOW)

    assert letter.key is None and letter.value is None
    assert as_dict(letter.headers)["x-dlq-original-timestamp"] == ""


def test_non_builtin_exception_class_is_module_qualified() -> None:
    class Booking(BaseModel):
        party_size: int

    with pytest.raises(ValidationError) as caught:
        Booking.model_validate({"party_size": "many"})
    headers = as_dict(dead_letter_headers(source(), "validate", caught.value, NOW))

    assert headers["x-dlq-exception-class"].endswith(".ValidationError")
    assert headers["x-dlq-exception-class"].startswith("pydantic")
    # pydantic's message is multi-line; the header is one line that keeps every part.
    message = headers["x-dlq-exception-message"]
    assert "\n" not in message
    assert "1 validation error for Booking | party_size | Input should be" in message


def test_exception_message_is_single_lined_and_truncated() -> None:
    long = "first line\r\n\tsecond\x07line\n\n" + "x" * 5000
    message = as_dict(dead_letter_headers(source(), "process", RuntimeError(long), NOW))[
        "x-dlq-exception-message"
    ]

    assert len(message) == MAX_EXCEPTION_MESSAGE_CHARS
    assert message.startswith("first line | second line | xxx")
    assert message.endswith("…")
    assert all(ch.isprintable() for ch in message)


def test_short_message_is_not_marked_as_truncated() -> None:
    message = "y" * MAX_EXCEPTION_MESSAGE_CHARS
    headers = as_dict(dead_letter_headers(source(), "process", RuntimeError(message), NOW))
    assert headers["x-dlq-exception-message"] == message


def test_failed_at_is_iso_utc_whatever_the_zone_of_now() -> None:
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 21, 19, 0, 5, 123000, tzinfo=paris)
    naive = datetime(2026, 11, 21, 18, 0, 5, 123000)

    for moment in (local, naive):
        headers = as_dict(dead_letter_headers(source(), "decode", ValueError("x"), moment))
        assert headers["x-dlq-failed-at"] == "2026-11-21T18:00:05.123Z"


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="stage"):
        dead_letter_headers(source(), "parse", ValueError("x"), NOW)  # type: ignore[arg-type]
    assert DEAD_LETTER_STAGES == ("decode", "validate", "process")


def test_replayed_message_that_fails_again_counts_one_more_attempt() -> None:
    first = build_dead_letter(source(), "process", RuntimeError("db down"), NOW)
    republished = replay_headers(first.headers, partition=5, offset=42)
    assert as_dict(republished) == {
        "x-dlq-replay": "true",
        "x-dlq-attempts": "1",
        "x-dlq-replayed-from": "5:42",
    }

    second = build_dead_letter(source(headers=republished), "process", RuntimeError("again"), NOW)
    assert as_dict(second.headers)["x-dlq-attempts"] == "2"

    third = build_dead_letter(
        source(headers=replay_headers(second.headers, partition=1, offset=7)),
        "process",
        RuntimeError("and again"),
        NOW,
    )
    assert as_dict(third.headers)["x-dlq-attempts"] == "3"
    # earlier bookkeeping headers do not pile up on the new dead letter
    assert [name for name, _ in third.headers] == CONTRACT_HEADERS


def test_attempts_header_without_replay_marker_is_not_trusted() -> None:
    src = source(headers=[("x-dlq-attempts", b"9")])
    assert (
        as_dict(dead_letter_headers(src, "decode", ValueError("x"), NOW))["x-dlq-attempts"] == "1"
    )


def test_garbled_attempts_on_a_replay_count_as_none() -> None:
    src = source(headers=[("x-dlq-replay", b"true"), ("x-dlq-attempts", b"lots")])
    assert (
        as_dict(dead_letter_headers(src, "decode", ValueError("x"), NOW))["x-dlq-attempts"] == "1"
    )


def test_source_headers_survive_dead_letter_and_replay() -> None:
    src = source(headers=[("traceparent", b"00-abc-def-01")])
    letter = build_dead_letter(src, "process", RuntimeError("x"), NOW)

    assert letter.headers[len(CONTRACT_HEADERS) :] == [("traceparent", b"00-abc-def-01")]
    republished = replay_headers(letter.headers, partition=0, offset=0)
    assert republished[0] == ("traceparent", b"00-abc-def-01")


def test_parse_dead_letter_reads_back_what_build_wrote() -> None:
    letter = build_dead_letter(source(), "validate", KeyError("booking"), NOW)
    view = parse_dead_letter(FakeRecord(2, 17, letter.key, letter.value, letter.headers))

    assert view.position == "2:17"
    assert view.stage == "validate"
    assert view.exception_class == "KeyError"
    assert view.exception_message == "'booking'"
    assert view.original == "seatflow.booking-changes[3]@1234"
    assert view.original_partition == 3 and view.original_offset == 1234
    assert view.attempts == 1
    assert view.failed_at == "2026-11-21T18:00:05.123Z"
    assert view.key == "b-1001"
    assert view.value_preview == '{"not": "ok"'

    as_json = view.as_json()
    assert json.loads(json.dumps(as_json)) == as_json
    assert as_json["original_timestamp"] == "2026-11-21T18:00:00.000Z"
    assert as_json["key"] == "b-1001"
    assert as_json["value"] == '{"not": "ok"' and as_json["value_base64"] is None
    assert as_json["value_size"] == 12


def test_json_view_carries_exact_bytes_even_when_not_utf8() -> None:
    raw = b"line\n\xff\x00"
    letter = build_dead_letter(source(value=raw), "decode", ValueError("x"), NOW)
    as_json = parse_dead_letter(
        FakeRecord(0, 1, letter.key, letter.value, letter.headers)
    ).as_json()

    assert as_json["value"] is None
    assert base64.b64decode(as_json["value_base64"]) == raw
    assert as_json["value_preview"] == "line\\n\\xff\\x00"

    text = b"line\nwith newline"
    as_json = parse_dead_letter(FakeRecord(0, 2, None, text, letter.headers)).as_json()
    assert as_json["value"] == "line\nwith newline"  # exact text: JSON escapes it, not us
    assert as_json["key"] is None and as_json["key_base64"] is None


def test_parse_dead_letter_tolerates_a_record_without_headers() -> None:
    view = parse_dead_letter(FakeRecord(0, 0, None, None, []))

    assert view.stage == "?" and view.exception_class == "?"
    assert view.original == "?"
    assert view.attempts is None
    assert view.key is None and view.value_preview == "<null>"


def test_preview_escapes_non_printables_and_invalid_utf8() -> None:
    assert preview(b"line1\nline2\ttab\x00nul\x1b[31m") == "line1\\nline2\\ttab\\x00nul\\x1b[31m"
    assert preview(b"caf\xc3\xa9 \xff") == "café \\xff"
    assert preview("zero\u200bwidth".encode()) == "zero\\u200bwidth"


def test_preview_cuts_long_values() -> None:
    text = preview(b"a" * 500)
    assert len(text) == 80
    assert text == "a" * 79 + "…"
    assert preview(b"b" * 80) == "b" * 80
    assert preview(b"") == ""
