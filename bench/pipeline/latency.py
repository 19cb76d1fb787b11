"""3. Latency at a fixed offered load.

A fresh worker gets the throughput runs' change mix (creates, realigning and notes-only
edits, cancellations) at a fixed rate. The latency of a new booking is its
`booking.confirmed` record's timestamp minus its `booking.created` record's timestamp, read
by `StatusWatcher` (a consumer assigned to every partition of the status topic); bookings
that another change of the load touches are not timed (their first confirmation may be for
a later episode). Bookings not confirmed `latency_drain_s` after the load count as slower
than every measured one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import urllib.request
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.pipeline.config import BenchConfig, run_settings
from bench.pipeline.cpu import CpuMeter
from bench.pipeline.workload import creates, generate_mix
from config.topics import TopicNames
from models.restaurant import RestaurantConfig
from streams.admin import ensure_topics
from tests.support.kafka import assign_all, consumer_without_group
from tests.support.stack import Stack, create_database_async
from tests.support.workers import WorkerProcess


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None when it falls on a booking never confirmed (inf)."""
    if not values:
        return None
    ordered = sorted(values)
    value = ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered))) - 1))]
    return None if value == float("inf") else round(value, 1)


@dataclass
class LatencyRun:
    offered_rate: int
    achieved_rate: float
    seconds: float
    sent: int
    counted: int  # sent after the warm-up seconds
    unconfirmed: int  # counted, but no booking.confirmed within the drain time
    drain_s: float
    # change record ts -> booking.confirmed record ts; None = above the drain time (censored)
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    # the two hops: change -> booking.pending (changes agent), pending -> confirmed (allocator)
    to_pending_p50_ms: float | None
    to_pending_p99_ms: float | None
    pending_to_confirmed_p50_ms: float | None
    pending_to_confirmed_p99_ms: float | None
    observed_p99_ms: float | None  # to the moment the bench's own consumer had the record
    cpu_seconds: dict[str, float]
    load_average: float
    # Where a hop's time goes, per agent, from the worker's own /metrics (worker_breakdown).
    worker: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: list[tuple[float, float]] = field(default_factory=list, repr=False)


def metric_samples(base_url: str) -> list[Sample]:
    """Every sample the worker's /metrics shows now."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def worker_breakdown(base_url: str) -> dict[str, dict[str, float]]:
    """Per agent, from the worker's /metrics over the whole run (warm-up included): batches,
    records per batch, the mean record age when its batch starts (producer, broker, fetch
    and queue), and the mean transaction and publish time per batch, in ms."""
    sums: dict[tuple[str, str], float] = {}
    for sample in metric_samples(base_url):
        agent = sample.labels.get("agent")
        if agent and sample.name.endswith(("_sum", "_count")):
            stage = sample.labels.get("stage", "")
            sums[(f"{sample.name}:{stage}", agent)] = sample.value
    out: dict[str, dict[str, float]] = {}
    for agent in sorted({a for _, a in sums}):
        def mean_ms(name: str, stage: str = "", agent: str = agent) -> float | None:
            count = sums.get((f"{name}_count:{stage}", agent))
            total = sums.get((f"{name}_sum:{stage}", agent))
            return round(1000 * total / count, 1) if count and total is not None else None
        batches = sums.get(("seatflow_batch_seconds_count:", agent), 0.0)
        records = sums.get(("seatflow_record_age_seconds_count:", agent), 0.0)
        out[agent] = {
            "batches": batches,
            "records_per_batch": round(records / batches, 1) if batches else None,
            "record_age_ms": mean_ms("seatflow_record_age_seconds"),
            "transaction_ms": mean_ms("seatflow_stage_seconds", "transaction"),
            "publish_ms": mean_ms("seatflow_stage_seconds", "publish"),
            "batch_ms": mean_ms("seatflow_batch_seconds"),
        }
    return out


class StatusWatcher:
    """Reads the status topic (all partitions assigned, from the start) in the background;
    remembers, per booking, the record timestamps of its first `booking.pending` and
    `booking.confirmed`, and when the latter reached this consumer."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = consumer_without_group(bootstrap, fetch_max_wait_ms=50)
        self.topic = topic
        self.pending: dict[bytes, int] = {}
        self.confirmed: dict[bytes, tuple[int, int]] = {}  # key -> (record ts, seen ms)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await assign_all(self.consumer, self.topic)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=50)
            seen = time.time_ns() // 1_000_000
            for batch in batches.values():
                for r in batch:
                    if b'"booking.confirmed"' in r.value:
                        self.confirmed.setdefault(r.key, (r.timestamp, seen))
                    elif b'"booking.pending"' in r.value:
                        self.pending.setdefault(r.key, r.timestamp)

    async def wait_for(self, keys: list[bytes], timeout: float) -> bool:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(k in self.confirmed for k in keys):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()


async def offered_load(
    producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]], rate: int,
    *, sent_at: dict[bytes, int] | None = None,
) -> tuple[dict[bytes, int], float]:
    """Send records on a fixed schedule (record i at t0 + i/rate); each record's timestamp
    is the moment it was handed to the producer. Returns each key's first send time (into
    `sent_at` when given, so a caller sees them as they go) and the elapsed time."""
    sent_at = {} if sent_at is None else sent_at
    t0 = time.monotonic()
    i = 0
    while i < len(records):
        due = min(len(records), int((time.monotonic() - t0) * rate) + 1)
        while i < due:
            key, value = records[i]
            ts = time.time_ns() // 1_000_000
            await producer.send(topic, value, key=key, timestamp_ms=ts)
            sent_at.setdefault(key, ts)  # a booking's first record: its create
            i += 1
        await asyncio.sleep(0.002)
    await producer.flush()
    return sent_at, time.monotonic() - t0


async def latency_run(
    stack: Stack, template: str, restaurants: list[RestaurantConfig], cfg: BenchConfig,
    rate: int, run: int,
) -> LatencyRun:
    tag = f"lat{rate}r{run}{secrets.token_hex(2)}"
    url = await create_database_async(stack, tag, template=template)
    settings = run_settings(stack, url, tag, cfg)
    topics = TopicNames(settings.topic_prefix)
    await ensure_topics(settings)
    warm = creates(50, restaurants, cfg, f"{tag}w")
    load, _ = generate_mix(int(rate * cfg.latency_seconds), restaurants, cfg,
                           seed=cfg.seed + 1000 + run, tag=tag)
    records_of: dict[bytes, int] = {}
    for key, _ in load:
        records_of[key] = records_of.get(key, 0) + 1
    # Timed: the bookings created in the load and touched by nothing else in it.
    timed = {k for k, v in load if records_of[k] == 1 and b'"booking.created"' in v}
    load_average = os.getloadavg()[0]
    worker = WorkerProcess(settings, stack.root / f"{tag}.log").start(timeout=60.0)
    watcher = StatusWatcher(stack.kafka_bootstrap, topics.booking_status)
    # linger 2 ms: the load generator itself adds little to the measured latency.
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=False, linger_ms=2
    )
    await producer.start()
    await watcher.start()
    try:
        # Warm-up: the worker has its partitions and the caches are filled before timing.
        await offered_load(producer, topics.booking_changes, warm, rate=100)
        if not await watcher.wait_for([k for k, _ in warm], timeout=60):
            raise RuntimeError(f"warm-up bookings not confirmed:\n{worker.log_tail()}")
        meter = CpuMeter(stack, worker.pid)
        sent_at, elapsed = await offered_load(producer, topics.booking_changes, load, rate)
        cpu = meter.used()
        await watcher.wait_for(sorted(timed), timeout=cfg.latency_drain_s)
        worker.check_alive("the latency run")
        breakdown = await asyncio.to_thread(worker_breakdown, worker.base_url)
    finally:
        await producer.stop()
        await watcher.stop()
        worker.stop()

    t_first = min(sent_at.values())
    counted = [k for k, ts in sent_at.items()
               if k in timed and ts - t_first >= cfg.latency_warmup_s * 1000]
    inf = float("inf")
    total, to_pending, after_pending, observed = [], [], [], []
    samples = []
    for k in counted:
        confirmed = watcher.confirmed.get(k)
        pending = watcher.pending.get(k)
        total.append(confirmed[0] - sent_at[k] if confirmed else inf)
        observed.append(confirmed[1] - sent_at[k] if confirmed else inf)
        to_pending.append(pending - sent_at[k] if pending else inf)
        after_pending.append(confirmed[0] - pending if confirmed and pending else inf)
        if confirmed:
            samples.append((round((sent_at[k] - t_first) / 1000, 3), confirmed[0] - sent_at[k]))
    return LatencyRun(
        offered_rate=rate, achieved_rate=round(len(load) / elapsed, 1),
        seconds=round(elapsed, 2), sent=len(load), counted=len(counted),
        unconfirmed=sum(1 for v in total if v == inf), drain_s=cfg.latency_drain_s,
        p50_ms=_percentile(total, 50), p90_ms=_percentile(total, 90),
        p99_ms=_percentile(total, 99), max_ms=_percentile(total, 100),
        to_pending_p50_ms=_percentile(to_pending, 50),
        to_pending_p99_ms=_percentile(to_pending, 99),
        pending_to_confirmed_p50_ms=_percentile(after_pending, 50),
        pending_to_confirmed_p99_ms=_percentile(after_pending, 99),
        observed_p99_ms=_percentile(observed, 99),
        cpu_seconds=cpu, load_average=round(load_average, 2), worker=breakdown,
        samples=samples,
    )
