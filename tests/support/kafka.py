"""Reading topics without a consumer group (joins are slow on Tansu, docs/infrastructure.md).

`read_topic` reads everything so far; `consumer_without_group` + `assign_all` give a consumer
that reads every partition from the beginning, for whoever keeps reading (the benchmark's
relay and status watcher). Used by tests, the chaos suite and the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    min_count: int = 0,
    timeout: float = 10.0,  # noqa: ASYNC109
    **security: Any,
) -> list[ConsumerRecord]:
    """Every record of `topic` so far, sorted by (partition, offset). `security`: aiokafka's
    security_protocol, ssl_context, sasl_* (config.kafka.client_options) when not plaintext.

    Assigns all partitions directly and reads from the beginning up to the high watermark
    that fetch responses report (Tansu's ListOffsets "latest" is wrong, docs/infrastructure.md). Keeps
    reading until at least `min_count` records arrived and every partition is read up to its
    high watermark, or until `timeout` — then returns what it has (the caller asserts).
    A topic that does not exist yet is waited for while min_count > 0.
    """
    deadline = time.monotonic() + timeout
    consumer = consumer_without_group(bootstrap, **security)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        partitions = await _partitions(consumer, topic, deadline, wait=min_count > 0)
        if not partitions:
            return []
        await _from_the_beginning(consumer, partitions)
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            for batch in batches.values():
                records.extend(batch)
            caught_up = all([await _caught_up(consumer, tp) for tp in partitions])
            if (caught_up and len(records) >= min_count) or time.monotonic() >= deadline:
                break
    finally:
        await consumer.stop()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


def consumer_without_group(
    bootstrap: str, *, fetch_max_wait_ms: int = 100, **security: Any
) -> AIOKafkaConsumer:
    """A consumer that commits nothing and starts at the earliest offset (not started yet)."""
    return AIOKafkaConsumer(
        **security,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


async def assign_all(
    consumer: AIOKafkaConsumer, topic: str, *, timeout: float = 10.0
) -> list[TopicPartition]:
    """Assign every partition of `topic` to a started consumer, from the beginning.

    Waits up to `timeout` for the topic to exist; RuntimeError if it never does."""
    partitions = await _partitions(consumer, topic, time.monotonic() + timeout, wait=True)
    if not partitions:
        raise RuntimeError(f"topic {topic} has no partitions")
    await _from_the_beginning(consumer, partitions)
    return partitions


async def _from_the_beginning(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)


async def _partitions(
    consumer: AIOKafkaConsumer, topic: str, deadline: float, *, wait: bool
) -> list[TopicPartition]:
    while True:
        await consumer.topics()  # refreshes cluster metadata
        ids = consumer.partitions_for_topic(topic)
        if ids:
            return [TopicPartition(topic, p) for p in sorted(ids)]
        if not wait or time.monotonic() >= deadline:
            return []
        await asyncio.sleep(0.1)


async def _caught_up(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    highwater = consumer.highwater(tp)  # None until a fetch response for tp arrived
    if highwater is None:
        return False
    return await consumer.position(tp) >= highwater


def json_values(records: list[ConsumerRecord]) -> list[dict[str, Any]]:
    """The records' values parsed as JSON objects (tombstones skipped)."""
    return [json.loads(r.value) for r in records if r.value is not None]


def keys(records: list[ConsumerRecord]) -> list[str | None]:
    return [r.key.decode() if r.key is not None else None for r in records]


async def partition_count(bootstrap: str, topic: str, *, timeout: float = 10.0) -> int:  # noqa: ASYNC109
    """How many partitions `topic` has (waits for it to exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic, time.monotonic() + timeout, wait=True)
    finally:
        await consumer.stop()
    if not partitions:
        raise AssertionError(f"topic {topic} does not exist")
    return len(partitions)


def partition_for(key: str, partitions: int) -> int:
    """The partition aiokafka's default partitioner (the one `Publisher` uses) picks for `key`."""
    every = list(range(partitions))
    return DefaultPartitioner()(key.encode(), every, every)
