"""The two baselines seatflow's throughput is compared with, measured in the same run on the
same broker, over the same kind of records (the run's change records, cycled):

- a raw aiokafka relay: one consumer assigned to every partition, one producer, copy each
  record (the broker and client floor);
- a trivial Faust relay: an agent that takes records in batches (`stream.take`) and sends
  each batch with one wait for all its deliveries, on a Faust app built exactly like the
  worker's (`streams.app.create_faust_app`): Faust's own floor on this machine.
Both report records/s and CPU seconds per record of the relaying process.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from config.settings import Settings
from streams.admin import ensure_topics
from tests.support.kafka import assign_all, consumer_without_group
from tests.support.workers import settings_env

RELAY_RECORDS = 200_000  # long enough to be stable (seconds, not a fraction of one)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fill_relay_input(settings: Settings, records: list[tuple[bytes, bytes]],
                           n: int = RELAY_RECORDS) -> str:
    """`<prefix>relay-in` with n records cycled from `records` (key, value), produced in
    large batches (few record batches per partition: cheap fetches on Tansu)."""
    topic = f"{settings.topic_prefix}relay-in"
    await ensure_topics(settings, extra=[topic])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=False, linger_ms=50,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        pending = []
        for i in range(n):
            key, value = records[i % len(records)]
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return topic


async def raw_relay(settings: Settings, source: str, expected: int) -> dict[str, Any]:
    """Copy `expected` records of `source` to `<prefix>raw-relay-out`: consume -> produce."""
    target = f"{settings.topic_prefix}raw-relay-out"
    await ensure_topics(settings, extra=[target])
    consumer = consumer_without_group(settings.kafka_bootstrap, fetch_max_wait_ms=50)
    # Like the worker's producer (acks=-1, linger 5 ms), without idempotence (Tansu).
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=False, linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        await assign_all(consumer, source)
        deliveries = []
        n = size = 0
        cpu0, t0 = _cpu_s(), time.perf_counter()
        deadline = time.monotonic() + 300
        while n < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                for record in batch:
                    deliveries.append(await producer.send(target, record.value, key=record.key))
                    size += len(record.value)
                n += len(batch)
            if len(deliveries) > 50_000:
                await asyncio.gather(*deliveries)
                deliveries.clear()
        await producer.flush()
        errors = sum(isinstance(r, BaseException)
                     for r in await asyncio.gather(*deliveries, return_exceptions=True))
        elapsed, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    finally:
        await consumer.stop()
        await producer.stop()
    return {"messages": n, "errors": errors, "mean_value_bytes": round(size / max(n, 1)),
            "seconds": round(elapsed, 3), "per_s": round(n / elapsed, 1),
            "cpu_s": round(cpu, 3), "cpu_ms_per_record": round(cpu * 1000 / max(n, 1), 4)}


def faust_relay(settings: Settings, source: str, expected: int, root: Path,
                *, fanout: float | None = None) -> dict[str, Any]:
    """Run the trivial Faust relay (faust_relay.py, as a process) over `expected` records;
    with `fanout`, producing that many records per record consumed (faust_floor)."""
    out = root / "faust-relay.json"
    out.unlink(missing_ok=True)
    env = {**settings_env(settings), "RELAY_SOURCE": source, "RELAY_EXPECTED": str(expected),
           "RELAY_OUT": str(out)}
    if fanout is not None:
        env["RELAY_FANOUT"] = str(fanout)
    log = root / "faust-relay.log"
    with log.open("wb") as fh:
        proc = subprocess.run([sys.executable, "-m", "bench.pipeline.faust_relay"], env=env,
                              stdout=fh, stderr=subprocess.STDOUT, timeout=600, check=False)
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError(f"faust relay failed ({proc.returncode}): {' | '.join(tail)}")
    return json.loads(out.read_text())


def faust_floor(settings: Settings, source: str, expected: int, root: Path,
                *, consumed_per_change: float, produced_per_change: float) -> dict[str, Any]:
    """Faust's own CPU for the records one change moves, with none of seatflow's work: the
    Faust relay consuming records and producing `produced_per_change / consumed_per_change`
    records for each (through the worker's publishing path), its CPU per consumed record
    times `consumed_per_change`. Also the changes/s one core would reach if a change cost
    only that."""
    fanout = round(produced_per_change / consumed_per_change, 3)
    run = faust_relay(settings, source, expected, root, fanout=fanout)
    cpu_ms_per_change = run["cpu_ms_per_record"] * consumed_per_change
    return {**run, "fanout": fanout,
            "consumed_per_change": round(consumed_per_change, 3),
            "produced_per_change": round(produced_per_change, 3),
            "cpu_ms_per_change": round(cpu_ms_per_change, 4),
            "changes_per_s_per_core": round(1000 / cpu_ms_per_change, 1)}
