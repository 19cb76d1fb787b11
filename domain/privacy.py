"""Guests' personal data: what counts as it, how it is kept out of errors, and how stored
copies of it are scrubbed (docs/deployment.md "Personal data").

Personal data is a booking's `customer_name`, `customer_email`, `customer_phone` and
`notes` (free text a guest wrote). A booking's facts (restaurant, date, times, party,
tables, status) are not: they stay for reporting after the guest's data is erased.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from models.events import BookingChange

# What an erased value becomes where the schema wants text (a parked change's name).
ERASED = "(erased)"
REDACTED = "<redacted>"
# Anything shaped like an email address, e.g. in a mail server's reply.
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"'@]+@[^\s<>()\[\],;:\"'@]+")
# Values shorter than this are not searched for inside other text (a two-letter name
# would match everywhere).
MIN_NEEDLE_CHARS = 3

PERSONAL_FIELDS = ("customer_name", "customer_email", "customer_phone", "notes")


def needles(values: Iterable[str | None]) -> list[str]:
    """The distinct, searchable personal values, longest first (so a longer value is
    replaced before a shorter one inside it)."""
    found = {v.strip() for v in values if v and len(v.strip()) >= MIN_NEEDLE_CHARS}
    return sorted(found, key=lambda v: (-len(v), v))


def _whole(value: str) -> str:
    # As a whole word, case-insensitive: a guest called "Con" must not match "confirmed".
    return r"(?<!\w)" + re.escape(value) + r"(?!\w)"


def redact(text: str, *values: str | None) -> str:
    """`text` without the given personal values or any email address: for error messages
    that are stored, published or logged."""
    for value in needles(values):
        text = re.sub(_whole(value), REDACTED, text, flags=re.IGNORECASE)
    return _ADDRESS.sub(REDACTED, text)


def contains_any(text: str, values: list[str]) -> bool:
    return any(re.search(_whole(v), text, flags=re.IGNORECASE) for v in values)


def _is_identifier(key: str) -> bool:
    # Ids are opaque references a consumer joins on; one that happens to contain a name
    # ("b-ada-1") must survive.
    return key.endswith("_id") or key in ("pending_ref", "caused_by")


def scrub_json(value: Any, values: list[str]) -> Any:
    """A JSON value with every string that holds one of `values` (as a whole word,
    case-insensitive) replaced by null, identifiers excepted; the rest unchanged."""
    if isinstance(value, str):
        return None if contains_any(value, values) else value
    if isinstance(value, list):
        return [scrub_json(v, values) for v in value]
    if isinstance(value, dict):
        return {k: v if _is_identifier(k) else scrub_json(v, values) for k, v in value.items()}
    return value


def scrub_change(payload: dict[str, Any]) -> dict[str, Any]:
    """A stored booking change (JSON) without the guest's data: the booking's personal
    fields null, but the name, which a new booking must have, ERASED."""
    booking = payload.get("booking")
    if not isinstance(booking, dict):
        return payload
    scrubbed = {**booking, **{name: None for name in PERSONAL_FIELDS}, "customer_name": ERASED}
    return {**payload, "booking": scrubbed}


def scrub_bytes(data: bytes | None, values: list[str]) -> bytes | None:
    """Raw bytes (a dead letter's key, value or header) with each of `values` replaced."""
    if data is None:
        return None
    for value in values:
        data = re.sub(_whole(value).encode(), ERASED.encode(), data, flags=re.IGNORECASE)
    return data


def without_personal_data(change: BookingChange) -> BookingChange:
    """The change with the guest's data left out: for a booking erased before, which stays
    erased whatever upstream sends (a replay, an edit)."""
    booking = change.booking.model_copy(update=dict.fromkeys(PERSONAL_FIELDS))
    return change.model_copy(update={"booking": booking})
