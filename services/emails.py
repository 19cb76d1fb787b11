"""Sending emails, exactly once: claim due rows, send each over SMTP, record each result.

Without a crash there is no repeat, however many workers and however slow the mail server:
- a row is leased for ONE send: the sender claims only as many rows as it has free
  connections, each with its own token, and sends each at once; a send is abandoned after
  half the lease, so a lease cannot expire under a live sender;
- every write after the send (`record`) is conditional on the token: a sender that lost
  its lease can never overwrite the new holder's outcome;
- the claim re-checks the booking (`domain.notifications.decide_delivery`): a pending email
  leaves only while its booking is pending. A confirmation or cancellation cancels such
  rows in its own transaction; the claim locks the rows it leases, so either the row was
  handed to the mail server before the confirmation committed, or it is never sent.
A crash between the server's acceptance and `record` can repeat that one message per
connection, with the same Message-ID (docs/interface.md, "Emails").
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from domain.model import OpsNote
from domain.notifications import decide_delivery
from domain.privacy import redact
from mail.render import EmailBooking, EmailRestaurant, render_email
from mail.smtp import PermanentEmailError, SmtpSender, TransientEmailError
from models.events import NotificationRecord
from services import outbox
from storage.notifications import Finalised
from storage.outbox import OutboxRow
from storage.uow import UnitOfWork

MAX_BACKOFF_S = 300.0
SUPPRESSED_CLAIM = 500  # rows finalised per claim when nothing is sent


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


@dataclass
class Claim:
    jobs: list[EmailJob]  # leased, to send now
    facts: list[OutboxRow]  # decisions and ops events to publish
    finalised: dict[str, int]  # rows decided without sending: status -> count


Outcome = Literal["sent", "retry", "failed"]


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    error: str = ""


def backoff_s(attempts: int) -> float:
    return min(MAX_BACKOFF_S, 1.0 * 2 ** max(0, attempts - 1))


def _record(row: asyncpg.Record, status: str, reason: str | None, now: datetime) -> OutboxRow:
    return outbox.notification_row(NotificationRecord(
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
    ))


def _ops(row: asyncpg.Record, event_type: str, now: datetime, severity: str = "info",
         **context: object) -> OutboxRow:
    note = OpsNote(event_type, severity, {"kind": row["kind"],
                                          "notification_id": row["notification_id"], **context})
    return outbox.ops_row(note, now, booking_id=row["booking_id"],
                          restaurant_id=row["restaurant_id"])


async def claim_due(
    uow: UnitOfWork,
    *,
    now: datetime,
    suppress: bool,
    send_limit: int,
    lease: timedelta,
) -> Claim:
    """Finalise due rows that need no send (suppressed, skipped, superseded) and lease at
    most `send_limit` to send now, one token each. The decision is published once, when
    a row first falls due.

    Only a few more rows are read (and locked) than can be leased: with a backlog, a claim
    for one free connection must not walk hundreds of due rows. With SUPPRESS_EMAILS every
    row is finalised here, so claims are large."""
    limit = SUPPRESSED_CLAIM if suppress else send_limit * 2 + 8
    rows = await uow.notifications.lock_due(now=now, limit=limit)
    if not rows:
        return Claim([], [], {})
    facts: list[OutboxRow] = []
    final: list[Finalised] = []
    to_send: list[asyncpg.Record] = []
    for row in rows:
        first_decision = row["status"] in ("held", "due") and row["attempts"] == 0
        delivery = decide_delivery(row["kind"], row["recipient"], row["booking_status"],
                                   suppress=suppress, erased=row["erased"])
        if not delivery.send:
            assert delivery.status is not None
            final.append(Finalised(row["notification_id"], delivery.status, delivery.reason))
            if delivery.status != "cancelled":  # a superseded email was never announced
                facts.append(_record(row, delivery.status, delivery.reason, now))
            if delivery.status == "suppressed":
                facts.append(_ops(row, "email.suppressed", now))
        elif len(to_send) < send_limit:
            if first_decision:
                facts.append(_record(row, "queued", None, now))
            to_send.append(row)
        # else: left as it is for the next claim (no connection is free for it now)
    await uow.notifications.finalise(final)
    tokens = {r["notification_id"]: uuid.uuid4().hex for r in to_send}
    await uow.notifications.lease(tokens, now + lease)
    jobs = await _jobs(uow, to_send, tokens) if to_send else []
    finalised: dict[str, int] = {}
    for f in final:
        finalised[f.status] = finalised.get(f.status, 0) + 1
    return Claim(jobs, await uow.outbox.add(facts), finalised)


async def _jobs(
    uow: UnitOfWork, rows: list[asyncpg.Record], tokens: dict[str, str]
) -> list[EmailJob]:
    booking_ids = sorted({r["booking_id"] for r in rows})
    bookings = await uow.bookings.for_emails(booking_ids)
    tables = await uow.bookings.table_ids_of(booking_ids)
    configs = await uow.restaurants.load([r["restaurant_id"] for r in rows])
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
        jobs.append(EmailJob(
            notification_id=row["notification_id"],
            lease_token=tokens[row["notification_id"]],
            kind=row["kind"],
            recipient=row["recipient"],
            attempts=row["attempts"] + 1,
            booking=booking,
            restaurant=restaurant,
            failure_reason=b["last_failure"],
        ))
    return jobs


async def send(job: EmailJob, smtp: SmtpSender, *, sender: str, deadline_s: float
               ) -> SendResult:
    """Render and send one leased email. A send that takes longer than `deadline_s` is
    abandoned (the connection dropped) and retried later. The error is stored, published
    and logged, so it names no guest (a mail server may quote the address)."""
    guest = (job.recipient, job.booking.customer_email, job.booking.customer_name)
    try:
        msg = render_email(job.kind, job.booking, job.restaurant, to=job.recipient,
                           sender=sender, failure_reason=job.failure_reason)
        async with asyncio.timeout(deadline_s):
            await smtp.send(msg)
    except TransientEmailError as exc:
        return SendResult("retry", redact(str(exc), *guest))
    except TimeoutError:
        return SendResult("retry", f"SMTP send took longer than {deadline_s:.0f} s")
    except (PermanentEmailError, ValueError) as exc:
        return SendResult("failed", redact(str(exc), *guest))
    return SendResult("sent")


async def record(uow: UnitOfWork, job: EmailJob, result: SendResult, now: datetime
                 ) -> list[OutboxRow] | None:
    """Record a send's result, fenced by the job's lease token; returns the ops events to
    publish, or None when the lease was lost (another sender holds the row now)."""
    notes = uow.notifications
    if result.outcome == "sent":
        row = await notes.mark_sent(job.notification_id, job.lease_token, now)
        facts = [] if row is None else [
            _ops(row, "email.sent", now, attempts=job.attempts)]
    elif result.outcome == "failed":
        row = await notes.mark_failed(job.notification_id, job.lease_token, result.error)
        facts = [] if row is None else [
            _ops(row, "email.failed", now, "error", error=result.error[:500])]
    else:
        due = now + timedelta(seconds=backoff_s(job.attempts))
        row = await notes.mark_retry(job.notification_id, job.lease_token, due, result.error)
        facts = []
    if row is None:
        return None
    return await uow.outbox.add(facts)
