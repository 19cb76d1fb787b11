"""Email sender: leases due outbox rows, one per free SMTP connection, and sends each at once.

`SEATFLOW_SMTP_CONNECTIONS` connections per worker each send one message at a time. A
dispatcher claims only as many rows as connections are free (services.emails.claim_due),
so every lease covers one send that starts immediately; a send is abandoned after half
the lease, so a lease never expires under a live sender. Results are written fenced by
the lease token.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import faust

from mail.render import render_email
from mail.smtp import PermanentEmailError, SmtpSender, TransientEmailError
from services import emails
from services.emails import EmailJob
from streams.runtime import Runtime

log = logging.getLogger(__name__)


class EmailSender:
    """The dispatcher and its connections for one worker."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.connections = rt.settings.smtp_connections
        self.lease = timedelta(seconds=rt.settings.email_lease_s)
        # A send taking longer than this is abandoned (and retried later): half the lease.
        self.send_deadline_s = rt.settings.email_lease_s / 2
        self.jobs: asyncio.Queue[EmailJob] = asyncio.Queue()
        self.busy = 0
        self.slot_freed = asyncio.Event()

    async def claim(self) -> int:
        """One claim: finalise what needs no send, lease rows for the free connections.
        Returns how many rows it handled."""
        free = self.connections - self.busy
        pool = await self.rt.db()

        async def claim():  # type: ignore[no-untyped-def]
            async with pool.acquire() as conn, conn.transaction():
                return await emails.claim_due(
                    conn, now=datetime.now(UTC), suppress=self.rt.settings.suppress_emails,
                    send_limit=free, lease=self.lease,
                )

        claimed = await self.rt.until_done("email-claim", claim)
        await self.rt.until_done("email-publish",
                                 lambda: self.rt.publish_and_forget(claimed.facts))
        for status, count in claimed.finalised.items():
            self.rt.metrics.emails.labels(status=status).inc(count)
        for job in claimed.jobs:
            self.busy += 1
            self.jobs.put_nowait(job)
        return len(claimed.jobs) + len(claimed.facts) + sum(claimed.finalised.values())

    async def dispatch(self) -> None:
        while True:
            try:
                handled = await self.claim()
            except Exception:  # noqa: BLE001 - keep the sender alive; rows stay due
                log.exception("email claim failed")
                handled = 0
            if self.busy >= self.connections or handled == 0:
                # Wait for a free connection, or for rows to fall due.
                self.slot_freed.clear()
                try:
                    await asyncio.wait_for(self.slot_freed.wait(),
                                           self.rt.settings.timer_interval_s)
                except TimeoutError:
                    pass

    async def connection(self, number: int) -> None:
        async with SmtpSender(self.rt.settings) as smtp:
            while True:
                job = await self.jobs.get()
                try:
                    await self.deliver(smtp, job)
                except Exception:  # noqa: BLE001 - the lease runs out; the row is claimed again
                    log.exception("email %s for %s: delivery round failed", job.kind,
                                  job.booking.booking_id)
                finally:
                    self.busy -= 1
                    self.slot_freed.set()

    async def deliver(self, smtp: SmtpSender, job: EmailJob) -> None:
        rt = self.rt
        outcome, error = "sent", ""
        try:
            msg = render_email(
                job.kind, job.booking, job.restaurant, to=job.recipient,
                sender=rt.settings.email_from, failure_reason=job.failure_reason,
            )
            async with asyncio.timeout(self.send_deadline_s):
                await smtp.send(msg)
        except TransientEmailError as exc:
            outcome, error = "retry", str(exc)
        except TimeoutError:
            outcome, error = "retry", f"SMTP send took longer than {self.send_deadline_s:.0f} s"
        except (PermanentEmailError, ValueError) as exc:
            outcome, error = "failed", str(exc)

        pool = await rt.db()

        async def record():  # type: ignore[no-untyped-def]
            now = datetime.now(UTC)
            async with pool.acquire() as conn, conn.transaction():
                if outcome == "sent":
                    return await emails.mark_sent(conn, job, now)
                if outcome == "failed":
                    return await emails.mark_failed(conn, job, error, now)
                return await emails.mark_retry(conn, job, error, now)

        # Recorded right after the server accepted it: a crash repeats at most this message.
        rows = await rt.until_done("email-record", record)
        if rows is None:
            # Cannot happen while the lease outlives the send; if it does, say so loudly.
            rt.metrics.email_leases_lost.inc()
            log.error("email %s for %s: lease lost before %s was recorded", job.kind,
                      job.booking.booking_id, outcome)
            return
        rt.metrics.emails.labels(status=outcome).inc()
        if outcome != "sent":
            log.warning("email %s for %s: %s (%s)", job.kind, job.booking.booking_id, outcome,
                        error)
        await rt.until_done("email-publish", lambda: rt.publish_and_forget(rows))


def register(app: faust.App, rt: Runtime) -> None:
    sender = EmailSender(rt)

    @app.task
    async def email_dispatcher() -> None:
        await sender.dispatch()

    for number in range(sender.connections):
        app.task(_connection_task(sender, number))


def _connection_task(sender: EmailSender, number: int):  # type: ignore[no-untyped-def]
    # Faust passes the app to a task that takes a parameter: bind the number instead.
    async def email_connection() -> None:
        await sender.connection(number)

    email_connection.__name__ = email_connection.__qualname__ = f"email_connection_{number}"
    return email_connection
