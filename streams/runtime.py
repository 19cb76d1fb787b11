"""What every agent shares in one worker: settings, the database pool, publishing, health."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from config.settings import Settings
from config.topics import TopicNames
from storage import db
from storage.dead_letters import DeadLetterBacklog
from storage.outbox import OutboxRow
from storage.uow import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
# Committed batches the background publisher may hold before agents wait for it.
PUBLISH_QUEUE_BATCHES = 64
# What committed while the last send was under way goes out together (fewer, fuller record
# batches per partition), a bounded amount at a time: no more commits are added to a send
# once it holds this many rows.
PUBLISH_MAX_ROWS = 2000
# Delivered outbox rows are deleted together, one transaction per this interval at most
# (not one per send: those were a third of the database's transactions at half capacity).
FORGET_EVERY_S = 0.1

# Sends one record; returns a future that resolves once the broker has it.
SendFn = Callable[[str, bytes | None, bytes | None, Sequence[tuple[str, bytes]] | None], Awaitable[Any]]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("seatflow_messages_consumed", "Messages consumed", ["topic"], registry=r)
        self.dead_letters = Counter(
            "seatflow_dead_letters", "Messages dead-lettered", ["topic", "stage"], registry=r
        )
        self.duplicates = Counter("seatflow_duplicate_events", "Change events seen again", registry=r)
        self.published = Counter("seatflow_published", "Records published", ["topic"], registry=r)
        self.allocations = Counter(
            "seatflow_allocation_decisions", "Allocation attempts", ["result"], registry=r
        )
        self.emails = Counter("seatflow_emails", "Email outcomes", ["status"], registry=r)
        self.transient_errors = Counter(
            "seatflow_transient_errors", "Transient infrastructure errors", ["where"], registry=r
        )
        self.batch_seconds = Histogram(
            "seatflow_batch_seconds", "Time to process one batch", ["agent"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.stage_seconds = Histogram(
            "seatflow_stage_seconds", "Time per batch in one stage (transaction, publish)",
            ["agent", "stage"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        # How old a record is when its batch starts (its timestamp to now): the time it
        # spent in the producer, the broker, the fetch and the queue before its agent.
        self.record_age_seconds = Histogram(
            "seatflow_record_age_seconds", "Age of a record when its agent takes it",
            ["agent"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.healthy = Gauge("seatflow_healthy", "1 when broker and database are reachable",
                             registry=r)
        self.email_leases_lost = Counter(
            "seatflow_email_leases_lost",
            "Email results not recorded because another sender held the row (never expected)",
            registry=r,
        )
        self.dead_letter_backlog = Gauge(
            "seatflow_dead_letter_backlog",
            "Dead letters the topic refused, kept in PostgreSQL for retry", registry=r,
        )


@dataclass
class Runtime:
    """One worker's shared parts. The entrypoint decides the database (configured or
    embedded) and hands its URL in; the pool opens on first use, in the worker's loop."""

    settings: Settings
    topics: TopicNames
    database_url: str = field(repr=False)  # may carry a password
    metrics: Metrics = field(default_factory=Metrics)
    send: SendFn | None = None
    # Many records at once (topic, key, value): futures for their delivery (see
    # streams.app.producer_send_many). None: publish_rows sends one by one.
    send_many: Callable[[list[tuple[str, bytes | None, bytes]]], Awaitable[list[Any]]] | None = None
    # Agents waiting out a transient error; /health is 503 while any is.
    degraded: dict[str, str] = field(default_factory=dict)
    _database: Database | None = None
    _database_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _cleanup: set[asyncio.Task] = field(default_factory=set)
    # Committed outbox rows waiting for the background publisher, in commit order.
    _outgoing: asyncio.Queue[list[OutboxRow]] | None = None
    _publisher: asyncio.Task[None] | None = None
    # Ids of delivered outbox rows not deleted yet, and the task that deletes them.
    _delivered_ids: list[int] = field(default_factory=list)
    _forgetter: asyncio.Task[None] | None = None

    async def database(self) -> Database:
        if self._database is None:
            async with self._database_lock:
                if self._database is None:
                    pool = await db.create_pool(self.database_url,
                                                size=self.settings.db_pool_size)
                    self._database = Database(pool)
        return self._database

    async def close(self) -> None:
        if self._delivered_ids and self._database is not None:
            # Best effort: what is left here the relay would publish again (deduped).
            ids, self._delivered_ids = self._delivered_ids, []
            await self._forget(ids)
        if self._database is not None:
            await self._database.close()

    async def _send(self, rows: Sequence[OutboxRow]) -> list[Any]:
        """Hand rows to the producer (in order per key); futures for their delivery."""
        assert self.send is not None, "publisher not started"
        records = [(self.topics.name(row.topic),
                    row.key.encode() if row.key is not None else None, row.payload)
                   for row in rows]
        if self.send_many is not None:
            return list(await self.send_many(records))
        return [await self.send(topic, key, value, None) for topic, key, value in records]

    def _count(self, rows: Sequence[OutboxRow]) -> None:
        for topic, count in collections.Counter(row.topic for row in rows).items():
            self.metrics.published.labels(topic=topic.value).inc(count)

    async def publish_rows(self, rows: Sequence[OutboxRow]) -> None:
        """Publish and wait until the broker has every record (in order per key)."""
        if not rows:
            return
        await asyncio.gather(*await self._send(rows))
        self._count(rows)

    async def publish_and_forget(self, rows: Sequence[OutboxRow]) -> None:
        """Publish rows a transaction committed, then delete them from the outbox.

        The delete runs in the background, off the agent's critical path: if it never
        happens (a crash), the relay republishes the rows and consumers dedupe by id."""
        if not rows:
            return
        await self.publish_rows(rows)
        self._forget_soon([r.id for r in rows if r.id is not None])

    async def publish_committed(self, rows: Sequence[OutboxRow]) -> None:
        """What an agent does with the rows its transaction committed. They are durable in
        the outbox already, so by default the agent does not wait for the broker: a single
        background publisher sends them in commit order (keys keep their order) and deletes
        them once delivered; what it cannot deliver the outbox relay publishes. The queue is
        bounded: when the broker is slow, agents wait here (backpressure)."""
        if not rows:
            return
        if not self.settings.publish_in_background:
            await self.publish_and_forget(rows)
            return
        if self._outgoing is None:
            self._outgoing = asyncio.Queue(maxsize=PUBLISH_QUEUE_BATCHES)
            self._publisher = asyncio.create_task(self._publish_in_order())
        await self._outgoing.put(list(rows))

    def publish_soon(self, rows: Sequence[OutboxRow]) -> None:
        """publish_committed without waiting even for a place in the queue (a fact nothing
        waits on, such as an email's ops event)."""
        if rows:
            self._spawn(self.publish_committed(rows))

    async def _publish_in_order(self) -> None:
        assert self._outgoing is not None
        linger_s = self.settings.producer_linger_ms / 1000
        while True:
            rows = await self._outgoing.get()  # a list of its own (publish_committed's copy)
            if linger_s and self._outgoing.empty():
                # Caught up: wait the producer's linger once, so what commits meanwhile goes
                # out in the same record batches (a send's batches are closed: see
                # streams.app.producer_send_many). Behind: send at once, with what waits.
                await asyncio.sleep(linger_s)
            while not self._outgoing.empty() and len(rows) < PUBLISH_MAX_ROWS:
                rows.extend(self._outgoing.get_nowait())  # still in commit order
            try:
                futures = await self._send(rows)
            except Exception as exc:  # noqa: BLE001 - the rows stay in the outbox: the relay
                self._publish_failed(rows, exc)
                continue
            self._spawn(self._delivered(rows, futures))

    async def _delivered(self, rows: list[OutboxRow], futures: list[Any]) -> None:
        try:
            await asyncio.gather(*futures)
        except Exception as exc:  # noqa: BLE001
            self._publish_failed(rows, exc)
            return
        self.degraded.pop("publisher", None)
        self._count(rows)
        self._forget_soon([r.id for r in rows if r.id is not None])

    def _publish_failed(self, rows: list[OutboxRow], exc: BaseException) -> None:
        if "publisher" not in self.degraded:
            log.warning("publishing %d committed records failed (the outbox relay retries "
                        "them): %r", len(rows), exc)
        self.degraded["publisher"] = f"{type(exc).__name__}: {exc}"

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    def _forget_soon(self, ids: list[int]) -> None:
        """Delete these delivered rows from the outbox with what else is delivered within
        FORGET_EVERY_S. If it never happens (a crash), the relay publishes them again and
        consumers drop the duplicates by id."""
        if not ids:
            return
        self._delivered_ids.extend(ids)
        if self._forgetter is None or self._forgetter.done():
            self._forgetter = asyncio.ensure_future(self._forget_delivered())

    async def _forget_delivered(self) -> None:
        while self._delivered_ids:
            await asyncio.sleep(FORGET_EVERY_S)
            ids, self._delivered_ids = self._delivered_ids, []
            await self._forget(ids)

    async def _forget(self, ids: list[int]) -> None:
        if not ids:
            return
        try:
            async with (await self.database()).transaction() as uow:
                await uow.outbox.delete(ids)
        except Exception as exc:  # noqa: BLE001 - the relay publishes leftovers again
            log.warning("outbox cleanup of %d rows failed: %r", len(ids), exc)

    async def until_done(self, where: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run `op` until it succeeds, backing off on transient infrastructure errors.

        The same input is retried, never skipped; /health reports 503 meanwhile."""
        delay = 0.2
        while True:
            try:
                result = await op()
            except Exception as exc:
                transient = db.is_transient(exc) or is_transient_kafka(exc)
                # A connection lost mid-operation can also surface as an error no list
                # names (asyncpg InternalClientError "cannot switch to state ..."): while
                # the database does not answer, any failure is the outage, not the input.
                if not transient and not await self._database_answers():
                    transient = True
                if not transient:
                    raise
                self.metrics.transient_errors.labels(where=where).inc()
                if where not in self.degraded:
                    log.warning("%s: transient error, retrying: %r", where, exc)
                self.degraded[where] = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.degraded.pop(where, None)
            return result

    async def _database_answers(self) -> bool:
        try:
            database = await asyncio.wait_for(self.database(), 3)
            await asyncio.wait_for(database.ping(), 2)
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False
        return True

    async def check_health(self, broker_check: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        status: dict[str, Any] = {}
        try:
            database = await asyncio.wait_for(self.database(), 3)
            await asyncio.wait_for(database.ping(), 2)
            status["database"] = "ok"
            # Dead letters the topic refused wait in PostgreSQL: the service runs, but ops
            # should look (`seatflow dlq tail` lists them).
            backlog = await asyncio.wait_for(
                DeadLetterBacklog(database.pool).count(), 2)
            self.metrics.dead_letter_backlog.set(backlog)
            status["dead_letter_backlog"] = backlog
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            status["database"] = f"unreachable: {type(exc).__name__}"
        try:
            await asyncio.wait_for(broker_check(), 3)
            status["broker"] = "ok"
        except Exception as exc:  # noqa: BLE001
            status["broker"] = f"unreachable: {type(exc).__name__}"
        if self.degraded:
            # What is waiting and the error's class, not its message: messages name hosts
            # and addresses (the logs have them).
            status["waiting"] = {where: reason.split(":", 1)[0]
                                 for where, reason in self.degraded.items()}
        ok = status["database"] == "ok" and status["broker"] == "ok" and not self.degraded
        status["status"] = "ok" if ok else "unavailable"
        self.metrics.healthy.set(1 if ok else 0)
        return status


def is_transient_kafka(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError):
        return True
    return isinstance(exc, KafkaError) and getattr(exc, "retriable", False)

