"""Plain domain data: a booking's stored state and the effects a decision asks for.

Nothing here does I/O; the service layer persists a `Decision` and publishes what it lists.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from datetime import date, time
from typing import Any, Literal, TypeVar

from models.events import Status, StatusReason, StatusType

EpisodeKind = Literal["created", "modification"]
AllocState = Literal["idle", "queued", "retry", "exhausted", "done"]
Audience = Literal["guest", "restaurant"]
R = TypeVar("R")


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    # What evolve and assemble rely on: every field set by __init__, kept in __dict__, and
    # nothing else done on construction.
    assert "__slots__" not in cls.__dict__ and not hasattr(cls, "__post_init__"), cls
    record_fields = fields(cls)
    assert all(f.init for f in record_fields), cls
    return frozenset(f.name for f in record_fields)


def evolve(record: R, **changes: Any) -> R:
    """`dataclasses.replace` for this module's frozen records, several times cheaper: it
    copies the instance's attributes instead of calling the generated __init__ (which sets
    each of BookingState's 26 fields through object.__setattr__); replace and that
    __init__ were ~10 % of the worker's CPU. The result is as frozen as the original."""
    cls = type(record)
    names = _field_names(cls)
    if not names.issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field {sorted(set(changes) - names)[0]!r}")
    new = object.__new__(cls)
    new.__dict__.update(record.__dict__, **changes)
    return new


def assemble(cls: type[R], values: dict[str, Any]) -> R:
    """`cls(**values)` for this module's frozen records when `values` names every field
    (as a stored row does), without the generated __init__ (see evolve)."""
    names = _field_names(cls)
    if values.keys() != names:
        raise TypeError(f"{cls.__name__} fields missing or unknown: "
                        f"{sorted(names ^ values.keys())}")
    new = object.__new__(cls)
    new.__dict__.update(values)
    return new


@dataclass(frozen=True)
class BookingState:
    booking_id: str
    restaurant_id: str
    status: Status
    pending_ref: str | None
    episode_kind: EpisodeKind
    episode_caused_by: str | None
    booking_date: date
    start_time: time
    requested_end_time: time | None
    end_time: time | None
    party_size: int
    customer_name: str | None
    customer_email: str | None
    customer_phone: str | None
    seating_preference: str | None = None
    notes: str | None = None
    source: str = "guest"
    channel: str | None = None
    idempotency_key: str | None = None
    ever_confirmed: bool = False
    alloc_state: AllocState = "idle"
    attempts: int = 0
    table_ids: tuple[str, ...] = ()
    last_failure: str | None = None
    # Status events decided for this booking so far (the last one's booking_version).
    version: int = 0
    # The guest's data was erased (on request or past retention): it stays erased.
    personal_data_erased: bool = False


@dataclass(frozen=True)
class StatusChange:
    """One transition, published on booking-status."""

    type: StatusType
    status: Status
    pending_ref: str | None
    reason: StatusReason | None
    caused_by: str | None
    variant: Literal["standard", "modified"] | None = None
    table_ids: tuple[str, ...] | None = None
    failure_reason: str | None = None
    booking_version: int = 0


@dataclass(frozen=True)
class NotificationIntent:
    kind: str
    audience: Audience
    pending_ref: str
    hold: bool  # held for the inline window; a confirmation inside it cancels the row


@dataclass(frozen=True)
class OpsNote:
    event_type: str
    severity: Literal["debug", "info", "warning", "error"] = "info"
    context: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AllocationAsk:
    """Ask the allocator to try this booking's current episode."""

    reason: StatusReason
    pending_ref: str
    attempt: int = 1  # which attempt of the episode this asks for (its identity)


@dataclass(frozen=True)
class RetrySchedule:
    """When the next allocation attempt is due, in seconds from the failed attempt."""

    delay_s: float


@dataclass
class Decision:
    """Everything one input causes. Empty means: change nothing, publish nothing."""

    state: BookingState | None = None
    release_tables: bool = False
    status_changes: list[StatusChange] = field(default_factory=list)
    notifications: list[NotificationIntent] = field(default_factory=list)
    cancel_held_emails: bool = False
    allocation: AllocationAsk | None = None
    retry: RetrySchedule | None = None
    capacity_released: list[tuple[str, date]] = field(default_factory=list)
    ops: list[OpsNote] = field(default_factory=list)
