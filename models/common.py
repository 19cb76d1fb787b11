"""Field types shared by the contract schemas: strict local times and dates."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_hhmm(value: object) -> time:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not _HHMM.match(value):
        raise ValueError(f"must be a time as HH:MM (00:00-23:59), got {value!r}")
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


def _parse_date(value: object) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError(f"must be a date as YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"must be a valid calendar date, got {value!r}") from exc


# The published JSON Schemas (`seatflow schema`) say exactly what the parsers accept: pydantic
# would describe a `time` as ISO 8601 `format: time` (seconds, zone), which HH:MM is not.
HHMM = Annotated[
    time,
    BeforeValidator(_parse_hhmm),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": _HHMM.pattern,
                    "description": "HH:MM, local time of the restaurant"}),
]
ISODate = Annotated[
    date,
    BeforeValidator(_parse_date),
    PlainSerializer(lambda d: d.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _DATE.pattern,
                    "description": "YYYY-MM-DD"}),
]


def _storable(value: str) -> str:
    """Text PostgreSQL can store: no NUL character, no lone UTF-16 surrogate (JSON allows
    both as escapes; text and jsonb columns refuse them, so they are refused here, at
    validation, naming the field, instead of failing later at stage `process`)."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from exc
    return value


# Every text field of the input schemas.
Text = Annotated[str, AfterValidator(_storable)]


def format_error(exc: Exception) -> str:
    """One line per problem, each naming the field path: `booking.party_size: ...`."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
        msg = err.get("msg", "invalid")
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)
