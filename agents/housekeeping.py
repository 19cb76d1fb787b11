"""Timers every worker runs: due allocation retries, and the outbox relay for crash leftovers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import faust

from services import outbox
from services.allocation import claim_due_retries
from streams.runtime import Runtime

log = logging.getLogger(__name__)

# Rows younger than this are still being published by the agent that wrote them.
RELAY_AFTER_S = 5.0


async def enqueue_due_retries(rt: Runtime) -> int:
    pool = await rt.db()
    async with pool.acquire() as conn, conn.transaction():
        rows = await claim_due_retries(conn, now=datetime.now(UTC))
    await rt.publish_and_forget(rows)
    return len(rows)


async def relay_stale_outbox(rt: Runtime) -> int:
    pool = await rt.db()
    async with pool.acquire() as conn, conn.transaction():
        rows = await outbox.claim_stale(conn, older_than_s=RELAY_AFTER_S, limit=1000)
        # Published before the delete commits: a failure leaves the rows for the next round.
        await rt.publish_rows(rows)
    if rows:
        log.info("outbox relay published %d leftover records", len(rows))
    return len(rows)


def register(app: faust.App, rt: Runtime) -> None:
    @app.timer(rt.settings.timer_interval_s)
    async def allocation_retries() -> None:
        try:
            await rt.until_done("allocation-retries", lambda: enqueue_due_retries(rt))
        except Exception:  # noqa: BLE001 - a timer must not take the worker down
            log.exception("allocation retry round failed")

    @app.timer(1.0)
    async def outbox_relay() -> None:
        try:
            await rt.until_done("outbox-relay", lambda: relay_stale_outbox(rt))
        except Exception:  # noqa: BLE001
            log.exception("outbox relay round failed")
