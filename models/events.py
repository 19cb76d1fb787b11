"""The event schemas of the contract (docs/interface.md §§3, 5) and the internal allocation request.

Input models are strict about what the contract requires and tolerant of extra fields
(a newer producer may add some); output models are what we publish, field for field.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, time
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.common import HHMM, ISODate, Text

SCHEMA_VERSION = 1
ChangeType = Literal["booking.created", "booking.updated", "booking.cancelled"]
StatusType = Literal[
    "booking.pending",
    "booking.confirmed",
    "booking.cancelled",
    "booking.allocation_failed",
    "booking.tables_changed",
]
Status = Literal["pending", "confirmed", "cancelled"]
StatusReason = Literal["created", "modification", "retry", "capacity_released"]
NotificationKind = Literal[
    "request_received",
    "confirmed",
    "modification_pending",
    "modification_confirmed",
    "cancelled",
    "allocation_failed",
]

# Deterministic ids: a republished fact keeps its id so consumers can dedupe (docs/interface.md §5).
_NAMESPACE = uuid.UUID("6f1d3c0e-7b7a-4d52-9a8e-5ea7f10a0001")


_NAMESPACE_BYTES = _NAMESPACE.bytes


def derived_id(*parts: object) -> str:
    """uuid5(_NAMESPACE, parts joined by US), computed without uuid.UUID objects.

    Same result as `str(uuid.uuid5(...))` (a unit test pins that); several ids are derived
    per event on the hot path, where the UUID object round trips dominated the cost."""
    name = "\x1f".join(str(p) for p in parts).encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- input: booking changes -----------------------------------------------------------------


class BookingPayload(BaseModel):
    """`booking` inside a change event. Full for created/updated; ids only for cancelled."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    booking_id: Text = Field(min_length=1, max_length=200)
    restaurant_id: Text = Field(min_length=1, max_length=200)
    booking_date: ISODate | None = None
    start_time: HHMM | None = None
    end_time: HHMM | None = None
    party_size: int | None = Field(None, ge=1, le=1000)
    customer_name: Text | None = Field(None, max_length=500)
    customer_email: Text | None = Field(None, max_length=320)
    customer_phone: Text | None = Field(None, max_length=100)
    seating_preference: Text | None = Field(None, max_length=100)
    notes: Text | None = Field(None, max_length=5000)


# What booking.created and booking.updated must carry inside `booking` (cancelled: ids only).
_FULL_BOOKING_FIELDS = ("booking_date", "start_time", "party_size", "customer_name")


class BookingChange(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        # The rule of `_full_booking_unless_cancelled`, for the published JSON Schema.
        json_schema_extra={
            "if": {"properties": {"type": {"const": "booking.cancelled"}}},
            "else": {"properties": {"booking": {
                "required": list(_FULL_BOOKING_FIELDS),
                "properties": {name: {"not": {"type": "null"}} for name in _FULL_BOOKING_FIELDS},
            }}},
        },
    )

    schema_version: Literal[1]
    event_id: Text = Field(min_length=1, max_length=200)
    type: ChangeType
    occurred_at: datetime
    source: Literal["guest", "ops"]
    channel: Text | None = Field(None, max_length=100)
    idempotency_key: Text | None = Field(None, max_length=200)
    booking: BookingPayload

    @model_validator(mode="after")
    def _full_booking_unless_cancelled(self) -> Self:
        if self.type == "booking.cancelled":
            return self
        missing = [name for name in _FULL_BOOKING_FIELDS if getattr(self.booking, name) is None]
        if missing:
            raise ValueError(
                f"{self.type} needs booking fields: " + ", ".join(f"booking.{m}" for m in missing)
            )
        # An end earlier than the start ends on the next day (a booking past midnight);
        # an end equal to the start has no length.
        if self.booking.end_time is not None and self.booking.end_time == self.booking.start_time:
            raise ValueError("booking.end_time must differ from booking.start_time")
        return self

    @property
    def booking_date(self) -> date:
        assert self.booking.booking_date is not None
        return self.booking.booking_date

    @property
    def start_time(self) -> time:
        assert self.booking.start_time is not None
        return self.booking.start_time


# --- output: status, notifications, ops ---------------------------------------------------------


class BookingStatusEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    type: StatusType
    occurred_at: datetime
    booking_id: str
    restaurant_id: str
    status: Status
    pending_ref: str | None
    reason: StatusReason | None = None
    variant: Literal["standard", "modified"] | None = None
    table_ids: list[str] | None = None
    caused_by: str | None = None
    # Grows with every status event decided for the booking: a consumer that sees an older
    # version after a newer one (a republish after a crash) drops it.
    booking_version: int
    failure_reason: str | None = None

    @staticmethod
    def make_id(
        booking_id: str, type_: str, pending_ref: str | None, version: int | None = None
    ) -> str:
        """Derived from booking, transition and pending_ref, so a republish keeps it.
        `booking.tables_changed` can happen several times per episode: its version tells
        the moves apart."""
        if type_ == "booking.tables_changed":
            return derived_id("status", booking_id, type_, pending_ref, version)
        return derived_id("status", booking_id, type_, pending_ref)


class NotificationRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    notification_id: str
    booking_id: str
    restaurant_id: str
    kind: NotificationKind
    channel: Literal["email"] = "email"
    to: str | None
    pending_ref: str | None
    status: Literal["queued", "suppressed", "skipped"]
    reason: str | None = None
    due_at: datetime
    occurred_at: datetime

    @staticmethod
    def make_id(booking_id: str, kind: str, pending_ref: str | None) -> str:
        return derived_id("notification", booking_id, kind, pending_ref)


class OpsEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_type: str
    occurred_at: datetime
    severity: Literal["debug", "info", "warning", "error"] = "info"
    booking_id: str | None = None
    restaurant_id: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)


# --- internal: allocation requests (key: restaurant_id) -----------------------------------------


class AllocationRequest(BaseModel):
    """Ask the allocator to try one booking episode, or every pending booking of a date.

    `request_id` is the request's identity: derived from (booking, pending_ref, attempt)
    or, for a capacity sweep, from the transition that released the capacity. The
    allocator records it in the transaction that acts on it, so a redelivered, replayed or
    republished request is recognised and changes nothing (it spends no retry)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    restaurant_id: Text
    reason: StatusReason
    booking_id: Text | None = None
    pending_ref: Text | None = None
    attempt: int | None = Field(None, ge=1)
    booking_date: ISODate | None = None
    request_id: Text | None = None
    requested_at: datetime = Field(default_factory=utcnow)

    @staticmethod
    def attempt_id(booking_id: str, pending_ref: str | None, attempt: int) -> str:
        return derived_id("allocation-attempt", booking_id, pending_ref, attempt)

    @staticmethod
    def sweep_id(restaurant_id: str, day: date, cause: str) -> str:
        return derived_id("allocation-sweep", restaurant_id, day.isoformat(), cause)
