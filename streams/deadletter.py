"""Dead-letter records (docs/interface.md §5 `seatflow.dead-letters`). Pure: no I/O.

A dead letter is the consumed message's key and value bytes, unchanged, plus string headers
saying where it came from and why it failed. Agents call `build_dead_letter` with the message
they consumed and publish the result, with the ORIGINAL key, to the dead-letters topic.
`seatflow dlq replay` republishes it to its original topic with `replay_headers`; if the
replayed message fails again, its next dead letter counts one more attempt.

Headers the source message itself carried (other than earlier `x-dlq-*` bookkeeping) are kept
after the dead-letter headers, so a replay can hand them back unchanged.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, get_args

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from storage.intake import SourceMessage

DeadLetterStage = Literal["decode", "validate", "process"]
DEAD_LETTER_STAGES: Final[tuple[str, ...]] = get_args(DeadLetterStage)

# Header names, exactly as docs/interface.md §5 spells them.
H_ORIGINAL_TOPIC: Final = "x-dlq-original-topic"
H_ORIGINAL_PARTITION: Final = "x-dlq-original-partition"
H_ORIGINAL_OFFSET: Final = "x-dlq-original-offset"
H_ORIGINAL_TIMESTAMP: Final = "x-dlq-original-timestamp"
H_STAGE: Final = "x-dlq-stage"
H_EXCEPTION_CLASS: Final = "x-dlq-exception-class"
H_EXCEPTION_MESSAGE: Final = "x-dlq-exception-message"
H_ATTEMPTS: Final = "x-dlq-attempts"
H_FAILED_AT: Final = "x-dlq-failed-at"
# On a dead letter whose value was cut to fit in one message: the original size in bytes.
H_VALUE_TRUNCATED: Final = "x-dlq-value-truncated"
# Put on a message that `dlq replay` sent back to its original topic.
H_REPLAY: Final = "x-dlq-replay"
H_REPLAYED_FROM: Final = "x-dlq-replayed-from"

DLQ_HEADER_PREFIX: Final = "x-dlq-"
MAX_EXCEPTION_MESSAGE_CHARS: Final = 2000
VALUE_PREVIEW_CHARS: Final = 80

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetter:
    """What to publish on the dead-letters topic (with `key` as the record key)."""

    key: bytes | None
    value: bytes | None
    headers: Headers


def header_text(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    """The last value of header `name` as text, or None when absent."""
    found: str | None = None
    for header_name, raw in headers:
        if header_name == name:
            found = "" if raw is None else raw.decode("utf-8", errors="replace")
    return found


def _parse_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _is_replay(headers: Sequence[tuple[str, bytes | None]]) -> bool:
    return (header_text(headers, H_REPLAY) or "").strip().lower() == "true"


def previous_attempts(headers: Sequence[tuple[str, bytes | None]]) -> int:
    """Attempts already spent on a message: 0 unless it is a replay carrying a count."""
    if not _is_replay(headers):
        return 0
    return max(_parse_int(header_text(headers, H_ATTEMPTS)) or 0, 0)


def exception_class_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def single_line(text: str, limit: int = MAX_EXCEPTION_MESSAGE_CHARS) -> str:
    """Join lines with " | ", blank out control characters, cut to `limit` chars with "…"."""
    lines = (line.strip() for line in text.splitlines())
    joined = " | ".join(line for line in lines if line)
    joined = "".join(ch if ch.isprintable() else " " for ch in joined)
    if len(joined) > limit:
        joined = joined[: limit - 1] + "…"
    return joined


def exception_message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not stop the dead letter
        text = repr(exc)
    return single_line(text)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z. A naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter_headers(
    src: SourceMessage, stage: DeadLetterStage, exc: BaseException, now: datetime
) -> Headers:
    """The contract's dead-letter headers (UTF-8 strings), then the source's own headers."""
    if stage not in DEAD_LETTER_STAGES:
        raise ValueError(
            f"unknown dead-letter stage {stage!r}; expected one of {DEAD_LETTER_STAGES}"
        )
    # Kafka timestamps are epoch milliseconds; kept as that number so nothing is lost.
    timestamp = "" if src.timestamp_ms is None or src.timestamp_ms < 0 else str(src.timestamp_ms)
    fields = [
        (H_ORIGINAL_TOPIC, src.topic),
        (H_ORIGINAL_PARTITION, str(src.partition)),
        (H_ORIGINAL_OFFSET, str(src.offset)),
        (H_ORIGINAL_TIMESTAMP, timestamp),
        (H_STAGE, stage),
        (H_EXCEPTION_CLASS, exception_class_name(exc)),
        (H_EXCEPTION_MESSAGE, exception_message(exc)),
        (H_ATTEMPTS, str(previous_attempts(src.headers) + 1)),
        (H_FAILED_AT, iso_utc(now)),
    ]
    headers: Headers = [(name, value.encode("utf-8")) for name, value in fields]
    headers += [
        (name, raw if raw is not None else b"")
        for name, raw in src.headers
        if not name.startswith(DLQ_HEADER_PREFIX)
    ]
    return headers


def build_dead_letter(
    src: SourceMessage, stage: DeadLetterStage, exc: BaseException, now: datetime
) -> DeadLetter:
    """Publish `.value` with `.headers` to the dead-letters topic under `.key` (the original key)."""
    return DeadLetter(
        key=src.key, value=src.value, headers=dead_letter_headers(src, stage, exc, now)
    )


def dead_letter_size(letter: DeadLetter) -> int:
    """The producer's upper bound for the record (what it checks against max_request_size)."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(
        letter.key, letter.value, list(letter.headers)
    )


def fit_dead_letter(letter: DeadLetter, max_bytes: int) -> DeadLetter | None:
    """The dead letter as it can be published in one record of at most `max_bytes`: whole
    when it fits; else with the value cut to its first bytes and `x-dlq-value-truncated`
    naming the original size; None when even an empty value does not fit (a huge key or
    huge headers): that one cannot go to the topic at all."""
    if dead_letter_size(letter) <= max_bytes:
        return letter
    value = letter.value or b""
    headers = [*letter.headers, (H_VALUE_TRUNCATED, str(len(value)).encode())]
    room = max_bytes - dead_letter_size(DeadLetter(letter.key, b"", headers))
    if room < 0:
        return None
    # The value's length prefix grows by a byte or two with its size: trim until it fits.
    cut = DeadLetter(letter.key, value[:room], headers)
    while dead_letter_size(cut) > max_bytes:
        cut = DeadLetter(letter.key, cut.value[:-8], headers)  # type: ignore[index]
    return cut


def replay_headers(
    dead_letter_headers: Sequence[tuple[str, bytes | None]], *, partition: int, offset: int
) -> Headers:
    """Headers for republishing the dead letter at dead-letters `partition:offset`.

    The source's own headers come back unchanged; the `x-dlq-*` bookkeeping is replaced by
    the replay marker, the attempts so far, and where the replay came from.
    """
    attempts = max(_parse_int(header_text(dead_letter_headers, H_ATTEMPTS)) or 1, 1)
    kept: Headers = [
        (name, raw if raw is not None else b"")
        for name, raw in dead_letter_headers
        if not name.startswith(DLQ_HEADER_PREFIX)
    ]
    return kept + [
        (H_REPLAY, b"true"),
        (H_ATTEMPTS, str(attempts).encode("utf-8")),
        (H_REPLAYED_FROM, f"{partition}:{offset}".encode()),
    ]


# --- reading dead letters back (for the CLI) -----------------------------------------------


class RecordLike(Protocol):
    """What `parse_dead_letter` needs of a consumed record (aiokafka's ConsumerRecord fits)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_text(text: str) -> str:
    """Printable characters as they are; others as \\n, \\t, \\xNN or \\uNNNN."""
    out: list[str] = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def bytes_text(raw: bytes | None) -> str | None:
    """Bytes as readable text: UTF-8, invalid bytes as \\xNN, control characters escaped."""
    if raw is None:
        return None
    return escape_text(raw.decode("utf-8", errors="backslashreplace"))


def preview(raw: bytes | None, limit: int = VALUE_PREVIEW_CHARS) -> str:
    """The first `limit` characters of `bytes_text(raw)`, with "…" when cut; "<null>" for None."""
    text = bytes_text(raw)
    if text is None:
        return "<null>"
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def _json_bytes(name: str, raw: bytes | None) -> dict[str, str | None]:
    """`name` as exact text when it is valid UTF-8; otherwise `name_base64` carries the bytes."""
    if raw is None:
        return {name: None, f"{name}_base64": None}
    try:
        return {name: raw.decode("utf-8"), f"{name}_base64": None}
    except UnicodeDecodeError:
        return {name: None, f"{name}_base64": base64.b64encode(raw).decode("ascii")}


@dataclass(frozen=True)
class DeadLetterView:
    """One dead letter as `seatflow dlq tail` shows it."""

    dead_letter_partition: int
    dead_letter_offset: int
    failed_at: str
    stage: str
    exception_class: str
    exception_message: str
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    original_timestamp_ms: int | None
    attempts: int | None
    key_bytes: bytes | None
    value_bytes: bytes | None

    @property
    def key(self) -> str | None:
        """The key for display (escaped), None for a null key."""
        return bytes_text(self.key_bytes)

    @property
    def value_preview(self) -> str:
        return preview(self.value_bytes)

    @property
    def position(self) -> str:
        """Where the dead letter sits in the dead-letters topic, as `replay --offset` takes it."""
        return f"{self.dead_letter_partition}:{self.dead_letter_offset}"

    @property
    def original(self) -> str:
        if self.original_topic is None:
            return "?"
        partition = "?" if self.original_partition is None else self.original_partition
        offset = "?" if self.original_offset is None else self.original_offset
        return f"{self.original_topic}[{partition}]@{offset}"

    def as_json(self) -> dict[str, Any]:
        original_time: str | None = None
        if self.original_timestamp_ms is not None:
            try:
                moment = datetime.fromtimestamp(self.original_timestamp_ms / 1000, tz=UTC)
                original_time = iso_utc(moment)
            except (OverflowError, OSError, ValueError):
                original_time = None
        return {
            "dead_letter": self.position,
            "dead_letter_partition": self.dead_letter_partition,
            "dead_letter_offset": self.dead_letter_offset,
            "failed_at": self.failed_at,
            "stage": self.stage,
            "exception_class": self.exception_class,
            "exception_message": self.exception_message,
            "attempts": self.attempts,
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "original_timestamp_ms": self.original_timestamp_ms,
            "original_timestamp": original_time,
            **_json_bytes("key", self.key_bytes),
            **_json_bytes("value", self.value_bytes),
            "value_preview": self.value_preview,
            "value_size": 0 if self.value_bytes is None else len(self.value_bytes),
        }


def parse_dead_letter(record: RecordLike) -> DeadLetterView:
    """Read a dead-letters record; missing or garbled headers show as "?" / None, never raise."""
    headers = list(record.headers or ())
    return DeadLetterView(
        dead_letter_partition=record.partition,
        dead_letter_offset=record.offset,
        failed_at=header_text(headers, H_FAILED_AT) or "?",
        stage=header_text(headers, H_STAGE) or "?",
        exception_class=header_text(headers, H_EXCEPTION_CLASS) or "?",
        exception_message=header_text(headers, H_EXCEPTION_MESSAGE) or "",
        original_topic=header_text(headers, H_ORIGINAL_TOPIC) or None,
        original_partition=_parse_int(header_text(headers, H_ORIGINAL_PARTITION)),
        original_offset=_parse_int(header_text(headers, H_ORIGINAL_OFFSET)),
        original_timestamp_ms=_parse_int(header_text(headers, H_ORIGINAL_TIMESTAMP)),
        attempts=_parse_int(header_text(headers, H_ATTEMPTS)),
        key_bytes=record.key,
        value_bytes=record.value,
    )
