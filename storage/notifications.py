"""The email outbox table: one row per (booking, kind, pending_ref), whatever is redelivered.

A row's life: held (inside the inline window) | due -> sending -> sent | failed, or ->
suppressed | skipped | cancelled. A `sending` row carries its lease's token; every write
after the send is conditional on it (services/emails.py says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class NewNotification:
    notification_id: str
    booking_id: str
    restaurant_id: str
    kind: str
    pending_ref: str
    recipient: str | None
    held: bool  # held for the inline window (else due at once)
    due_at: datetime


@dataclass(frozen=True)
class Finalised:
    """A due row decided without sending: its final status and why."""

    notification_id: str
    status: str  # suppressed | skipped | cancelled
    reason: str | None


class NotificationRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def add(self, rows: list[NewNotification]) -> None:
        if rows:
            await self.conn.execute(
                "INSERT INTO notifications (notification_id, booking_id, restaurant_id, kind,"
                " pending_ref, recipient, status, due_at) SELECT * FROM unnest($1::text[],"
                " $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
                " $8::timestamptz[]) ON CONFLICT DO NOTHING",
                [r.notification_id for r in rows],
                [r.booking_id for r in rows],
                [r.restaurant_id for r in rows],
                [r.kind for r in rows],
                [r.pending_ref for r in rows],
                [r.recipient for r in rows],
                ["held" if r.held else "due" for r in rows],
                [r.due_at for r in rows],
            )

    async def cancel_unsent(self, booking_ids: list[str], kinds: list[str]) -> None:
        """Drop the bookings' emails of these kinds not yet handed to the mail server."""
        if booking_ids:
            await self.conn.execute(
                "UPDATE notifications SET status = 'cancelled', reason = 'superseded'"
                " WHERE booking_id = ANY($1::text[]) AND status IN ('held', 'due')"
                " AND kind = ANY($2::text[])",
                booking_ids,
                kinds,
            )

    async def lock_due(self, *, now: datetime, limit: int) -> list[asyncpg.Record]:
        """Due rows (and `sending` rows whose lease ran out), oldest first, row-locked, with
        their booking's current status and whether its guest's data was erased."""
        # One range of the index `notifications_due`, up to now: with `due_at <= $1` only
        # inside an OR, each claim walked every email still held in its inline window
        # (bench.soak: ~640 index entries per change). It takes no `sending` row away: a lease
        # starts at or after due_at and lasts `lease` > 0, so one that ran out was due before.
        return await self.conn.fetch(
            "SELECT n.notification_id, n.booking_id, n.restaurant_id, n.kind, n.pending_ref,"
            " n.recipient, n.status, n.due_at, n.attempts, b.status AS booking_status,"
            " b.erased_at IS NOT NULL AS erased"
            " FROM notifications n LEFT JOIN bookings b ON b.booking_id = n.booking_id"
            " WHERE n.status IN ('held', 'due', 'sending') AND n.due_at <= $1"
            " AND (n.status <> 'sending' OR n.lease_until < $1)"
            " ORDER BY n.due_at LIMIT $2 FOR UPDATE OF n SKIP LOCKED",
            now,
            limit,
        )

    async def finalise(self, rows: list[Finalised]) -> None:
        if rows:
            await self.conn.execute(
                "UPDATE notifications n SET status = x.s, reason = x.r FROM"
                " unnest($1::text[], $2::text[], $3::text[]) AS x(id, s, r)"
                " WHERE n.notification_id = x.id",
                [r.notification_id for r in rows],
                [r.status for r in rows],
                [r.reason for r in rows],
            )

    async def lease(self, tokens: dict[str, str], until: datetime) -> None:
        """tokens: notification_id -> the lease's token."""
        if tokens:
            await self.conn.execute(
                "UPDATE notifications n SET status = 'sending', lease_token = x.token,"
                " lease_until = $3, attempts = n.attempts + 1"
                " FROM unnest($1::text[], $2::text[]) AS x(id, token)"
                " WHERE n.notification_id = x.id",
                list(tokens),
                list(tokens.values()),
                until,
            )

    async def mark_sent(self, notification_id: str, token: str, now: datetime
                        ) -> asyncpg.Record | None:
        """None when the lease was lost (another sender holds the row now)."""
        return await self.conn.fetchrow(
            "UPDATE notifications SET status = 'sent', sent_at = $3, lease_until = NULL,"
            " last_error = NULL WHERE notification_id = $1 AND lease_token = $2"
            " AND status = 'sending' RETURNING notification_id, booking_id, restaurant_id, kind",
            notification_id,
            token,
            now,
        )

    async def mark_retry(self, notification_id: str, token: str, due_at: datetime, error: str
                         ) -> asyncpg.Record | None:
        return await self.conn.fetchrow(
            "UPDATE notifications SET status = 'due', due_at = $3, lease_until = NULL,"
            " last_error = $4 WHERE notification_id = $1 AND lease_token = $2"
            " AND status = 'sending' RETURNING notification_id, booking_id, restaurant_id, kind",
            notification_id,
            token,
            due_at,
            error[:2000],
        )

    async def mark_failed(self, notification_id: str, token: str, error: str
                          ) -> asyncpg.Record | None:
        return await self.conn.fetchrow(
            "UPDATE notifications SET status = 'failed', lease_until = NULL, last_error = $3"
            " WHERE notification_id = $1 AND lease_token = $2 AND status = 'sending'"
            " RETURNING notification_id, booking_id, restaurant_id, kind",
            notification_id,
            token,
            error[:2000],
        )

    async def of_booking(self, booking_id: str) -> list[dict[str, Any]]:
        """A booking's emails, as `GET /bookings/{id}` lists them."""
        rows = await self.conn.fetch(
            "SELECT kind, status, pending_ref, recipient, reason, due_at, sent_at, attempts"
            " FROM notifications WHERE booking_id = $1 ORDER BY created_at, kind",
            booking_id,
        )
        return [dict(r) for r in rows]
