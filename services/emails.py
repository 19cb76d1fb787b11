"""The email outbox: decide due rows, lease the ones to send, record each result, fenced.

A row's life: held (inside the inline window) | due -> sending -> sent | failed,
or -> suppressed | skipped | cancelled. The decision is published once, when a row first
falls due.

Exactly once, without a crash, however many workers and however slow the mail server:
- a row is leased for ONE send: the sender claims only as many rows as it has free
  connections, each with its own token, and sends each at once; the lease is at least
  twice the longest a send may take, so it cannot expire under a live sender;
- every write after the send (`mark_sent`, `mark_retry`, `mark_failed`) is conditional on
  the token: a sender that lost its lease can never overwrite the new holder's outcome;
- the claim re-checks the booking: a pending-kind email (request_received,
  modification_pending) leaves only while its booking is still pending. A confirmation or
  cancellation cancels such rows in its own transaction; the claim locks the rows it
  leases, so either the row was leased (handed to the mail server) before the
  confirmation committed, or it is never sent.
A crash between the server's acceptance and `mark_sent` can repeat that one message per
connection, with the same Message-ID (CONTRACT §4).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from domain.model import OpsNote
from domain.notifications import PENDING_KINDS
from domain.walkins import is_synthetic
from mail.render import EmailBooking, EmailRestaurant
from models.events import NotificationRecord
from services import outbox
from services.outbox import Logical, OutboxRow
from storage import repository as repo

MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class EmailJob:
    notification_id: str
    lease_token: str  # the claim's fence: every write after the send names it
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
    conn: asyncpg.Connection,
    *,
    now: datetime,
    suppress: bool,
    send_limit: int,
    lease: timedelta,
    limit: int = 500,
) -> Claim:
    """Inside the caller's transaction: finalise due rows that need no send (suppressed,
    skipped, superseded) and lease at most `send_limit` to send now, one token each."""
    rows = await conn.fetch(
        "SELECT n.notification_id, n.booking_id, n.restaurant_id, n.kind, n.pending_ref,"
        " n.recipient, n.status, n.due_at, n.attempts, b.status AS booking_status"
        " FROM notifications n LEFT JOIN bookings b ON b.booking_id = n.booking_id WHERE"
        " (n.status IN ('held', 'due') AND n.due_at <= $1)"
        " OR (n.status = 'sending' AND n.lease_until < $1)"
        " ORDER BY n.due_at LIMIT $2 FOR UPDATE OF n SKIP LOCKED",
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
        if row["kind"] in PENDING_KINDS and row["booking_status"] != "pending":
            # Confirmed or cancelled since: a pending email never leaves after that.
            final.append((row["notification_id"], "cancelled", "superseded"))
            continue
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
        elif len(to_send) < send_limit:
            if first_decision:
                facts.append(_record(row, "queued", None, now))
            to_send.append(row)
        # else: left as it is, for the next claim (no connection free for it now)
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
        tokens = [uuid.uuid4().hex for _ in to_send]
        await conn.execute(
            "UPDATE notifications n SET status = 'sending', lease_token = x.token,"
            " lease_until = $3, attempts = n.attempts + 1"
            " FROM unnest($1::text[], $2::text[]) AS x(id, token)"
            " WHERE n.notification_id = x.id",
            ids,
            tokens,
            now + lease,
        )
        jobs = await _jobs(conn, to_send, tokens)
    finalised: dict[str, int] = {}
    for _, status, _ in final:
        finalised[status] = finalised.get(status, 0) + 1
    return Claim(jobs, await outbox.insert(conn, facts), finalised)


async def _jobs(
    conn: asyncpg.Connection, rows: list[asyncpg.Record], tokens: list[str]
) -> list[EmailJob]:
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
    for row, token in zip(rows, tokens, strict=True):
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
                lease_token=token,
                kind=row["kind"],
                recipient=row["recipient"],
                attempts=row["attempts"] + 1,
                booking=booking,
                restaurant=restaurant,
                failure_reason=b["last_failure"],
            )
        )
    return jobs


async def mark_sent(
    conn: asyncpg.Connection, job: EmailJob, now: datetime
) -> list[OutboxRow] | None:
    """Record the send; None when the lease was lost (someone else holds the row now)."""
    row = await conn.fetchrow(
        "UPDATE notifications SET status = 'sent', sent_at = $3, lease_until = NULL,"
        " last_error = NULL WHERE notification_id = $1 AND lease_token = $2"
        " AND status = 'sending' RETURNING notification_id, booking_id, restaurant_id, kind",
        job.notification_id,
        job.lease_token,
        now,
    )
    if row is None:
        return None
    return await outbox.insert(conn, [_ops(row, "email.sent", now, to=job.recipient,
                                             attempts=job.attempts)])


async def mark_retry(
    conn: asyncpg.Connection, job: EmailJob, error: str, now: datetime
) -> list[OutboxRow] | None:
    """Back to `due` after a backoff; None when the lease was lost."""
    row = await conn.fetchrow(
        "UPDATE notifications SET status = 'due', due_at = $3, lease_until = NULL,"
        " last_error = $4 WHERE notification_id = $1 AND lease_token = $2"
        " AND status = 'sending' RETURNING notification_id",
        job.notification_id,
        job.lease_token,
        now + timedelta(seconds=backoff_s(job.attempts)),
        error[:2000],
    )
    return None if row is None else []


async def mark_failed(
    conn: asyncpg.Connection, job: EmailJob, error: str, now: datetime
) -> list[OutboxRow] | None:
    """Failed for good; None when the lease was lost."""
    row = await conn.fetchrow(
        "UPDATE notifications SET status = 'failed', lease_until = NULL, last_error = $3"
        " WHERE notification_id = $1 AND lease_token = $2 AND status = 'sending'"
        " RETURNING notification_id, booking_id, restaurant_id, kind",
        job.notification_id,
        job.lease_token,
        error[:2000],
    )
    if row is None:
        return None
    return await outbox.insert(
        conn, [_ops(row, "email.failed", now, "error", to=job.recipient, error=error[:500])]
    )
