"""End-to-end pipeline benchmark: a real `seatflow worker` on the embedded stack.

Four measurements, all in one run on one embedded stack (Tansu broker, pgserver PostgreSQL,
SMTP sink) on this machine:

1. Throughput. A realistic mix of booking changes (creates 60 %, realigning edits 15 %,
   notes-only edits 15 %, cancellations 10 %) over many generated restaurants is produced
   first; then a worker starts, and the clock runs until every change is fully processed:
   `processed_events` holds all N event ids, no booking waits for the allocator
   (`alloc_state = 'queued'`), and the outbox is empty (every status event, notification,
   ops event and allocation request it held is on its topic). Rate = N / (done - first
   transaction). Afterwards the status topic is read back and the last status event of
   every booking is checked against PostgreSQL. SUPPRESS_EMAILS=true: SMTP delivery is
   not the pipeline (the email decisions are still made, recorded and published).
2. Baseline. Right after each throughput run, a raw aiokafka relay (one consumer assigned
   to every partition, one producer, acks=all) copies the very same N change records to
   another topic on the same broker. Our rate is reported as a share of the relay's.
3. Latency. A fresh worker at a fixed offered load (creates at each of `latency_rates`
   per second, 1000/s being the target's) for `latency_seconds`: the time from the change
   record's timestamp (set when it was sent) to the `booking.confirmed` record's timestamp
   on the status topic (set when the worker sent it), read by a consumer assigned to all
   of its partitions. Bookings still unconfirmed `latency_drain_s` after the load count as
   slower than every measured one (a percentile landing on them is reported as null).
4. Profile. py-spy samples the worker during the last throughput run (non-blocking, so
   the run still counts); the collapsed stacks, a summary of the costs in seatflow's own
   code and a flame chart go to bench/results/.

Restaurants are loaded once through a worker (the contract path) into a template
database; every run then starts from a copy of it (`CREATE DATABASE ... TEMPLATE`) with its
own topic prefix and consumer group.

Run: ``.venv/bin/python -m bench.pipeline [--quick]`` (or ``make bench`` for all benchmarks).
Writes bench/results/pipeline.json, pipeline_{throughput,latency,flame}.png and
pipeline_profile.txt (py-spy collapsed stacks); --quick writes to bench/results/quick/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.daygen import generate_restaurant
from config.settings import Settings
from config.topics import TopicNames
from devstack import (
    EmbeddedBroker,
    EmbeddedPostgres,
    free_port,
    start_broker,
    start_mail_sink,
    start_postgres,
)
from devstack.mailsink import MailSink
from models.restaurant import RestaurantConfig
from producers.publisher import Publisher, make_change
from streams.admin import ensure_topics

T = TypeVar("T")
RESULTS_DIR = Path(__file__).parent / "results"
QUICK_RESULTS_DIR = RESULTS_DIR / "quick"  # smoke runs write here, not over the full results
REPO_ROOT = Path(__file__).resolve().parent.parent
SEATFLOW_BIN = Path(sys.executable).with_name("seatflow")
PY_SPY_BIN = Path(sys.executable).with_name("py-spy")

TARGET_RELAY_SHARE = 0.20
TARGET_P99_MS = 250.0
MIX = {"create": 0.60, "realign": 0.15, "notes": 0.15, "cancel": 0.10}
# Party sizes (up to 8, so every party fits some combination) and start slots.
PARTY_MIX = ((1, 4), (2, 45), (3, 12), (4, 21), (5, 6), (6, 6), (7, 3), (8, 3))
LUNCH_SLOTS = ("12:00", "12:15", "12:30", "12:45", "13:00", "13:15", "13:30")
DINNER_SLOTS = tuple(f"{h}:{m:02d}" for h in range(17, 21) for m in (0, 15, 30, 45)) + ("21:00",)
POLL_S = 0.1
# The code the profile summary calls "seatflow's own" (the CLI wrapper frames excluded: every
# sample passes through them).
OWN_PACKAGES = ("services", "storage", "streams", "agents", "domain", "models", "mail")


@dataclass(frozen=True)
class BenchConfig:
    restaurants: int = 200
    tables_per_restaurant: int = 20
    days: int = 10  # booking dates spread over this many days, starting in two days
    events: int = 20_000
    throughput_runs: int = 3
    # The target rate first; a lower one shows the latency the pipeline has when it keeps up.
    latency_rates: tuple[int, ...] = (1000, 200)
    latency_seconds: float = 15.0
    latency_warmup_s: float = 2.0  # sends in the first seconds are not counted
    latency_drain_s: float = 10.0  # after the load: later confirmations count as censored
    latency_runs: int = 1  # per rate
    profile: bool = True  # py-spy samples the last throughput run
    partitions: int = 8
    seed: int = 20261121


FULL = BenchConfig()
QUICK = BenchConfig(
    restaurants=50, events=3_000, throughput_runs=1, latency_rates=(1000,), latency_seconds=5.0,
    latency_drain_s=8.0,
)


# --- the embedded stack -----------------------------------------------------------------------


@dataclass
class Stack:
    root: Path
    broker: EmbeddedBroker
    postgres: EmbeddedPostgres
    mail: MailSink

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def database_url(self, name: str) -> str:
        base, _, query = self.postgres.url.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")

    def stop(self) -> None:
        for stop in (self.mail.stop, self.postgres.stop, self.broker.stop):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"stack: stopping failed: {exc!r}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)


def start_stack() -> Stack:
    # A short root keeps the PostgreSQL socket path under the kernel's 107-byte limit.
    root = Path(tempfile.mkdtemp(prefix="sfbench-"))
    broker = start_broker(free_port(), log_path=root / "broker.log")
    try:
        postgres = start_postgres(root / "pgdata")
    except BaseException:
        broker.stop()
        raise
    mail = start_mail_sink("127.0.0.1", free_port(), root / "mail")
    return Stack(root=root, broker=broker, postgres=postgres, mail=mail)


async def create_database(stack: Stack, name: str, template: str | None = None) -> str:
    conn = await asyncpg.connect(stack.postgres.url)
    try:
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return stack.database_url(name)


def run_settings(stack: Stack, database_url: str, tag: str, cfg: BenchConfig) -> Settings:
    """Contract defaults for behaviour (2 s inline window, 5/15/45 s retries); emails
    suppressed; a prefix, consumer group, home and web port of its own."""
    return Settings().model_copy(
        update={
            "kafka_bootstrap": stack.bootstrap,
            "database_url": database_url,
            "smtp_host": stack.mail.host,
            "smtp_port": stack.mail.port,
            "smtp_tls": "none",
            "topic_prefix": f"{tag}.",
            "topic_partitions": cfg.partitions,
            "app_id_override": None,
            "web_port": free_port(),
            "web_host": "127.0.0.1",
            "home": stack.root / tag,
            "suppress_emails": True,
            "inline_confirm_window_ms": 2000,
            "auto_assign_retry_delays_ms": [5000, 15000, 45000],
        }
    )


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `seatflow worker` read exactly these settings."""
    env = dict(os.environ)
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        env_name = str(getattr(alias, "choices", [alias])[0])
        value = getattr(settings, name)
        if value is None:
            env.pop(env_name, None)
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[env_name] = str(value)
    return env


class WorkerDied(RuntimeError):
    """The worker exited during a measurement (a crash, or a signal from outside)."""


@dataclass
class Worker:
    """One `seatflow worker` subprocess (its log under the stack's root)."""

    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # wall clock

    def start(self, timeout: float = 60.0) -> Worker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.started_at = time.time()
            self.process = subprocess.Popen(
                [str(SEATFLOW_BIN), "worker"], env=worker_env(self.settings), stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO_ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited at start:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.settings.web_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


# --- CPU accounting ---------------------------------------------------------------------------


def _cpu_seconds(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


class CpuMeter:
    """CPU seconds used by the worker, PostgreSQL (postmaster and backends) and the broker."""

    def __init__(self, stack: Stack, worker_pid: int) -> None:
        self.stack = stack
        self.worker_pid = worker_pid
        self.start = self.sample()

    def _postgres(self) -> float:
        pid = self.stack.postgres.postmaster_pid
        if pid is None:
            return 0.0
        try:
            main = psutil.Process(pid)
            return _cpu_seconds(main) + sum(_cpu_seconds(c) for c in main.children())
        except psutil.Error:
            return 0.0

    def sample(self) -> dict[str, float]:
        return {
            "worker": _cpu_seconds(psutil.Process(self.worker_pid)),
            # Backends that exited since the last sample take their CPU with them: a floor.
            "postgres": self._postgres(),
            "broker": _cpu_seconds(psutil.Process(self.stack.broker.process.pid)),
        }

    def used(self) -> dict[str, float]:
        now = self.sample()
        return {k: round(max(0.0, now[k] - self.start.get(k, 0.0)), 2) for k in now}


# --- restaurants and the change mix -------------------------------------------------------------


def make_restaurants(cfg: BenchConfig) -> list[RestaurantConfig]:
    rng = random.Random(cfg.seed)
    out = []
    for i in range(cfg.restaurants):
        base = generate_restaurant(cfg.tables_per_restaurant, rng)
        rid = f"r{i:04d}"
        out.append(
            base.model_copy(
                update={"restaurant_id": rid, "slug": f"bench-{rid}", "name": f"Bench {rid}",
                        "timezone": "Europe/London", "contact_email": f"host@{rid}.example"}
            )
        )
    return out


def _first_day() -> date:
    # Two days ahead: no booking's start can pass (in any time zone) during a run.
    return datetime.now(UTC).date() + timedelta(days=2)


def _booking_fields(rng: random.Random, days: int, first: date) -> dict[str, Any]:
    slots = LUNCH_SLOTS if rng.random() < 0.3 else DINNER_SLOTS
    party = rng.choices([p for p, _ in PARTY_MIX], weights=[w for _, w in PARTY_MIX])[0]
    return {
        "booking_date": (first + timedelta(days=rng.randrange(days))).isoformat(),
        "start_time": rng.choice(slots),
        "party_size": party,
        "customer_name": f"Guest {rng.randrange(10**6)}",
        "customer_email": f"guest{rng.randrange(10**6)}@example.com",
        "notes": None,
    }


def _realign(rng: random.Random, fields: dict[str, Any], days: int, first: date) -> dict[str, Any]:
    what = rng.choice(("start_time", "party_size", "booking_date"))
    new = dict(fields)
    if what == "start_time":
        slots = LUNCH_SLOTS if fields["start_time"] in LUNCH_SLOTS else DINNER_SLOTS
        new["start_time"] = rng.choice([s for s in slots if s != fields["start_time"]])
    elif what == "party_size":
        new["party_size"] = fields["party_size"] + 1 if fields["party_size"] < 8 else 7
    else:  # another day in the spread, never the same one
        current = (date.fromisoformat(fields["booking_date"]) - first).days
        day = first + timedelta(days=(current + 1 + rng.randrange(days - 1)) % days)
        new["booking_date"] = day.isoformat()
    return new


def generate_mix(
    n: int, restaurants: list[RestaurantConfig], cfg: BenchConfig, seed: int, tag: str
) -> tuple[list[tuple[bytes, bytes]], Counter[str]]:
    """N change records (key, value) in publication order, and how many of each kind.

    Edits and cancellations name a booking created earlier in the stream (not cancelled
    yet); kinds are drawn so the stream ends with the exact mix."""
    rng = random.Random(seed)
    first = _first_day()
    remaining = {k: round(share * n) for k, share in MIX.items()}
    remaining["create"] += n - sum(remaining.values())
    live: list[str] = []
    live_index: dict[str, int] = {}
    bookings: dict[str, tuple[str, dict[str, Any]]] = {}
    records: list[tuple[bytes, bytes]] = []
    kinds: Counter[str] = Counter()
    for _ in range(n):
        choices = [k for k, left in remaining.items() if left > 0 and (k == "create" or live)]
        kind = rng.choices(choices, weights=[remaining[k] for k in choices])[0]
        remaining[kind] -= 1
        kinds[kind] += 1
        if kind == "create":
            bid = f"b-{tag}-{len(bookings)}"
            rid = rng.choice(restaurants).restaurant_id
            fields = _booking_fields(rng, cfg.days, first)
            bookings[bid] = (rid, fields)
            live_index[bid] = len(live)
            live.append(bid)
            change = make_change("booking.created", bid, rid, **fields)
        else:
            bid = live[rng.randrange(len(live))]
            rid, fields = bookings[bid]
            if kind == "cancel":
                last = live.pop()  # O(1) removal: move the last entry into the hole
                if last != bid:
                    live[live_index[bid]] = last
                    live_index[last] = live_index[bid]
                del live_index[bid]
                change = make_change("booking.cancelled", bid, rid)
            else:
                fields = (
                    _realign(rng, fields, cfg.days, first)
                    if kind == "realign"
                    else {**fields, "notes": f"note {rng.randrange(10**6)}: window seat please"}
                )
                bookings[bid] = (rid, fields)
                change = make_change("booking.updated", bid, rid, **fields)
        records.append((bid.encode(), change.model_dump_json().encode()))
    return records, kinds


async def produce(settings: Settings, records: list[tuple[bytes, bytes]]) -> dict[str, float]:
    topic = TopicNames(settings.topic_prefix).booking_changes
    async with Publisher(settings, linger_ms=20, max_batch_size=512 * 1024) as pub:
        t0 = time.perf_counter()
        for key, value in records:
            await pub.publish_raw(topic, key, value)
        await pub.flush()
        elapsed = time.perf_counter() - t0
    return {"seconds": round(elapsed, 3), "per_s": round(len(records) / elapsed)}


# --- reading topics without a consumer group ------------------------------------------------------


async def _assign_all(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(100):
        await consumer.topics()
        ids = consumer.partitions_for_topic(topic)
        if ids:
            tps = [TopicPartition(topic, p) for p in sorted(ids)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            return tps
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions")


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", fetch_max_wait_ms=50,
    )


async def read_all(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Any]:  # noqa: ASYNC109
    """Every record so far: read until each partition reaches the high watermark that fetch
    responses report (Tansu's ListOffsets "latest" is off, docs/infrastructure.md)."""
    consumer = _consumer(bootstrap)
    await consumer.start()
    records: list[Any] = []
    try:
        tps = await _assign_all(consumer, topic)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
                records.extend(batch)
            marks = [consumer.highwater(tp) for tp in tps]
            if all(m is not None for m in marks) and all(
                [await consumer.position(tp) >= m for tp, m in zip(tps, marks, strict=True)]
            ):
                break
    finally:
        await consumer.stop()
    return records


# --- 1. throughput -------------------------------------------------------------------------------


@dataclass
class ThroughputRun:
    events: int
    kinds: dict[str, int]
    produce_per_s: int
    worker_start_to_done_s: float
    processing_s: float  # first change transaction -> everything published
    changes_per_s: float
    timed_out: bool
    final_status: dict[str, int]
    alloc_states: dict[str, int]
    status_events: int
    status_mismatches: int  # bookings whose last status event disagrees with PostgreSQL
    change_transactions: int  # batches the changes agent committed
    outbox_records: int  # records the worker published through its outbox
    cpu_seconds: dict[str, float]  # worker, PostgreSQL, broker: from worker start to done
    cpu_ms_per_change: dict[str, float]
    load_average: float  # 1-min load average when the worker started (2 cores)
    relay: dict[str, Any] = field(default_factory=dict)
    profiled: bool = False


async def _progress(conn: asyncpg.Connection) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM processed_events) AS processed,"
        " (SELECT count(*) FROM bookings WHERE status = 'pending' AND alloc_state = 'queued')"
        " AS queued, (SELECT count(*) FROM outbox) AS outbox"
    )
    return row["processed"], row["queued"], row["outbox"]


async def wait_processed(
    database_url: str, n: int, worker: Worker, timeout: float  # noqa: ASYNC109
) -> tuple[float, bool]:
    """Poll until all n changes are processed and published; returns (done wall time, timed out)."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            processed, queued, outbox = await _progress(conn)
            if processed >= n and queued == 0 and outbox == 0:
                return time.time(), False
            if worker.process is not None and worker.process.poll() is not None:
                raise WorkerDied(f"worker died during the run:\n{worker.log_tail()}")
            await asyncio.sleep(POLL_S)
        print(f"  timed out: processed={processed}/{n} queued={queued} outbox={outbox}")
        return time.time(), True
    finally:
        await conn.close()


@dataclass
class FinalState:
    statuses: dict[str, int]
    alloc_states: dict[str, int]
    status_events: int
    mismatches: int
    first_processed: float  # wall clock of the first change transaction
    change_transactions: int
    outbox_records: int


async def check_final_state(stack: Stack, settings: Settings, database_url: str) -> FinalState:
    """Final statuses in PostgreSQL, and how many bookings' last status event disagrees."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT booking_id, status, pending_ref, alloc_state FROM bookings")
        first = await conn.fetchval("SELECT min(processed_at) FROM processed_events")
        # processed_at is now(): the start of the transaction that applied the change.
        transactions = await conn.fetchval(
            "SELECT count(DISTINCT processed_at) FROM processed_events"
        )
        outbox_records = await conn.fetchval(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM outbox_id_seq"
        )
    finally:
        await conn.close()
    records = await read_all(stack.bootstrap, TopicNames(settings.topic_prefix).booking_status)
    last: dict[str, dict[str, Any]] = {}
    for r in records:  # key = booking_id: one partition, in order
        event = json.loads(r.value)
        last[event["booking_id"]] = event
    mismatches = sum(
        1
        for row in rows
        if (e := last.get(row["booking_id"])) is None
        or e["status"] != row["status"]
        or e["pending_ref"] != row["pending_ref"]
    )
    return FinalState(
        statuses=dict(Counter(r["status"] for r in rows)),
        alloc_states=dict(Counter(r["alloc_state"] for r in rows)),
        status_events=len(records), mismatches=mismatches, first_processed=first.timestamp(),
        change_transactions=transactions, outbox_records=outbox_records,
    )


async def throughput_run(
    stack: Stack, template: str, restaurants: list[RestaurantConfig], cfg: BenchConfig,
    run: int, events: int, profile_to: Path | None = None,
) -> ThroughputRun:
    tag = f"tp{run}{secrets.token_hex(2)}"
    url = await create_database(stack, tag, template)
    settings = run_settings(stack, url, tag, cfg)
    records, kinds = generate_mix(events, restaurants, cfg, seed=cfg.seed + run, tag=tag)
    produced = await produce(settings, records)
    load_average = os.getloadavg()[0]
    worker = Worker(settings, stack.root / f"{tag}.log").start()
    spy = start_profiler(worker.pid, profile_to) if profile_to else None
    meter = CpuMeter(stack, worker.pid)
    try:
        done, timed_out = await wait_processed(url, events, worker, timeout=max(120, events / 100))
        cpu = meter.used()
    finally:
        if spy is not None:
            stop_profiler(spy)
        worker.stop()
    final = await check_final_state(stack, settings, url)
    processing = done - final.first_processed
    result = ThroughputRun(
        events=events, kinds=dict(kinds), produce_per_s=int(produced["per_s"]),
        worker_start_to_done_s=round(done - worker.started_at, 2),
        processing_s=round(processing, 2), changes_per_s=round(events / processing, 1),
        timed_out=timed_out, final_status=final.statuses, alloc_states=final.alloc_states,
        status_events=final.status_events, status_mismatches=final.mismatches,
        change_transactions=final.change_transactions, outbox_records=final.outbox_records,
        cpu_seconds=cpu, cpu_ms_per_change={k: round(v * 1000 / events, 3) for k, v in cpu.items()},
        load_average=round(load_average, 2), profiled=profile_to is not None,
    )
    result.relay = await relay_run(settings, events)
    return result


# --- 2. the raw aiokafka relay baseline -------------------------------------------------------------


async def relay_run(settings: Settings, expected: int) -> dict[str, Any]:
    """Copy the run's change records to `<prefix>relay-out`: consume -> produce, one each."""
    source = TopicNames(settings.topic_prefix).booking_changes
    target = f"{settings.topic_prefix}relay-out"
    await ensure_topics(settings, extra=[target])
    consumer = _consumer(settings.kafka_bootstrap)
    # Like the worker's producer (Faust: acks=-1, linger 5 ms), without idempotence (Tansu).
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=False,
        linger_ms=5,
    )
    await consumer.start()
    await producer.start()
    try:
        await _assign_all(consumer, source)
        deliveries = []
        n = size = 0
        t0 = time.perf_counter()
        deadline = time.monotonic() + 120
        while n < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                for record in batch:
                    deliveries.append(await producer.send(target, record.value, key=record.key))
                    size += len(record.value)
                n += len(batch)
        await producer.flush()
        errors = sum(
            isinstance(r, BaseException)
            for r in await asyncio.gather(*deliveries, return_exceptions=True)
        )
        elapsed = time.perf_counter() - t0
    finally:
        await consumer.stop()
        await producer.stop()
    return {
        "messages": n, "errors": errors, "mean_value_bytes": round(size / max(n, 1)),
        "seconds": round(elapsed, 3), "per_s": round(n / elapsed, 1),
    }


# --- 3. latency at a fixed offered load --------------------------------------------------------------


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
    samples: list[tuple[float, float]] = field(default_factory=list, repr=False)


def _creates(
    n: int, restaurants: list[RestaurantConfig], cfg: BenchConfig, tag: str
) -> list[tuple[bytes, bytes]]:
    rng = random.Random(f"{cfg.seed}:{tag}")
    first = _first_day()
    out = []
    for i in range(n):
        bid = f"b-{tag}-{i}"
        change = make_change("booking.created", bid, rng.choice(restaurants).restaurant_id,
                             **_booking_fields(rng, cfg.days, first))
        out.append((bid.encode(), change.model_dump_json().encode()))
    return out


class StatusWatcher:
    """Reads the status topic (all partitions assigned, from the start) in the background;
    remembers, per booking, the record timestamps of its first `booking.pending` and
    `booking.confirmed`, and when the latter reached this consumer."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = _consumer(bootstrap)
        self.topic = topic
        self.pending: dict[bytes, int] = {}
        self.confirmed: dict[bytes, tuple[int, int]] = {}  # key -> (record ts, seen ms)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await _assign_all(self.consumer, self.topic)
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
    producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]], rate: int
) -> tuple[dict[bytes, int], float]:
    """Send records on a fixed schedule (record i at t0 + i/rate); each record's timestamp
    is the moment it was handed to the producer. Returns send times and the elapsed time."""
    sent_at: dict[bytes, int] = {}
    t0 = time.monotonic()
    i = 0
    while i < len(records):
        due = min(len(records), int((time.monotonic() - t0) * rate) + 1)
        while i < due:
            key, value = records[i]
            ts = time.time_ns() // 1_000_000
            await producer.send(topic, value, key=key, timestamp_ms=ts)
            sent_at[key] = ts
            i += 1
        await asyncio.sleep(0.002)
    await producer.flush()
    return sent_at, time.monotonic() - t0


async def latency_run(
    stack: Stack, template: str, restaurants: list[RestaurantConfig], cfg: BenchConfig,
    rate: int, run: int,
) -> LatencyRun:
    tag = f"lat{rate}r{run}{secrets.token_hex(2)}"
    url = await create_database(stack, tag, template)
    settings = run_settings(stack, url, tag, cfg)
    topics = TopicNames(settings.topic_prefix)
    await ensure_topics(settings)
    warm = _creates(50, restaurants, cfg, f"{tag}w")
    load = _creates(int(rate * cfg.latency_seconds), restaurants, cfg, tag)
    load_average = os.getloadavg()[0]
    worker = Worker(settings, stack.root / f"{tag}.log").start()
    watcher = StatusWatcher(stack.bootstrap, topics.booking_status)
    # linger 2 ms: the load generator itself adds little to the measured latency.
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=False, linger_ms=2
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
        await watcher.wait_for([k for k, _ in load], timeout=cfg.latency_drain_s)
        if worker.process is not None and worker.process.poll() is not None:
            raise WorkerDied(f"worker died during the latency run:\n{worker.log_tail()}")
    finally:
        await producer.stop()
        await watcher.stop()
        worker.stop()

    t_first = min(sent_at.values())
    counted = [k for k, ts in sent_at.items() if ts - t_first >= cfg.latency_warmup_s * 1000]
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
        cpu_seconds=cpu, load_average=round(load_average, 2), samples=samples,
    )


# --- 4. profile ----------------------------------------------------------------------------------------


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    if not PY_SPY_BIN.exists():
        raise RuntimeError(f"py-spy not installed ({PY_SPY_BIN}); `pip install py-spy`")
    out.parent.mkdir(parents=True, exist_ok=True)
    # On-CPU samples only (idle event-loop waits are left out), aggregated per function.
    return subprocess.Popen(
        [str(PY_SPY_BIN), "record", "--pid", str(pid), "--rate", "100", "--function", "--threads",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def stop_profiler(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(5)


def _frame_file(frame: str) -> str:
    # py-spy raw frames read "function (package/module.py:line)", paths shortened.
    return frame[frame.rfind("(") + 1 : frame.rfind(":")] if frame.endswith(")") else ""


def _package(frame: str) -> str:
    path = _frame_file(frame)
    top = path.split("/", 1)[0].removesuffix(".py")
    return top if path.endswith(".py") else "<script>"


def _is_own(frame: str) -> bool:
    return _package(frame) in OWN_PACKAGES


def _library(frame: str) -> str:
    pkg = _package(frame)
    if pkg in OWN_PACKAGES:
        return "seatflow (own code)"
    if pkg in sys.stdlib_module_names:
        return f"stdlib {pkg}"
    return pkg


def _label(frame: str) -> str:
    name = frame[: frame.rfind(" (")] if " (" in frame else frame
    return f"{_frame_file(frame)}:{name}" if _is_own(frame) else f"{name} [{_package(frame)}]"


def _task_entry(frames: list[str]) -> str:
    """The coroutine the event loop was running: the frame after the last Handle._run."""
    for i in range(len(frames) - 1, -1, -1):
        if frames[i].startswith("Handle._run ") and i + 1 < len(frames):
            return _label(frames[i + 1])
    return "none, in " + _label(frames[-1])  # the loop itself: polling, scheduling


def load_stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        body, _, count = line.rpartition(" ")
        if body and count.isdigit():
            stacks.append((body.split(";"), int(count)))
    return stacks


def summarise_profile(stacks: list[tuple[list[str], int]], top: int = 25) -> dict[str, Any]:
    """Shares of on-CPU samples: self time by package, seatflow's own functions inclusive
    and self, and who pays: the innermost own frame of each sample (else the task it ran)."""
    total = sum(c for _, c in stacks) or 1
    inclusive: Counter[str] = Counter()
    self_own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    payer: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    for frames, count in stacks:
        if frames[0].startswith("thread ("):  # py-spy --threads: "thread (tid): name"
            by_thread[frames[0].split(": ", 1)[-1]] += count
            frames = frames[1:] or frames
        for label in {_label(f) for f in frames if _is_own(f)}:
            inclusive[label] += count
        leaf = frames[-1]
        by_package[_library(leaf)] += count
        if _is_own(leaf):
            self_own[_label(leaf)] += count
        own = [f for f in frames if _is_own(f)]
        payer[_label(own[-1]) if own else "no own frame, task: " + _task_entry(frames)] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": k, "samples": v, "share": round(v / total, 4)}
                for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "by_thread": share(by_thread),
        "self_by_package": share(by_package),
        "own_inclusive": share(inclusive),
        "own_self": share(self_own),
        "innermost_own_frame": share(payer),
    }


def flame_chart(stacks: list[tuple[list[str], int]], path: Path, max_depth: int = 70) -> None:
    """An icicle flame chart (root at the top) of the collapsed stacks, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tree: dict[str, Any] = {"n": 0, "kids": {}}
    for frames, count in stacks:
        node = tree
        node["n"] += count
        for f in frames[:max_depth]:
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += count
    total = tree["n"] or 1
    depth_seen = 0
    rects: list[tuple[float, int, float, str]] = []

    def walk(node: dict[str, Any], x: float, depth: int) -> None:
        nonlocal depth_seen
        for name, kid in sorted(node["kids"].items()):
            width = kid["n"] / total
            if width >= 0.002:
                rects.append((x, depth, width, name))
                depth_seen = max(depth_seen, depth)
                walk(kid, x, depth + 1)
            x += width

    walk(tree, 0.0, 0)
    fig, ax = plt.subplots(figsize=(18, max(6, 0.22 * (depth_seen + 2))))
    palette = {"seatflow (own code)": "#e4572e"}
    for x, depth, width, name in rects:
        lib = _library(name)
        color = palette.get(lib, "#f3a712" if lib.startswith("stdlib") else "#76b041")
        ax.add_patch(plt.Rectangle((x, depth), width, 0.95, color=color, ec="white", lw=0.3))
        if width > 0.025:
            label = (name.split(": ", 1)[-1] if name.startswith("thread (")
                     else name[: name.rfind(" (")] if " (" in name else name)
            chars = int(width * 230)
            ax.text(x + 0.002, depth + 0.45, label[:chars], fontsize=6, va="center")
    ax.set_xlim(0, 1)
    ax.set_ylim(depth_seen + 1, 0)
    ax.set_xlabel("share of on-CPU samples (red: seatflow's own code, yellow: stdlib, "
                  "green: libraries)")
    ax.set_yticks([])
    ax.set_title(f"seatflow worker during the throughput run: {total} py-spy samples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- charts and the whole benchmark -----------------------------------------------------------------


def charts(result: dict[str, Any], latency_runs: list[LatencyRun], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tp = result["throughput"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ours = [r["changes_per_s"] for r in tp["runs"]]
    relay = [r["relay"]["per_s"] for r in tp["runs"]]
    ax.bar([0, 1], [statistics.median(ours), statistics.median(relay)],
           color=["#e4572e", "#29335c"], alpha=0.8)
    ax.scatter([0] * len(ours), ours, color="black", zorder=3, s=12, label="single runs")
    ax.scatter([1] * len(relay), relay, color="black", zorder=3, s=12)
    ax.axhline(TARGET_RELAY_SHARE * statistics.median(relay), color="grey", ls=":",
               label=f"target: {TARGET_RELAY_SHARE:.0%} of the relay")
    ax.set_xticks([0, 1], ["seatflow worker\n(changes fully processed)", "raw aiokafka relay"])
    ax.set_yscale("log")
    ax.set_ylabel("messages per second (log)")
    ax.set_title(f"Throughput, {tp['runs'][0]['events']} changes, median of {len(ours)}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pipeline_throughput.png", dpi=120)
    plt.close(fig)

    if not latency_runs:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for run in latency_runs:
        label = f"{run.offered_rate}/s"
        left.scatter([t for t, _ in run.samples], [v for _, v in run.samples], s=1, alpha=0.4,
                     label=label)
        ordered = sorted(v for _, v in run.samples)
        # Unconfirmed bookings keep the CDF below 1: they are part of the population.
        right.plot(ordered, [(k + 1) / run.counted for k in range(len(ordered))], label=label)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, markerscale=8)
    left.axhline(TARGET_P99_MS, color="grey", ls=":")
    left.set_xlabel("seconds into the load")
    left.set_ylabel("change sent -> booking.confirmed sent (ms)")
    left.set_yscale("log")
    right.axvline(TARGET_P99_MS, color="grey", ls=":")
    right.axhline(0.99, color="grey", ls=":")
    right.set_xscale("log")
    right.set_xlabel("latency (ms); dotted: the p99 <= 250 ms target")
    right.set_ylabel("share of bookings confirmed")
    right.set_title("Latency CDF by offered load (creates/s)")
    fig.tight_layout()
    fig.savefig(out / "pipeline_latency.png", dpi=120)
    plt.close(fig)


async def build_template(stack: Stack, restaurants: list[RestaurantConfig], cfg: BenchConfig) -> str:
    """Restaurants loaded through a real worker (topic -> agent -> PostgreSQL), kept as a
    template database every run copies."""
    name = "bench_template"
    url = await create_database(stack, name)
    settings = run_settings(stack, url, "tpl", cfg)
    async with Publisher(settings) as pub:
        for r in restaurants:
            await pub.publish_restaurant(r)
    worker = Worker(settings, stack.root / "template.log").start()
    try:
        conn = await asyncpg.connect(url)
        try:
            deadline = time.monotonic() + 120
            while await conn.fetchval("SELECT count(*) FROM restaurants") < len(restaurants):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"restaurants not loaded:\n{worker.log_tail()}")
                await asyncio.sleep(0.2)
        finally:
            await conn.close()
    finally:
        worker.stop()
    return name


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the service's code differed from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", *OWN_PACKAGES, "seatflow")
    return {"commit": git("rev-parse", "HEAD"), "service_code_changed": bool(changed)}


async def with_retry(label: str, deaths: list[str], run: Callable[[], Awaitable[T]]) -> T:
    """One retry when the worker dies mid-measurement: on a shared machine something else
    may signal it. Every death is kept in the results."""
    try:
        return await run()
    except WorkerDied as exc:
        tail = str(exc).splitlines()[-3:]
        deaths.append(f"{label}: " + " | ".join(tail))
        print(f"  {label}: the worker died ({tail[-1] if tail else '?'}); running it again")
        return await run()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1) if values else float("nan")


def _median_or_none(values: list[float | None]) -> float | None:
    """Median of percentiles where None means "above the drain time": None if it lands there."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: float("inf") if v is None else v)
    return ordered[(len(ordered) - 1) // 2]


async def run_benchmark(cfg: BenchConfig, *, quick: bool, out: Path = RESULTS_DIR) -> dict[str, Any]:
    version = code_version()
    deaths: list[str] = []
    stack = start_stack()
    try:
        restaurants = make_restaurants(cfg)
        t0 = time.monotonic()
        template = await build_template(stack, restaurants, cfg)
        print(f"  template: {len(restaurants)} restaurants loaded via a worker "
              f"({time.monotonic() - t0:.1f} s)")
        runs: list[ThroughputRun] = []
        raw = out / "pipeline_profile.txt"
        raw.unlink(missing_ok=True)
        if cfg.profile and not PY_SPY_BIN.exists():
            print(f"  profile skipped: py-spy is not installed ({PY_SPY_BIN})")
            cfg = replace(cfg, profile=False)
        for i in range(cfg.throughput_runs):
            # py-spy samples the last run (--nonblocking: it never pauses the worker).
            spy_to = raw if cfg.profile and i == cfg.throughput_runs - 1 else None
            r = await with_retry(
                f"throughput run {i + 1}", deaths,
                lambda i=i, spy_to=spy_to: throughput_run(
                    stack, template, restaurants, cfg, i, cfg.events, profile_to=spy_to),
            )
            runs.append(r)
            print(f"  throughput run {i + 1}/{cfg.throughput_runs}"
                  f"{' (profiled)' if r.profiled else ''}: {r.changes_per_s:.0f} "
                  f"changes/s ({r.processing_s} s), relay {r.relay['per_s']:.0f} msg/s, "
                  f"status mismatches {r.status_mismatches}, cpu {r.cpu_seconds}, "
                  f"load avg {r.load_average}")
        latency_runs: list[LatencyRun] = []
        for rate in cfg.latency_rates:
            for i in range(cfg.latency_runs):
                lat = await with_retry(
                    f"latency {rate}/s run {i + 1}", deaths,
                    lambda rate=rate, i=i: latency_run(stack, template, restaurants, cfg, rate, i),
                )
                latency_runs.append(lat)
                print(f"  latency {rate}/s run {i + 1}/{cfg.latency_runs}: p50 {lat.p50_ms} ms, "
                      f"p99 {lat.p99_ms} ms (None = over {lat.drain_s:.0f} s) at "
                      f"{lat.achieved_rate}/s, {lat.unconfirmed}/{lat.counted} unconfirmed")
        profile: dict[str, Any] | None = None
        stacks = load_stacks(raw) if cfg.profile and raw.exists() else []
        if stacks:
            profile = {"run": len(runs), **summarise_profile(stacks),
                       "collapsed_stacks": raw.name, "flame_chart": "pipeline_flame.png"}
            flame_chart(stacks, out / "pipeline_flame.png")
            print(f"  profile of throughput run {len(runs)}: {profile['samples']} samples")
        elif cfg.profile:
            print("  profile: py-spy wrote no samples")
    finally:
        stack.stop()

    ours = [r.changes_per_s for r in runs]
    relay = [r.relay["per_s"] for r in runs]
    ratio = statistics.median(a / b for a, b in zip(ours, relay, strict=True))
    by_rate: dict[str, Any] = {}
    for rate in cfg.latency_rates:
        mine = [r for r in latency_runs if r.offered_rate == rate]
        by_rate[str(rate)] = {
            "runs": len(mine),
            "median_p50_ms": _median_or_none([r.p50_ms for r in mine]),
            "median_p99_ms": _median_or_none([r.p99_ms for r in mine]),
            "median_unconfirmed": statistics.median(r.unconfirmed for r in mine),
        }
    target_p99 = by_rate.get("1000", {}).get("median_p99_ms")
    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "out": str(out),
        "quick": quick,
        "config": asdict(cfg),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "code": version,
        "worker_deaths_retried": deaths,
        "notes": [
            "SUPPRESS_EMAILS=true: SMTP delivery is not measured; email decisions are still "
            "made, recorded and published on the notifications topic.",
            "Throughput = changes / (first change transaction -> all processed and published);"
            " worker start-up (group join) is reported separately.",
            "Relay baseline copies the same records (same count and sizes) on the same broker.",
            "Latency = booking.confirmed record timestamp - change record timestamp; sends in "
            "the first latency_warmup_s are excluded; a booking not confirmed within "
            "latency_drain_s after the load counts as above every measured value (a "
            "percentile that lands there is null).",
            "load_average: the machine may be shared with other work; timings are noisy.",
        ],
        "throughput": {
            "runs": [asdict(r) for r in runs],
            "median_changes_per_s": _median(ours),
            "median_relay_per_s": _median(relay),
            "median_ratio_to_relay": round(ratio, 4),
            "median_worker_cpu_ms_per_change": round(
                statistics.median(r.cpu_ms_per_change["worker"] for r in runs), 3),
            "target_ratio": TARGET_RELAY_SHARE,
            "target_met": ratio >= TARGET_RELAY_SHARE,
        },
        "latency": {
            "runs": [{k: v for k, v in asdict(r).items() if k != "samples"} for r in latency_runs],
            "by_rate": by_rate,
            "target_p99_ms": TARGET_P99_MS,
            "target_met": target_p99 is not None and target_p99 <= TARGET_P99_MS,
        },
        "profile": profile,
    }
    (out / "pipeline.json").write_text(json.dumps(result, indent=2))
    charts(result, latency_runs, out)
    return result


def _ms(value: float | None, drain_s: float) -> str:
    return f"{value:,.0f}" if value is not None else f"> {drain_s:.0f} s"


def print_summary(result: dict[str, Any]) -> None:
    tp, lat = result["throughput"], result["latency"]
    drain = result["config"]["latency_drain_s"]
    n = len(tp["runs"])
    print(f"{'pipeline':<38} {'value':>12}  target")
    print(f"{'seatflow changes/s (median of ' + str(n) + ')':<38} "
          f"{tp['median_changes_per_s']:>12,.0f}")
    print(f"{'raw aiokafka relay msg/s (same run)':<38} {tp['median_relay_per_s']:>12,.0f}")
    print(f"{'seatflow / relay':<38} {tp['median_ratio_to_relay']:>12.1%}  "
          f">= {tp['target_ratio']:.0%}: {'met' if tp['target_met'] else 'NOT met'}")
    print(f"{'worker CPU ms per change':<38} {tp['median_worker_cpu_ms_per_change']:>12.2f}")
    for rate, row in lat["by_rate"].items():
        target = (f"  <= {lat['target_p99_ms']:.0f}: {'met' if lat['target_met'] else 'NOT met'}"
                  if rate == "1000" else "")
        print(f"{'latency p50 / p99 ms @ ' + rate + ' creates/s':<38} "
              f"{_ms(row['median_p50_ms'], drain):>6} / {_ms(row['median_p99_ms'], drain)}{target}")
    prof = result.get("profile")
    if prof:
        print("profile, innermost seatflow frame (share of on-CPU samples):")
        for row in prof["innermost_own_frame"][:8]:
            print(f"  {row['share']:>6.1%}  {row['function']}")
    print(f"wrote {result['out']}/pipeline.json, pipeline_*.png and pipeline_profile.*")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 min)")
    parser.add_argument("--events", type=int, help="changes per throughput run")
    parser.add_argument("--runs", type=int, help="throughput runs")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.events:
        cfg = replace(cfg, events=args.events)
    if args.runs:
        cfg = replace(cfg, throughput_runs=args.runs)
    if args.no_profile:
        cfg = replace(cfg, profile=False)
    out = QUICK_RESULTS_DIR if args.quick else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run_benchmark(cfg, quick=args.quick, out=out))
    print_summary(result)
    return result


if __name__ == "__main__":
    main()
