"""Validating messages against the committed JSON Schemas (docs/schemas, `seatflow schema`)
with the `jsonschema` package, as a team on the other side of the topics would."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from seatflow.schemas import Message

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"

# jsonschema checks `date` itself; `date-time` only with an extra package, so here: RFC 3339
# needs a zone, which fromisoformat alone would not insist on.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


@cache
def validator(message: Message) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / message.file).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMATS)


def problems(message: Message, instance: Any) -> list[str]:
    """Every way `instance` breaks the message's schema, each naming the path; [] when valid."""
    return [
        f"{message.name} {'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator(message).iter_errors(instance)
    ]
