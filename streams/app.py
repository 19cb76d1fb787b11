"""Building the Faust application: settings in, an app out; topics carry raw bytes (decoding
is ours, so a bad message reaches the dead-letter guard as bytes). What runs on it is wired
in seatflow/bootstrap.py."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import faust
from aiokafka.partitioner import DefaultPartitioner, murmur2

from config.kafka import ssl_context
from config.settings import Settings
from streams import faust_fixes, faust_tuning

log = logging.getLogger(__name__)


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hp.strip()}" for hp in bootstrap.split(",") if hp.strip()]


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's form of the Kafka security settings (config/kafka.py for other clients)."""
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings validated it
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def key_partitioner(key: bytes | None, all_partitions: Sequence[int],
                    available: Sequence[int]) -> int:
    """aiokafka's DefaultPartitioner (Kafka's murmur2 of the key, so every client puts a key
    in the same partition), remembering each key's hash: murmur2 is pure Python, and a
    booking's or restaurant's key comes back for each of its records (2 % of the worker's
    CPU samples)."""
    if key is None:
        return DefaultPartitioner()(key, all_partitions, available)
    return all_partitions[_key_hash(key) % len(all_partitions)]


def create_faust_app(settings: Settings) -> faust.App:
    faust_fixes.apply()
    faust_tuning.set_fetch_max_wait(settings.consumer_fetch_max_wait_ms)
    return faust.App(
        settings.app_id,
        broker=broker_urls(settings.kafka_bootstrap),
        broker_credentials=broker_credentials(settings),
        # Decoding is ours, so a bad message reaches the dead-letter guard as bytes.
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=False,  # the worker creates its topics itself (streams.admin)
        # No Faust-internal topics: they would not carry the contract's prefix.
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_commit_every=settings.batch_size,
        broker_commit_interval=1.0,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_acks=-1,
        producer_partitioner=key_partitioner,
        # Dead letters are cut to fit this (streams.deadletter.fit_dead_letter).
        producer_max_request_size=settings.kafka_max_request_bytes,
        stream_wait_empty=False,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_bind,  # loopback unless a token guards the API
        web_in_thread=False,
        datadir=str(settings.home / "faust"),
        store="memory://",
        table_cleanup_interval=3600.0,
    )


def producer_send(app: faust.App):  # type: ignore[no-untyped-def]
    """The app's producer as a `Runtime.send`: returns a future the broker resolves."""

    async def send(topic, key, value, headers):  # type: ignore[no-untyped-def]
        return await app.producer.send(topic, key, value, None, None, headers)

    return send


def producer_send_many(app: faust.App):  # type: ignore[no-untyped-def]
    """`Runtime.send_many`: records handed to the app's aiokafka producer as one record batch
    per (topic, partition), one await per batch instead of one Faust send per record (the
    per-record path costs more than the broker round trip it waits for). The partition is
    the producer's own choice for the key, as for any send, so each key stays in order.

    Each batch is closed before it is handed over: it is complete, and aiokafka lets an open
    batch linger for `linger_ms` before sending it, and makes the next batch for the same
    partition wait for that (bench.soak: at 100 ms the publisher fell ~10 s behind)."""

    async def send_many(records):  # type: ignore[no-untyped-def]
        producer = app.producer._ensure_producer()  # the aiokafka producer behind Faust's
        batches: dict[tuple[str, int], object] = {}
        futures = []
        # Per topic, its partitions as the producer's own `_partition` lists them, once per
        # call rather than twice per record (two set copies each: 3 % of the worker's CPU).
        partitions_of: dict[str, tuple[list[int], list[int]]] = {}
        partitioner = producer._partitioner

        async def send(batch, topic: str, partition: int) -> None:  # type: ignore[no-untyped-def]
            batch.close()  # complete: not to wait out the linger (see above)
            futures.append(await producer.send_batch(batch, topic, partition=partition))

        for topic, key, value in records:
            partitions = partitions_of.get(topic)
            if partitions is None:
                await producer.client._wait_on_metadata(topic)
                metadata = producer._metadata
                partitions = partitions_of[topic] = (
                    list(metadata.partitions_for_topic(topic)),
                    list(metadata.available_partitions_for_topic(topic)),
                )
            partition = partitioner(key, *partitions)
            batch = batches.get((topic, partition))
            if batch is not None and batch.append(key=key, value=value, timestamp=None) is not None:
                continue
            if batch is not None:  # full: send it, start the next one
                await send(batch, topic, partition)
            batch = batches[(topic, partition)] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
        for (topic, partition), batch in batches.items():
            await send(batch, topic, partition)
        return futures

    return send_many


def input_topic(app: faust.App, name: str, **config: str) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, config=config or None)
