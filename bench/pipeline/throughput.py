"""1. Throughput and 2. its baseline.

A throughput run produces the change mix first, then starts a worker and polls PostgreSQL
until every change is fully processed (all event ids claimed, nobody waiting for the
allocator, the outbox empty); afterwards each booking's last status event is compared with
PostgreSQL. The baselines it is compared with: bench/pipeline/baselines.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.pipeline.config import BenchConfig, run_settings
from bench.pipeline.cpu import CpuMeter
from bench.pipeline.profiler import start_profiler, stop_profiler
from bench.pipeline.workload import generate_mix, produce
from config.settings import Settings
from config.topics import TopicNames
from models.restaurant import RestaurantConfig
from tests.support.kafka import read_topic
from tests.support.stack import Stack, create_database_async
from tests.support.workers import WorkerProcess

POLL_S = 0.1


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
    # Records the worker consumed: the changes and the allocation requests it published.
    consumed_records: int
    cpu_seconds: dict[str, float]  # worker, PostgreSQL, broker: from worker start to done
    cpu_ms_per_change: dict[str, float]
    load_average: float  # 1-min load average when the worker started (2 cores)
    profiled: bool = False


async def _progress(conn: asyncpg.Connection) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM processed_events) AS processed,"
        " (SELECT count(*) FROM bookings WHERE status = 'pending' AND alloc_state = 'queued')"
        " AS queued, (SELECT count(*) FROM outbox) AS outbox"
    )
    return row["processed"], row["queued"], row["outbox"]


async def wait_processed(
    database_url: str, n: int, worker: WorkerProcess, timeout: float  # noqa: ASYNC109
) -> tuple[float, bool]:
    """Poll until all n changes are processed and published; returns (done wall time, timed out)."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            processed, queued, outbox = await _progress(conn)
            if processed >= n and queued == 0 and outbox == 0:
                return time.time(), False
            worker.check_alive("the run")
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
    allocation_requests: int


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
    records = await read_topic(stack.kafka_bootstrap,
                              TopicNames(settings.topic_prefix).booking_status, timeout=60)
    requests = await read_topic(stack.kafka_bootstrap,
                                TopicNames(settings.topic_prefix).allocation_requests, timeout=60)
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
        allocation_requests=len(requests),
    )


async def throughput_run(
    stack: Stack, template: str, restaurants: list[RestaurantConfig], cfg: BenchConfig,
    run: int, events: int, profile_to: Path | None = None,
) -> ThroughputRun:
    tag = f"tp{run}{secrets.token_hex(2)}"
    url = await create_database_async(stack, tag, template=template)
    settings = run_settings(stack, url, tag, cfg)
    records, kinds = generate_mix(events, restaurants, cfg, seed=cfg.seed + run, tag=tag)
    produced = await produce(settings, records)
    load_average = os.getloadavg()[0]
    worker = WorkerProcess(settings, stack.root / f"{tag}.log").start(timeout=60.0)
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
        consumed_records=events + final.allocation_requests,
        cpu_seconds=cpu, cpu_ms_per_change={k: round(v * 1000 / events, 3) for k, v in cpu.items()},
        load_average=round(load_average, 2), profiled=profile_to is not None,
    )
    return result
