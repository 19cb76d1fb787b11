"""Timers every worker runs: due allocation retries, the outbox relay for crash leftovers,
the relay of dead letters the topic refused, and pruning past retention."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime

import faust

from services.allocation import enqueue_due_attempts
from services.retention import PRUNED, RetentionPolicy, prune_batch, unfinished
from streams.deadletter import DeadLetter, fit_dead_letter
from streams.guard import backlog_delay_s
from streams.runtime import Runtime, is_transient_kafka

log = logging.getLogger(__name__)

# Rows younger than this are still being published by the agent that wrote them.
RELAY_AFTER_S = 5.0


async def enqueue_due_retries(rt: Runtime) -> int:
    async with (await rt.database()).transaction() as uow:
        rows = await enqueue_due_attempts(uow, now=datetime.now(UTC))
    await rt.publish_and_forget(rows)
    return len(rows)


async def relay_stale_outbox(rt: Runtime) -> int:
    async with (await rt.database()).transaction() as uow:
        rows = await uow.outbox.take_stale(older_than_s=RELAY_AFTER_S, limit=1000)
        # Published before the delete commits: a failure leaves the rows for the next round.
        await rt.publish_rows(rows)
    if rows:
        log.info("outbox relay published %d leftover records", len(rows))
    return len(rows)


async def relay_dead_letter_backlog(rt: Runtime, *, limit: int = 50) -> int:
    """Try again to publish dead letters the topic refused (a broker-side limit that was
    raised, a topic that was fixed). Those that still do not fit stay, with a backoff."""
    published = 0
    async with (await rt.database()).transaction() as uow:
        rows = await uow.dead_letters.lock_due(limit=limit)
        done: list[int] = []
        for row in rows:
            letter = DeadLetter(row["original_key"], row["original_value"],
                                list(zip(row["header_names"], row["header_values"], strict=True)))
            fitted = fit_dead_letter(letter, rt.settings.kafka_max_request_bytes)
            error = "still does not fit in one record (key and headers too large)"
            if fitted is not None:
                assert rt.send is not None
                try:
                    await (await rt.send(rt.topics.dead_letters, fitted.key, fitted.value,
                                         fitted.headers))
                    done.append(row["id"])
                    continue
                except Exception as exc:
                    if is_transient_kafka(exc):
                        raise
                    error = f"{type(exc).__name__}: {exc}"
            await uow.dead_letters.postpone(row["id"], error, backlog_delay_s(row["attempts"] + 1))
        await uow.dead_letters.forget(done)
        published = len(done)
        rt.metrics.dead_letter_backlog.set(await uow.dead_letters.count())
    if published:
        log.info("published %d backlogged dead letters", published)
    return published


async def prune(rt: Runtime, policy: RetentionPolicy) -> dict[str, int]:
    """Prune in small transactions until nothing past retention is left; yields to the
    event loop between batches so agents never wait long behind it."""
    total: Counter[str] = Counter()
    tables: Collection[str] = PRUNED
    while tables:
        async with (await rt.database()).transaction() as uow:
            deleted = await prune_batch(uow, policy, datetime.now(UTC), tables)
        total.update(deleted)
        tables = unfinished(deleted, policy)
        if tables:
            await asyncio.sleep(0.05)
    if sum(total.values()):
        log.info("pruned past retention: %s", dict(total))
    return dict(total)


def register(app: faust.App, rt: Runtime, retention: RetentionPolicy) -> None:
    @app.timer(rt.settings.timer_interval_s)
    async def allocation_retries() -> None:
        try:
            await rt.until_done("allocation-retries", lambda: enqueue_due_retries(rt))
        except Exception:  # noqa: BLE001 - a timer must not take the worker down
            log.exception("allocation retry round failed")

    @app.timer(rt.settings.prune_interval_s)
    async def pruner() -> None:
        try:
            await rt.until_done("pruner", lambda: prune(rt, retention))
        except Exception:  # noqa: BLE001
            log.exception("pruning round failed")

    @app.timer(5.0)
    async def dead_letter_relay() -> None:
        try:
            await rt.until_done("dead-letter-relay", lambda: relay_dead_letter_backlog(rt))
        except Exception:  # noqa: BLE001
            log.exception("dead-letter relay round failed")

    @app.timer(1.0)
    async def outbox_relay() -> None:
        try:
            await rt.until_done("outbox-relay", lambda: relay_stale_outbox(rt))
        except Exception:  # noqa: BLE001
            log.exception("outbox relay round failed")
