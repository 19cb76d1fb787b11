"""`streams.app.producer_send_many` on the real broker: a send's record batches are complete,
so they go out at once, whatever the producer's linger (aiokafka lets an open batch wait
out `linger_ms`, and a second batch for the same partition waits for the first)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.app import producer_send_many
from tests.support.kafka import read_topic

LINGER_MS = 120_000  # far longer than the test may take


async def test_sends_of_complete_batches_do_not_wait_for_the_linger(stack: Any) -> None:
    topic = f"publisher-batches-{id(stack)}-{asyncio.get_running_loop().time():.0f}"
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all",
                                linger_ms=LINGER_MS)
    await producer.start()
    try:
        # The app's producer as producer_send_many reaches it (faust.App.producer).
        app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
        send_many = producer_send_many(app)
        first = await asyncio.wait_for(
            send_many([(topic, b"k", b"one"), (topic, b"k", b"two")]), 30)
        # Same key, same partition: an open first batch would hold this one back too.
        second = await asyncio.wait_for(send_many([(topic, b"k", b"three")]), 30)
        await asyncio.wait_for(asyncio.gather(*first, *second), 30)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=500)
            values += [m.value for msgs in batch.values() for m in msgs]
            if len(values) >= 3:
                break
    finally:
        await consumer.stop()
    assert values == [b"one", b"two", b"three"]  # in order, as sent


async def test_each_key_goes_to_the_partition_the_producer_chooses_for_it(stack: Any) -> None:
    """send_many reads a topic's partitions once per call; each record still lands where the
    producer's own partitioner puts its key (so a key's records stay in one partition)."""
    topic = f"publisher-partitions-{id(stack)}-{asyncio.get_running_loop().time():.0f}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
        keys = [f"booking-{i}".encode() for i in range(40)]
        futures = await asyncio.wait_for(
            producer_send_many(app)([(topic, key, b"v") for key in keys]), 30)
        await asyncio.wait_for(asyncio.gather(*futures), 30)
        expected = {key: producer._partition(topic, None, key, None, key, None)  # noqa: SLF001
                    for key in keys}
    finally:
        await producer.stop()
    assert len(set(expected.values())) == 4  # the keys spread over every partition

    records = await read_topic(stack.kafka_bootstrap, topic, min_count=len(keys), timeout=30)
    landed = {r.key: r.partition for r in records}
    assert landed == expected


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - a topic created just now
    return consumer.partitions_for_topic(topic) or {0}
