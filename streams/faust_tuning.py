"""Consumer tuning Faust does not expose as settings.

faust 0.15.3 builds its aiokafka consumer with a hard-coded `fetch_max_wait_ms=1500`
(faust/transport/drivers/aiokafka.py, AIOKafkaConsumerThread._create_worker_consumer).
A fetch parked on idle partitions then delays records arriving on the others: measured
here as ~0.4 s per hop, which puts a create->confirm round trip past the inline window.
"""

from __future__ import annotations

from faust.transport.drivers import aiokafka as faust_aiokafka

_original = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
_fetch_max_wait_ms: int | None = None


def _create_worker_consumer(self, transport):  # type: ignore[no-untyped-def]
    consumer = _original(self, transport)
    if _fetch_max_wait_ms is not None:
        # Read by aiokafka when the consumer starts its Fetcher.
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms
    return consumer


def set_fetch_max_wait(ms: int) -> None:
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = ms
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
