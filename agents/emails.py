"""Email sender: delivers due outbox rows over one SMTP connection, one message at a time."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import faust

from mail.render import render_email
from mail.smtp import PermanentEmailError, SmtpSender, TransientEmailError
from services import emails
from streams.runtime import Runtime

log = logging.getLogger(__name__)


async def send_due(rt: Runtime, sender: SmtpSender, *, limit: int = 200) -> int:
    """One round: finalise and lease due rows, send each, record each. Returns rows handled."""
    pool = await rt.db()

    async def claim():  # type: ignore[no-untyped-def]
        async with pool.acquire() as conn, conn.transaction():
            return await emails.claim_due(
                conn, now=datetime.now(UTC), suppress=rt.settings.suppress_emails, limit=limit
            )

    claimed = await rt.until_done("email-claim", claim)
    await rt.until_done("email-publish", lambda: rt.publish_and_forget(claimed.facts))
    for status, count in claimed.finalised.items():
        rt.metrics.emails.labels(status=status).inc(count)
    for job in claimed.jobs:
        outcome, error = "sent", ""
        try:
            msg = render_email(
                job.kind, job.booking, job.restaurant, to=job.recipient,
                sender=rt.settings.email_from, failure_reason=job.failure_reason,
            )
            await sender.send(msg)
        except TransientEmailError as exc:
            outcome, error = "retry", str(exc)
        except (PermanentEmailError, ValueError) as exc:
            outcome, error = "failed", str(exc)

        async def record(job=job, outcome=outcome, error=error):  # type: ignore[no-untyped-def]
            now = datetime.now(UTC)
            async with pool.acquire() as conn, conn.transaction():
                if outcome == "sent":
                    return await emails.mark_sent(conn, job, now)
                if outcome == "failed":
                    return await emails.mark_failed(conn, job, error, now)
                await emails.mark_retry(conn, job, error, now)
                return []

        # Recorded right after the server accepted it: a crash repeats at most this message.
        rows = await rt.until_done("email-record", record)
        rt.metrics.emails.labels(status=outcome).inc()
        if outcome != "sent":
            log.warning("email %s for %s: %s (%s)", job.kind, job.booking.booking_id, outcome, error)
        await rt.until_done("email-publish", lambda rows=rows: rt.publish_and_forget(rows))
    return len(claimed.jobs) + len(claimed.facts)


def register(app: faust.App, rt: Runtime) -> None:
    @app.task
    async def email_sender() -> None:
        async with SmtpSender(rt.settings) as sender:
            while True:
                try:
                    handled = await send_due(rt, sender)
                except Exception:  # noqa: BLE001 - keep the sender alive; rows stay due
                    log.exception("email sender round failed")
                    handled = 0
                if handled == 0:
                    await asyncio.sleep(rt.settings.timer_interval_s)
