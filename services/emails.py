"""The email outbox: decide due rows, send them one at a time, record each result.

A row's life: held (inside the inline window) | due -> sending -> sent | failed,
or -> suppressed | skipped | cancelled. The decision is published once, when a row first
falls due. Each send is recorded right after the server accepts it, so a crash can repeat
at most the one message in flight, with the same Message-ID (CONTRACT §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from domain.model import OpsNote
from domain.walkins import is_synthetic
from mail.render import EmailBooking, EmailRestaurant
from models.events import NotificationRecord
from services import outbox
from services.outbox import Logical, OutboxRow
from storage import repository as repo

LEASE = timedelta(seconds=60)
MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class EmailJob:
    notification_id: str
    kind: str
    recipient: str
    attempts: int
    booking: EmailBooking
    restaurant: EmailRestaurant
    failure_reason: str | None


def backoff_s(attempts: int) -> float:
    return min(MAX_BACKOFF_S, 1.0 * 2 ** max(0, attempts - 1))


def _record(row: asyncpg.Record, status: str, reason: str | None, now: datetime) -> OutboxRow:
    rec = NotificationRecord(
        notification_id=row["notification_id"],
        booking_id=row["booking_id"],
        restaurant_id=row["restaurant_id"],
        kind=row["kind"],
        to=row["recipient"],
        pending_ref=row["pending_ref"],
        status=status,
        reason=reason,
        due_at=row["due_at"],
        occurred_at=now,
    )
    return OutboxRow(Logical.NOTIFICATIONS, row["booking_id"], rec.model_dump_json().encode())


def _ops(row: asyncpg.Record, event_type: str, now: datetime, severity: str = "info",
         **context: object) -> OutboxRow:
    note = OpsNote(event_type, severity, {"kind": row["kind"], "notification_id":
                                         row["notification_id"], **context})
    return outbox.ops_row(note, now, booking_id=row["booking_id"],
                          restaurant_id=row["restaurant_id"])


@dataclass
class Claim:
    jobs: list[EmailJob]  # leased, to send now
    facts: list[OutboxRow]  # decisions and ops events to publish
    finalised: dict[str, int]  # rows decided without sending: status -> count


async def claim_due(
    conn: asyncpg.Connection, *, now: datetime, suppress: bool, limit: int = 200
) -> Claim:
    """Inside the caller's transaction: finalise due rows and lease the ones to send."""
    rows = await conn.fetch(
        "SELECT notification_id, booking_id, restaurant_id, kind, pending_ref, recipient, status,"
        " due_at, attempts FROM notifications WHERE"
        " (status IN ('held', 'due') AND due_at <= $1) OR (status = 'sending' AND lease_until < $1)"
        " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    if not rows:
        return Claim([], [], {})
    facts: list[OutboxRow] = []
    final: list[tuple[str, str, str | None]] = []  # (id, status, reason)
    to_send: list[asyncpg.Record] = []
    for row in rows:
        first_decision = row["status"] in ("held", "due") and row["attempts"] == 0
        reason = None
        if row["recipient"] is None or not row["recipient"].strip():
            reason = "no_recipient"
        elif is_synthetic(row["recipient"]):
            reason = "synthetic_address"
        if reason is not None:
            final.append((row["notification_id"], "skipped", reason))
            facts.append(_record(row, "skipped", reason, now))
        elif suppress:
            final.append((row["notification_id"], "suppressed", "SUPPRESS_EMAILS"))
            facts.append(_record(row, "suppressed", "SUPPRESS_EMAILS", now))
            facts.append(_ops(row, "email.suppressed", now, to=row["recipient"]))
        else:
            if first_decision:
                facts.append(_record(row, "queued", None, now))
            to_send.append(row)
    if final:
        await conn.execute(
            "UPDATE notifications n SET status = x.s, reason = x.r FROM"
            " unnest($1::text[], $2::text[], $3::text[]) AS x(id, s, r)"
            " WHERE n.notification_id = x.id",
            *[list(c) for c in zip(*final, strict=True)],
        )
    jobs: list[EmailJob] = []
    if to_send:
        ids = [r["notification_id"] for r in to_send]
        await conn.execute(
            "UPDATE notifications SET status = 'sending', lease_until = $2,"
            " attempts = attempts + 1 WHERE notification_id = ANY($1::text[])",
            ids,
            now + LEASE,
        )
        jobs = await _jobs(conn, to_send)
    finalised: dict[str, int] = {}
    for _, status, _ in final:
        finalised[status] = finalised.get(status, 0) + 1
    return Claim(jobs, await outbox.insert(conn, facts), finalised)


async def _jobs(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[EmailJob]:
    booking_ids = sorted({r["booking_id"] for r in rows})
    bookings = {
        b["booking_id"]: b
        for b in await conn.fetch(
            "SELECT booking_id, restaurant_id, pending_ref, booking_date, start_time, end_time,"
            " party_size, customer_name, customer_email, notes, last_failure FROM bookings"
            " WHERE booking_id = ANY($1::text[])",
            booking_ids,
        )
    }
    tables = await repo.table_ids_of(conn, booking_ids)
    configs = await repo.load_restaurants(conn, [r["restaurant_id"] for r in rows])
    jobs = []
    for row in rows:
        b = bookings[row["booking_id"]]
        cfg = configs.get(row["restaurant_id"])
        restaurant = EmailRestaurant(
            name=cfg.name if cfg else row["restaurant_id"],
            timezone=cfg.timezone if cfg else "UTC",
            contact_email=cfg.contact_email if cfg else None,
            contact_phone=cfg.contact_phone if cfg else None,
        )
        booking = EmailBooking(
            booking_id=b["booking_id"],
            restaurant_id=b["restaurant_id"],
            # The episode this email belongs to, not the booking's latest one.
            pending_ref=row["pending_ref"],
            booking_date=b["booking_date"],
            start_time=b["start_time"],
            end_time=b["end_time"],
            party_size=b["party_size"],
            customer_name=b["customer_name"],
            customer_email=b["customer_email"],
            table_ids=list(tables.get(b["booking_id"], ())),
            notes=b["notes"],
        )
        jobs.append(
            EmailJob(
                notification_id=row["notification_id"],
                kind=row["kind"],
                recipient=row["recipient"],
                attempts=row["attempts"] + 1,
                booking=booking,
                restaurant=restaurant,
                failure_reason=b["last_failure"],
            )
        )
    return jobs


async def mark_sent(conn: asyncpg.Connection, job: EmailJob, now: datetime) -> list[OutboxRow]:
    row = await conn.fetchrow(
        "UPDATE notifications SET status = 'sent', sent_at = $2, lease_until = NULL,"
        " last_error = NULL WHERE notification_id = $1 RETURNING notification_id, booking_id,"
        " restaurant_id, kind",
        job.notification_id,
        now,
    )
    return await outbox.insert(conn, [_ops(row, "email.sent", now, to=job.recipient,
                                             attempts=job.attempts)])


async def mark_retry(conn: asyncpg.Connection, job: EmailJob, error: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE notifications SET status = 'due', due_at = $2, lease_until = NULL,"
        " last_error = $3 WHERE notification_id = $1",
        job.notification_id,
        now + timedelta(seconds=backoff_s(job.attempts)),
        error[:2000],
    )


async def mark_failed(conn: asyncpg.Connection, job: EmailJob, error: str, now: datetime) -> list[OutboxRow]:
    row = await conn.fetchrow(
        "UPDATE notifications SET status = 'failed', lease_until = NULL, last_error = $2"
        " WHERE notification_id = $1 RETURNING notification_id, booking_id, restaurant_id, kind",
        job.notification_id,
        error[:2000],
    )
    return await outbox.insert(
        conn, [_ops(row, "email.failed", now, "error", to=job.recipient, error=error[:500])]
    )
