"""Facts to publish, written in the transaction that decided them (the transactional outbox).

Rows name a *logical* topic (see `Logical`); the publisher maps it to the prefixed name.
After commit the agent publishes its own rows at once and deletes them; a relay timer
publishes whatever a crash left behind. Every value carries a deterministic id, so a
row published twice is a duplicate consumers can drop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from pydantic import BaseModel

from domain.model import BookingState, OpsNote, StatusChange
from models.events import AllocationRequest, BookingStatusEvent, OpsEvent, StatusReason


class Logical(StrEnum):
    BOOKING_STATUS = "booking-status"
    NOTIFICATIONS = "notifications"
    OPS_EVENTS = "ops-events"
    ALLOCATION_REQUESTS = "allocation-requests"


@dataclass(frozen=True)
class OutboxRow:
    topic: Logical
    key: str | None
    payload: bytes  # the JSON record exactly as it is published
    id: int | None = None

    @property
    def value(self) -> dict[str, Any]:
        return json.loads(self.payload)


def _row(topic: Logical, key: str | None, model: BaseModel) -> OutboxRow:
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
    return _row(Logical.BOOKING_STATUS, state.booking_id, event)


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
    return _row(Logical.OPS_EVENTS, booking_id or restaurant_id, event)


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
    return _row(Logical.ALLOCATION_REQUESTS, restaurant_id, request)


async def insert(conn: asyncpg.Connection, rows: list[OutboxRow]) -> list[OutboxRow]:
    """Store rows; returns them with their ids (in order)."""
    if not rows:
        return []
    ids = await conn.fetch(
        "INSERT INTO outbox (topic, key, payload) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) RETURNING id",
        [str(r.topic) for r in rows],
        [r.key for r in rows],
        [r.payload for r in rows],
    )
    return [
        OutboxRow(r.topic, r.key, r.payload, rec["id"]) for r, rec in zip(rows, ids, strict=True)
    ]


async def delete(conn: asyncpg.Connection | asyncpg.Pool, ids: list[int]) -> None:
    if ids:
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)


async def claim_stale(conn: asyncpg.Connection, *, older_than_s: float, limit: int) -> list[OutboxRow]:
    """Rows a crashed publisher left behind; the caller publishes them before committing."""
    records = await conn.fetch(
        "DELETE FROM outbox WHERE id IN ("
        "  SELECT id FROM outbox WHERE created_at < now() - make_interval(secs => $1)"
        "  ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED"
        ") RETURNING id, topic, key, payload",
        older_than_s,
        limit,
    )
    rows = [OutboxRow(Logical(r["topic"]), r["key"], r["payload"], r["id"]) for r in records]
    rows.sort(key=lambda r: r.id or 0)
    return rows
