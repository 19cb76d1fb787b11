"""Facts to publish, built from decisions: status events, ops events, allocation requests.

The rows are written to the outbox (storage.outbox) in the transaction that decided them
and published after it commits. Every value carries a deterministic id, so a row published
twice is a duplicate consumers can drop.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from config.topics import Topic
from domain.model import BookingState, OpsNote, StatusChange
from models.events import (
    AllocationRequest,
    BookingStatusEvent,
    NotificationRecord,
    OpsEvent,
    StatusReason,
)
from storage.outbox import OutboxRow


def _row(topic: Topic, key: str | None, model: BaseModel) -> OutboxRow:
    return OutboxRow(topic, key, model.model_dump_json().encode())


def status_row(state: BookingState, change: StatusChange, now: datetime) -> OutboxRow:
    event = BookingStatusEvent(
        event_id=BookingStatusEvent.make_id(
            state.booking_id, change.type, change.pending_ref, change.booking_version
        ),
        type=change.type,
        occurred_at=now,
        booking_id=state.booking_id,
        restaurant_id=state.restaurant_id,
        status=change.status,
        pending_ref=change.pending_ref,
        reason=change.reason,
        variant=change.variant,
        table_ids=list(change.table_ids) if change.table_ids is not None else None,
        caused_by=change.caused_by,
        booking_version=change.booking_version,
        failure_reason=change.failure_reason,
    )
    return _row(Topic.BOOKING_STATUS, state.booking_id, event)


def ops_row(
    note: OpsNote,
    now: datetime,
    *,
    booking_id: str | None = None,
    restaurant_id: str | None = None,
) -> OutboxRow:
    event = OpsEvent(
        event_type=note.event_type,
        occurred_at=now,
        severity=note.severity,
        booking_id=booking_id,
        restaurant_id=restaurant_id,
        context=note.context,
    )
    return _row(Topic.OPS_EVENTS, booking_id or restaurant_id, event)


def allocation_row(
    restaurant_id: str,
    reason: StatusReason,
    now: datetime,
    *,
    booking_id: str | None = None,
    pending_ref: str | None = None,
    attempt: int | None = None,
    booking_date: date | None = None,
    cause: str | None = None,
) -> OutboxRow:
    """A request for one booking's `attempt` of its episode, or (`booking_date` and the
    `cause` that released capacity) a sweep of the date's pending bookings."""
    if booking_id is not None:
        assert attempt is not None, "a booking's request names its attempt"
        request_id = AllocationRequest.attempt_id(booking_id, pending_ref, attempt)
    else:
        assert booking_date is not None and cause is not None, "a sweep names date and cause"
        request_id = AllocationRequest.sweep_id(restaurant_id, booking_date, cause)
    request = AllocationRequest(
        restaurant_id=restaurant_id,
        reason=reason,
        booking_id=booking_id,
        pending_ref=pending_ref,
        attempt=attempt,
        booking_date=booking_date,
        request_id=request_id,
        requested_at=now,
    )
    return _row(Topic.ALLOCATION_REQUESTS, restaurant_id, request)


def notification_row(record: NotificationRecord) -> OutboxRow:
    return _row(Topic.NOTIFICATIONS, record.booking_id, record)
