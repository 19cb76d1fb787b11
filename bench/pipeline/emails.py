"""5. Emails keep up: 3,000 new bookings at once, every confirmation email through a real SMTP
server (the embedded sink, which writes each message to a file: a few milliseconds per
message), fenced exactly as in production (each email leased, sent, recorded on its own).

Per booking, the lag is the `booking.confirmed` record's timestamp to the moment the sink
stored its confirmation email (the sink's file name is that moment). Targets: at least
100 emails/s sustained by one worker, and the last confirmation email within 30 s of its
booking's confirmation.
"""

from __future__ import annotations

import asyncio
import email.policy
import os
import secrets
import time
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from bench.pipeline.config import BenchConfig, run_settings
from bench.pipeline.cpu import CpuMeter
from bench.pipeline.latency import StatusWatcher, _percentile
from bench.pipeline.profiler import start_profiler, stop_profiler
from bench.pipeline.workload import creates, produce
from config.topics import TopicNames
from models.restaurant import RestaurantConfig
from streams.admin import ensure_topics
from tests.support.stack import Stack, create_database_async
from tests.support.workers import WorkerProcess

EMAIL_BOOKINGS = 3_000
TARGET_EMAILS_PER_S = 100.0
TARGET_LAST_EMAIL_S = 30.0


@dataclass
class EmailRun:
    bookings: int
    confirmed: int
    emails: int  # confirmation emails stored by the sink for those bookings
    duplicates: int  # a second copy of one (must be 0: no crash here)
    first_to_last_s: float
    emails_per_s: float
    lag_p50_s: float | None
    lag_p99_s: float | None
    lag_max_s: float | None  # the last confirmation email after its booking.confirmed
    smtp_connections: int
    cpu_seconds: dict[str, float]


def _stored(mail_dir: os.PathLike[str], since_ns: int) -> list[tuple[int, str]]:
    """(stored at ns, file name) of every message the sink stored since `since_ns`."""
    out = []
    for entry in os.scandir(mail_dir):
        if entry.name.endswith(".eml") and not entry.name.startswith("."):
            stored_ns = int(entry.name.split("-")[0])
            if stored_ns >= since_ns:
                out.append((stored_ns, entry.name))
    return out


async def email_run(stack: Stack, template: str, restaurants: list[RestaurantConfig],
                    cfg: BenchConfig, n: int = EMAIL_BOOKINGS,
                    profile_to: Path | None = None) -> EmailRun:
    tag = f"em{secrets.token_hex(2)}"
    url = await create_database_async(stack, tag, template=template)
    settings = run_settings(stack, url, tag, cfg).model_copy(update={
        "suppress_emails": False,
        **({"smtp_connections": int(os.environ["BENCH_SMTP_CONNECTIONS"])}
           if os.environ.get("BENCH_SMTP_CONNECTIONS") else {}),
    })
    records = creates(n, restaurants, cfg, tag)
    keys = [k for k, _ in records]
    await ensure_topics(settings)
    watcher = StatusWatcher(stack.kafka_bootstrap, TopicNames(settings.topic_prefix).booking_status)
    await watcher.start()
    since_ns = time.time_ns()
    worker = WorkerProcess(settings, stack.root / f"{tag}.log").start(timeout=60.0)
    meter = CpuMeter(stack, worker.pid)
    spy = start_profiler(worker.pid, profile_to) if profile_to else None
    try:
        await produce(settings, records)
        await watcher.wait_for(keys, timeout=60)  # those that can be seated are by then
        confirmed = {k: watcher.confirmed[k][0] for k in keys if k in watcher.confirmed}
        # Wait until one email per confirmed booking is stored, or nothing moves for 20 s.
        last_count, still_since = -1, time.monotonic()
        while True:
            count = sum(1 for _ in _stored(stack.mail_sink.mail_dir, since_ns))
            if count != last_count:
                last_count, still_since = count, time.monotonic()
            if count >= len(confirmed) or time.monotonic() - still_since > 20:
                break
            worker.check_alive("the email run")
            await asyncio.sleep(0.5)
        cpu = meter.used()
    finally:
        if spy is not None:
            stop_profiler(spy)
        await watcher.stop()
        worker.stop()

    parser = BytesParser(policy=email.policy.default)
    arrivals: dict[bytes, list[int]] = {}
    for stored_ns, name in _stored(stack.mail_sink.mail_dir, since_ns):
        with open(stack.mail_sink.mail_dir / name, "rb") as fh:  # noqa: ASYNC230 - after the run
            msg = parser.parse(fh, headersonly=True)
        if msg["X-Seatflow-Kind"] == "confirmed":
            arrivals.setdefault(str(msg["X-Seatflow-Booking"]).encode(), []).append(stored_ns)
    firsts = {k: min(v) for k, v in arrivals.items() if k in confirmed}
    lags = [(firsts[k] / 1e6 - confirmed[k]) / 1000 for k in firsts]
    span = (max(firsts.values()) - min(firsts.values())) / 1e9 if len(firsts) > 1 else 0.0
    return EmailRun(
        bookings=n, confirmed=len(confirmed), emails=len(firsts),
        duplicates=sum(len(v) - 1 for v in arrivals.values()),
        first_to_last_s=round(span, 2),
        emails_per_s=round((len(firsts) - 1) / span, 1) if span else 0.0,
        lag_p50_s=_seconds(_percentile([x * 1000 for x in lags], 50)),
        lag_p99_s=_seconds(_percentile([x * 1000 for x in lags], 99)),
        lag_max_s=round(max(lags), 2) if lags else None,
        smtp_connections=settings.smtp_connections,
        cpu_seconds=cpu,
    )


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 2)


def targets(run: EmailRun) -> list[dict[str, Any]]:
    return [
        {"target": "emails/s sustained by one worker", "value": run.emails_per_s,
         "goal": f">= {TARGET_EMAILS_PER_S:.0f}", "met": run.emails_per_s >= TARGET_EMAILS_PER_S},
        {"target": f"last of {run.emails} confirmation emails after its booking.confirmed (s)",
         "value": run.lag_max_s, "goal": f"<= {TARGET_LAST_EMAIL_S:.0f}",
         "met": run.lag_max_s is not None and run.lag_max_s <= TARGET_LAST_EMAIL_S
         and run.emails == run.confirmed and run.duplicates == 0},
    ]
