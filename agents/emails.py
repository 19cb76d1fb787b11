"""Email sender tasks: a dispatcher leasing due rows for the SMTP connections, and one task
per connection sending them (the use case and its guarantees: services/emails.py).

The dispatcher keeps up to one leased row waiting per connection beyond those in flight, so
one claim transaction serves several emails. A lease must still outlive every send: a send
is abandoned after a third of the lease, and a connection sends a row only while at least
two thirds of its lease remain (it waited at most one send in the queue)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import faust

from mail.smtp import SmtpRelay, SmtpSender
from services import emails
from services.emails import EmailJob
from streams.runtime import Runtime

log = logging.getLogger(__name__)


class EmailSender:
    """The dispatcher and its connections for one worker."""

    def __init__(self, rt: Runtime, relay: SmtpRelay) -> None:
        self.rt = rt
        self.relay = relay
        self.connections = rt.settings.smtp_connections
        self.lease = timedelta(seconds=rt.settings.email_lease_s)
        # A send taking longer than this is abandoned (and retried later).
        self.send_deadline_s = rt.settings.email_lease_s / 3
        self.capacity = 2 * self.connections  # in flight + waiting
        self.jobs: asyncio.Queue[tuple[float, EmailJob]] = asyncio.Queue()
        self.busy = 0  # leased rows in flight or waiting
        self.slot_freed = asyncio.Event()

    async def claim(self) -> int:
        """One claim for the free places; returns how many rows it handled."""
        free = self.capacity - self.busy
        database = await self.rt.database()

        async def claim() -> emails.Claim:
            async with database.transaction() as uow:
                return await emails.claim_due(
                    uow, now=datetime.now(UTC), suppress=self.rt.settings.suppress_emails,
                    send_limit=free, lease=self.lease,
                )

        claimed = await self.rt.until_done("email-claim", claim)
        await self.rt.until_done("email-publish",
                                 lambda: self.rt.publish_and_forget(claimed.facts))
        for status, count in claimed.finalised.items():
            self.rt.metrics.emails.labels(status=status).inc(count)
        claimed_at = time.monotonic()  # the leases started (at most) now
        for job in claimed.jobs:
            self.busy += 1
            self.jobs.put_nowait((claimed_at, job))
        return len(claimed.jobs) + len(claimed.facts) + sum(claimed.finalised.values())

    async def dispatch(self) -> None:
        while True:
            try:
                handled = await self.claim()
            except Exception:  # noqa: BLE001 - keep the sender alive; rows stay due
                log.exception("email claim failed")
                handled = 0
            if self.busy > self.connections or handled == 0:
                # Claim again once a connection's waiting row is taken, or rows fall due.
                self.slot_freed.clear()
                try:
                    await asyncio.wait_for(self.slot_freed.wait(),
                                           self.rt.settings.timer_interval_s)
                except TimeoutError:
                    pass

    async def connection(self) -> None:
        async with SmtpSender(self.relay) as smtp:
            while True:
                claimed_at, job = await self.jobs.get()
                try:
                    if time.monotonic() - claimed_at > self.lease.total_seconds() / 3:
                        # Too little lease left to send safely: leave the row to its lease
                        # (another claim sends it once the lease has run out).
                        log.warning("email %s for %s: not sent, its lease ran short",
                                    job.kind, job.booking.booking_id, extra=_ids(job))
                        continue
                    await self.deliver(smtp, job)
                except Exception:  # noqa: BLE001 - the lease runs out; the row is claimed again
                    log.exception("email %s for %s: delivery failed", job.kind,
                                  job.booking.booking_id, extra=_ids(job))
                finally:
                    self.busy -= 1
                    self.slot_freed.set()

    async def deliver(self, smtp: SmtpSender, job: EmailJob) -> None:
        rt = self.rt
        result = await emails.send(job, smtp, sender=rt.settings.email_from,
                                   deadline_s=self.send_deadline_s)
        database = await rt.database()

        async def record():  # type: ignore[no-untyped-def]
            async with database.transaction() as uow:
                return await emails.record(uow, job, result, datetime.now(UTC))

        # Recorded right after the server accepted it: a crash repeats at most this message.
        rows = await rt.until_done("email-record", record)
        if rows is None:
            # Cannot happen while the lease outlives the send; if it does, say so loudly.
            rt.metrics.email_leases_lost.inc()
            log.error("email %s for %s: lease lost before %s was recorded", job.kind,
                      job.booking.booking_id, result.outcome, extra=_ids(job))
            return
        rt.metrics.emails.labels(status=result.outcome).inc()
        if result.outcome != "sent":
            log.warning("email %s for %s: %s (%s)", job.kind, job.booking.booking_id,
                        result.outcome, result.error, extra=_ids(job))
        # The connection goes on to the next email; its ops event follows from the outbox.
        rt.publish_soon(rows)


def _ids(job: EmailJob) -> dict[str, str]:
    """What a JSON log line carries to find the booking (SEATFLOW_LOG_FORMAT=json)."""
    return {"booking_id": job.booking.booking_id, "restaurant_id": job.booking.restaurant_id}


def register(app: faust.App, rt: Runtime, relay: SmtpRelay) -> None:
    sender = EmailSender(rt, relay)

    @app.task
    async def email_dispatcher() -> None:
        await sender.dispatch()

    for number in range(sender.connections):
        app.task(_connection_task(sender, number))


def _connection_task(sender: EmailSender, number: int):  # type: ignore[no-untyped-def]
    # Faust passes the app to a task that takes a parameter: bind the number instead.
    async def email_connection() -> None:
        await sender.connection()

    email_connection.__name__ = email_connection.__qualname__ = f"email_connection_{number}"
    return email_connection
