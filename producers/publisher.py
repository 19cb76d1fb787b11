"""The typed publisher: how upstream systems, tests, the sample loader and benchmarks write
contract input (docs/interface.md §§2-3) to the broker.

Start it after the topics exist: a send to a missing topic makes Tansu auto-create it with
its own partition count. `Publisher` therefore runs `ensure_topics` on start (cheap: one
metadata request when they exist) unless told not to.

Sends are fire-and-forget into the producer's batches (`linger_ms`); `flush()` waits for
every outstanding send and raises the first delivery error. Awaiting each record's delivery
would cost a broker round trip per event (docs/infrastructure.md: per-event awaits are the cost).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer

from config.kafka import client_options
from config.settings import Settings
from config.topics import TopicNames
from models.events import SCHEMA_VERSION, BookingChange, ChangeType, utcnow
from models.restaurant import RestaurantConfig
from streams import admin
from streams.connection import start_client

Headers = Sequence[tuple[str, bytes]]

# Top-level fields of a change event; every other keyword of `make_change` goes into `booking`.
_EVENT_FIELDS = {
    "schema_version",
    "event_id",
    "occurred_at",
    "source",
    "channel",
    "idempotency_key",
}


class Publisher:
    """Async context manager over one aiokafka producer (acks=all, batched by linger_ms)."""

    def __init__(
        self,
        settings: Settings,
        *,
        linger_ms: int = 10,
        max_batch_size: int = 256 * 1024,
        client_id: str = "seatflow-publisher",
        ensure_topics: bool = True,
    ) -> None:
        self._settings = settings
        self._ensure_topics = ensure_topics
        self.topics = TopicNames(settings.topic_prefix)
        self.sent = 0
        self._producer = AIOKafkaProducer(
            **client_options(settings),
            client_id=client_id,
            acks="all",
            # Tansu rejects InitProducerId v0 (docs/infrastructure.md): no idempotent producer.
            enable_idempotence=False,
            linger_ms=linger_ms,
            max_batch_size=max_batch_size,
        )
        self._pending: list[asyncio.Future[Any]] = []
        self._started = False

    async def start(self) -> None:
        if not self._started:
            try:
                if self._ensure_topics:
                    await admin.ensure_topics(self._settings)
                await start_client(self._producer, self._settings)
            except BaseException:
                # Closed, or aiokafka reports an unclosed producer as the process's last words.
                await self._producer.stop()
                raise
            self._started = True

    async def stop(self) -> None:
        if self._started:
            try:
                await self.flush()
            finally:
                await self._producer.stop()
                self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- typed sends -----------------------------------------------------------------------

    async def publish_change(self, change: BookingChange) -> None:
        """A booking change on `<prefix>booking-changes`, key = booking_id."""
        await self.publish_raw(
            self.topics.booking_changes,
            change.booking.booking_id.encode(),
            change.model_dump_json(exclude_none=False).encode(),
        )

    async def publish_restaurant(self, cfg: RestaurantConfig) -> None:
        """A restaurant configuration on the compacted `<prefix>restaurants`, key = restaurant_id."""
        await self.publish_raw(
            self.topics.restaurants,
            cfg.restaurant_id.encode(),
            cfg.model_dump_json(exclude_none=False).encode(),
        )

    async def publish_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
    ) -> None:
        """Any bytes to any topic (bad input for tests, replays). Returns once enqueued."""
        if not self._started:
            raise RuntimeError("Publisher is not started; use `async with Publisher(...)`")
        delivery = await self._producer.send(
            topic, value=value, key=key, headers=list(headers) if headers else None
        )
        self._pending.append(delivery)
        self.sent += 1

    async def flush(self) -> None:
        """Wait until every send so far is acknowledged; raise the first delivery error."""
        if not self._started:
            return
        await self._producer.flush()
        pending, self._pending = self._pending, []
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


# --- builders ----------------------------------------------------------------------------------


def make_change(
    type: ChangeType,  # noqa: A002 - the contract's field name
    booking_id: str,
    restaurant_id: str,
    **fields: Any,
) -> BookingChange:
    """A validated change event with a fresh event_id and occurred_at = now.

    Keywords named like top-level event fields (`source`, `channel`, `idempotency_key`,
    `event_id`, `occurred_at`) set those; all others are booking fields, e.g.
    `make_change("booking.created", "b-1", "r-ember", booking_date="2026-12-01",
    start_time="19:00", party_size=4, customer_name="Ada", customer_email="ada@example.com")`.
    """
    event: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": str(uuid.uuid4()),
        "type": type,
        "occurred_at": utcnow(),
        "source": "guest",
    }
    booking: dict[str, Any] = {"booking_id": booking_id, "restaurant_id": restaurant_id}
    for name, value in fields.items():
        (event if name in _EVENT_FIELDS else booking)[name] = value
    event["booking"] = booking
    return BookingChange.model_validate(event)


def make_cancel(booking_id: str, restaurant_id: str, **fields: Any) -> BookingChange:
    return make_change("booking.cancelled", booking_id, restaurant_id, **fields)
