"""The chaos run: several `seatflow worker`s, kill -9, a PostgreSQL restart, an SMTP outage.

    python -m tests.chaos [--quick] [--seed N] [--duration S] [--bookings N] [--keep]

1. Start the embedded stack (Tansu, pgserver, SMTP sink) in a fresh run folder under /tmp
   (short, for PostgreSQL's Unix socket), publish the restaurants, start 3 workers in one
   consumer group (same settings, distinct web ports, 8 partitions).
2. Produce the generated booking changes (creates, realigning edits, notes-only edits,
   cancellations) at a steady rate over `duration` seconds while, on a seeded timeline,
   a random worker is SIGKILLed and replaced every 15-25 s, PostgreSQL is stopped and
   started again on the same data directory once, and the SMTP sink is down for 15 s.
3. Wait for quiescence, snapshot PostgreSQL, the status and dead-letter topics, the sink and
   the group's committed offsets, stop everything, run `tests.chaos.checks`, and write
   tests/chaos/results/report-<timestamp>.json. Prints one verdict line.

Exit code: 0 PASS, 1 FAIL, 2 the run itself could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.policy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from mail.render import message_id_for
from models.events import BookingChange
from models.restaurant import RestaurantConfig
from producers.publisher import make_cancel, make_change
from seatflow.embedded import (
    EmbeddedBroker,
    EmbeddedPostgres,
    free_port,
    start_broker,
    start_mail_sink,
    start_postgres,
)
from seatflow.mailsink import MailSink
from seatflow.settings import Settings
from streams.admin import ensure_topics
from streams.topics import TopicNames
from tests.chaos import checks
from tests.integration.conftest import WorkerProcess, restaurant
from tests.kafkautil import read_topic

RESULTS_DIR = Path(__file__).with_name("results")
WORKERS = 3
PARTITIONS = 8
INLINE_WINDOW_MS = 300
RETRY_DELAYS_MS = [500, 1000]
SMTP_OUTAGE_S = 15.0
# `--without-faust-fixes`: loaded first in each worker (PYTHONPATH), it turns
# `streams.faust_fixes.apply()` into a no-op, so the workers run plain faust 0.15.3.
_DISABLE_FAUST_FIXES = (
    "import sys\n"
    "import streams.faust_fixes as _fixes\n"
    "_fixes.apply = lambda: None  # chaos --without-faust-fixes\n"
    "print('chaos: streams.faust_fixes disabled in this worker', file=sys.stderr)\n"
)
PG_DOWN_S = 3.0


@dataclass(frozen=True)
class Size:
    bookings: int
    duration_s: float  # how long changes are produced (the chaos runs meanwhile)
    quiesce_timeout_s: float  # > the email lease (60 s) a kill can leave behind
    roomy_restaurants: int
    tight_restaurants: int


DEFAULT_SIZE = Size(bookings=1000, duration_s=420, quiesce_timeout_s=200,
                    roomy_restaurants=45, tight_restaurants=12)
QUICK_SIZE = Size(bookings=220, duration_s=100, quiesce_timeout_s=120,
                  roomy_restaurants=15, tight_restaurants=5)


# --- the workload (pure, seeded) ----------------------------------------------------------------


@dataclass
class Workload:
    restaurants: list[RestaurantConfig]
    changes: list[BookingChange]  # in production order
    always_seatable: set[str]  # restaurants whose bookings can never miss a table


def _times(first: str, last: str, step_min: int) -> list[str]:
    start, end = datetime.strptime(first, "%H:%M"), datetime.strptime(last, "%H:%M")
    out = []
    while start <= end:
        out.append(start.strftime("%H:%M"))
        start += timedelta(minutes=step_min)
    return out


def plan_workload(seed: int, size: Size, today: date) -> Workload:
    """Restaurants and booking changes, reproducible from the seed.

    Roomy restaurants have 6 adjacent two-tops and give each booking three dates of its own
    (its "lane"): any party of 1-6 always fits, so those bookings must end confirmed. Tight
    restaurants have 4 two-tops and put every booking on two dates at 18:00-19:30: they
    compete, some run out of retries, cancellations release capacity.
    Per booking: a create, 0-4 edits (half realign date/time/party, half change notes only),
    and a cancellation last for about a quarter of them. Never an event after a cancel.
    """
    rng = random.Random(seed)
    roomy = [restaurant(f"chaos-roomy-{i:02d}", tables=6, contact_email=f"host-roomy-{i:02d}@resto.example")
             for i in range(size.roomy_restaurants)]
    tight = [restaurant(f"chaos-tight-{i:02d}", tables=4, contact_email=f"host-tight-{i:02d}@resto.example")
             for i in range(size.tight_restaurants)]
    lanes_used: dict[str, int] = {}
    roomy_starts, tight_starts = _times("17:00", "21:00", 15), _times("18:00", "19:30", 30)
    tight_dates = [today + timedelta(days=14 + k) for k in range(2)]

    def event_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    timed: list[tuple[float, int, BookingChange]] = []
    for n in range(size.bookings):
        bid = f"chaos-b{n:05d}"
        if rng.random() < 0.75 or not tight:
            cfg = roomy[n % len(roomy)]
            lane = lanes_used.get(cfg.restaurant_id, 0)
            lanes_used[cfg.restaurant_id] = lane + 1
            dates = [today + timedelta(days=21 + 3 * lane + k) for k in range(3)]
            starts, parties = roomy_starts, list(range(1, 7))
        else:
            cfg = rng.choice(tight)
            dates, starts, parties = tight_dates, tight_starts, list(range(1, 5))
        state = {
            "booking_date": rng.choice(dates).isoformat(),
            "start_time": rng.choice(starts),
            "party_size": rng.choice(parties),
            "customer_name": f"Guest {n}",
            "customer_email": f"guest-{n:05d}@chaos.example",
            "notes": None,
        }
        seq = [make_change("booking.created", bid, cfg.restaurant_id, event_id=event_id(), **state)]
        for k in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
            if rng.random() < 0.5:
                field_name, choices = rng.choice(
                    [("booking_date", [d.isoformat() for d in dates]), ("start_time", starts),
                     ("party_size", parties)]
                )
                state[field_name] = rng.choice([c for c in choices if c != state[field_name]])
            else:
                state["notes"] = f"edit {k}: {rng.choice(['window', 'birthday', 'quiet', 'high chair'])}"
            seq.append(make_change("booking.updated", bid, cfg.restaurant_id,
                                   event_id=event_id(), **state))
        if rng.random() < 0.25:
            seq.append(make_cancel(bid, cfg.restaurant_id, event_id=event_id()))
        # Spread each booking's changes over the run; sorting by time keeps their order.
        at = rng.uniform(0.0, 0.85)
        for change in seq:
            timed.append((at, len(timed), change))
            at = min(1.0, at + rng.uniform(0.01, 0.12))
    timed.sort(key=lambda t: (t[0], t[1]))
    return Workload(
        restaurants=roomy + tight,
        changes=[c for _, _, c in timed],
        always_seatable={c.restaurant_id for c in roomy},
    )


def input_change(change: BookingChange, partition: int, offset: int, sent_at_s: float) -> checks.InputChange:
    b = change.booking
    return checks.InputChange(
        event_id=change.event_id,
        type=change.type,
        booking_id=b.booking_id,
        restaurant_id=b.restaurant_id,
        booking_date=b.booking_date.isoformat() if b.booking_date else None,
        start_time=b.start_time.strftime("%H:%M") if b.start_time else None,
        party_size=b.party_size,
        notes=b.notes,
        partition=partition,
        offset=offset,
        sent_at_s=sent_at_s,
    )


def chaos_timeline(seed: int, duration_s: float) -> list[tuple[float, str]]:
    """(seconds after production starts, action): kills every 15-25 s, one PG restart."""
    rng = random.Random(seed ^ 0x5EA7)
    timeline: list[tuple[float, str]] = []
    t = rng.uniform(8, 15)
    while t < duration_s - 5:
        timeline.append((t, "kill"))
        t += rng.uniform(15, 25)
    timeline.append((duration_s * 0.45, "restart_postgres"))
    timeline.append((duration_s * 0.65, "smtp_outage"))
    return sorted(timeline)


# --- the code under test ----------------------------------------------------------------------

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agents", "domain", "mail", "models", "producers", "seatflow", "services",
            "storage", "streams")


def snapshot_code(into: Path) -> Path:
    """Copy the service's packages; workers import them first (PYTHONPATH precedes the
    editable install's finder), so a file edited mid-run cannot mix two versions."""
    for package in PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, into / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return into


def code_version() -> dict[str, Any]:
    """git HEAD and the uncommitted files among the service's packages at the start."""
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=PROJECT_ROOT, capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = git("status", "--porcelain", "--", *PACKAGES).splitlines()
    return {"head": git("rev-parse", "HEAD"), "uncommitted": dirty}


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Journal:
    """What the chaos did, with times in seconds after production started."""

    kills: list[dict[str, Any]] = field(default_factory=list)
    starts: list[dict[str, Any]] = field(default_factory=list)
    postgres: list[dict[str, Any]] = field(default_factory=list)
    smtp: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Workers that exited without our kill (a crash, or a signal from outside the run).
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)


class Run:
    def __init__(self, args: argparse.Namespace, size: Size, folder: Path) -> None:
        self.args = args
        self.size = size
        self.folder = folder
        self.seed: int = args.seed
        self.rng = random.Random(self.seed ^ 0xC4A05)
        self.journal = Journal()
        self.t0 = time.monotonic()
        self.broker: EmbeddedBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.sink: MailSink | None = None
        self.db_url = ""
        self.settings: Settings | None = None
        self.workers: list[WorkerProcess] = []  # every worker ever started
        self.serial = 0
        self.killed: set[int] = set()  # pids we SIGKILLed
        self.fleet_lock = asyncio.Lock()  # one kill/replace or watchdog round at a time

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    # --- stack and workers ---------------------------------------------------------------

    async def start_stack(self) -> None:
        self.broker = start_broker(free_port(), log_path=self.folder / "broker.log")
        self.postgres = start_postgres(self.folder / "pgdata")
        self.sink = start_mail_sink("127.0.0.1", free_port(), self.folder / "mail")
        conn = await asyncpg.connect(self.postgres.url)
        try:
            await conn.execute('CREATE DATABASE "chaos"')
        finally:
            await conn.close()
        self.db_url = urlunsplit(urlsplit(self.postgres.url)._replace(path="/chaos"))
        self.settings = Settings().model_copy(
            update={
                "kafka_bootstrap": self.broker.bootstrap,
                "database_url": self.db_url,
                "smtp_host": self.sink.host,
                "smtp_port": self.sink.port,
                "smtp_tls": "none",
                "smtp_username": None,
                "smtp_password": None,
                "topic_prefix": "chaos.",
                "app_id_override": None,
                "topic_partitions": PARTITIONS,
                "web_host": "127.0.0.1",
                "inline_confirm_window_ms": INLINE_WINDOW_MS,
                "auto_assign_retry_delays_ms": list(RETRY_DELAYS_MS),
                "suppress_emails": False,
                "feature_auto_assign_on_booking": True,
            }
        )
        await ensure_topics(self.settings)
        # Workers run a frozen copy of the code (others edit the tree while a run lasts).
        paths = [str(snapshot_code(self.folder / "code"))]
        if self.args.without_faust_fixes:
            shim = self.folder / "no-faust-fixes"
            shim.mkdir()
            (shim / "sitecustomize.py").write_text(_DISABLE_FAUST_FIXES)
            paths.insert(0, str(shim))
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])

    def new_worker(self) -> WorkerProcess:
        assert self.settings is not None
        self.serial += 1
        name = f"w{self.serial:02d}"
        # Same settings; only the web port and the (Faust data) home differ.
        settings = self.settings.model_copy(
            update={"web_port": free_port(), "home": self.folder / "home" / name}
        )
        worker = WorkerProcess(settings, self.folder / "workers" / f"{name}.log")
        self.workers.append(worker)
        return worker

    async def start_worker(self) -> WorkerProcess:
        worker = self.new_worker()
        started = time.monotonic()
        for attempt in range(3):
            try:
                await asyncio.to_thread(worker.start, timeout=60.0)
                break
            except RuntimeError as exc:
                self.journal.errors.append(f"{worker.log_path.stem} start attempt {attempt}: {exc}"[:2000])
                worker.kill()
                if attempt == 2:
                    raise
        self.journal.starts.append({"worker": worker.log_path.stem, "at_s": self.now(),
                                    "took_s": round(time.monotonic() - started, 1),
                                    "pid": worker.process.pid if worker.process else None})
        return worker

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process is not None and w.process.poll() is None]

    # --- chaos actions ---------------------------------------------------------------------

    async def keep_fleet(self) -> None:
        """Replace workers that died on their own; they are journalled, not hidden."""
        for worker in self.workers:
            proc = worker.process
            if proc is None or proc.poll() is None or proc.pid in self.killed:
                continue
            self.killed.add(proc.pid)  # journal each exit once
            log = worker.log_path.read_text(errors="replace") if worker.log_path.exists() else ""
            self.journal.unexpected_exits.append(
                {"worker": worker.log_path.stem, "pid": proc.pid, "returncode": proc.returncode,
                 "at_s": self.now(), "signal_logged": "Signal received" in log,
                 "log_tail": worker.log_tail(8)[-1500:]})
        while len(self.alive()) < WORKERS:
            await self.start_worker()

    async def watchdog(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                async with self.fleet_lock:
                    await self.keep_fleet()
            except Exception as exc:  # noqa: BLE001 - recorded; try again next round
                self.journal.errors.append(f"{self.now()}s watchdog: {exc!r}"[:2000])

    async def kill_one(self) -> None:
        async with self.fleet_lock:
            await self._kill_one()

    async def _kill_one(self) -> None:
        alive = self.alive()
        if not alive:
            self.journal.errors.append(f"{self.now()}s: no worker alive to kill")
        else:
            victim = self.rng.choice(alive)
            pid = victim.process.pid if victim.process else None
            if victim.process is not None:
                self.killed.add(victim.process.pid)
            victim.kill()
            self.journal.kills.append({"worker": victim.log_path.stem, "pid": pid,
                                       "at_s": self.now()})
        await self.keep_fleet()

    async def restart_postgres(self) -> None:
        assert self.postgres is not None
        before = self.postgres.url
        stopped_at = self.now()
        await asyncio.to_thread(self.postgres.stop)
        await asyncio.sleep(PG_DOWN_S)
        self.postgres = await asyncio.to_thread(start_postgres, self.folder / "pgdata")
        entry = {"stopped_at_s": stopped_at, "started_at_s": self.now(),
                 "url_unchanged": self.postgres.url == before}
        self.journal.postgres.append(entry)
        if not entry["url_unchanged"]:
            self.journal.errors.append(f"PostgreSQL URL changed: {before} -> {self.postgres.url}")

    async def smtp_outage(self) -> None:
        assert self.sink is not None
        stopped_at = self.now()
        await asyncio.to_thread(self.sink.stop)
        await asyncio.sleep(SMTP_OUTAGE_S)
        await asyncio.to_thread(self.sink.start)
        self.journal.smtp.append({"stopped_at_s": stopped_at, "started_at_s": self.now()})

    async def chaos(self, timeline: list[tuple[float, str]]) -> None:
        outages: list[asyncio.Task[None]] = []
        for at, action in timeline:
            await asyncio.sleep(max(0.0, at - self.now()))
            try:
                if action == "kill":
                    await self.kill_one()
                elif action == "restart_postgres":
                    await self.restart_postgres()
                elif action == "smtp_outage":  # overlaps the kills
                    outages.append(asyncio.create_task(self.smtp_outage()))
            except Exception as exc:  # noqa: BLE001 - recorded; the run goes on
                self.journal.errors.append(f"{self.now()}s {action}: {exc!r}"[:2000])
        await asyncio.gather(*outages)

    # --- input -------------------------------------------------------------------------------

    async def publish_restaurants(self, restaurants: list[RestaurantConfig]) -> None:
        assert self.settings is not None
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                    enable_idempotence=False)
        await producer.start()
        try:
            topic = TopicNames(self.settings.topic_prefix).restaurants
            for cfg in restaurants:
                await producer.send(topic, cfg.model_dump_json().encode(),
                                    key=cfg.restaurant_id.encode())
            await producer.flush()
        finally:
            await producer.stop()

    async def produce(self, changes: list[BookingChange]) -> list[checks.InputChange]:
        """Send the changes at a steady rate over the run; where each landed, and when."""
        assert self.settings is not None
        topic = TopicNames(self.settings.topic_prefix).booking_changes
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                    enable_idempotence=False, linger_ms=20)
        await producer.start()
        rate = len(changes) / self.size.duration_s
        sent: list[tuple[BookingChange, asyncio.Future[Any], float]] = []
        try:
            for i, change in enumerate(changes):
                await asyncio.sleep(max(0.0, i / rate - self.now()))
                fut = await producer.send(
                    topic, change.model_dump_json().encode(),
                    key=change.booking.booking_id.encode(),
                )
                sent.append((change, fut, self.now()))
            await producer.flush()
            out = []
            for change, fut, at in sent:
                meta = await fut
                out.append(input_change(change, meta.partition, meta.offset, at))
            return out
        finally:
            await producer.stop()

    # --- observation ---------------------------------------------------------------------

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.db_url)

    async def wait_restaurants(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                conn = await self.db()
                try:
                    if await conn.fetchval("SELECT count(*) FROM restaurants") >= count:
                        return
                finally:
                    await conn.close()
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the workers did not store {count} restaurants in {timeout:.0f} s")

    async def progress(self) -> dict[str, int]:
        conn = await self.db()
        try:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM processed_events) AS processed,"
                " (SELECT count(*) FROM outbox) AS outbox,"
                " (SELECT count(*) FROM notifications WHERE status IN ('held', 'due', 'sending'))"
                "   AS mail_active,"
                " (SELECT count(*) FROM notifications WHERE status = 'sent') AS mail_sent,"
                " (SELECT count(*) FROM bookings WHERE status = 'pending'"
                "   AND alloc_state IN ('queued', 'retry')) AS alloc_active,"
                " (SELECT count(*) FROM parked_changes) AS parked"
            )
        finally:
            await conn.close()
        return dict(row)

    async def wait_quiescent(self, produced: int) -> dict[str, Any]:
        """Until all work is done, or nothing moved for 30 s, or the timeout."""
        started = time.monotonic()
        last: dict[str, int] | None = None
        still_since = time.monotonic()
        while True:
            try:
                now = await self.progress()
            except (asyncpg.PostgresError, OSError) as exc:
                self.journal.errors.append(f"{self.now()}s quiescence poll: {exc!r}")
                await asyncio.sleep(2)
                continue
            idle = not (now["outbox"] or now["mail_active"] or now["alloc_active"] or now["parked"])
            if idle and now["processed"] >= produced:
                # Let the last sends and commits settle, then confirm nothing moved.
                await asyncio.sleep(3)
                if await self.progress() == now:
                    return {"reason": "all_done", "waited_s": round(time.monotonic() - started, 1), **now}
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since > 30 and idle:
                return {"reason": "no_progress_30s", "waited_s": round(time.monotonic() - started, 1), **now}
            if time.monotonic() - started > self.size.quiesce_timeout_s:
                return {"reason": "timeout", "waited_s": round(time.monotonic() - started, 1), **now}
            await asyncio.sleep(2)

    async def committed_offsets(self, topic: str) -> dict[int, int]:
        assert self.settings is not None
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                    group_id=self.settings.app_id, enable_auto_commit=False)
        await consumer.start()
        try:
            out = {}
            for p in range(PARTITIONS):
                committed = await consumer.committed(TopicPartition(topic, p))
                out[p] = committed if committed is not None else -1
            return out
        finally:
            await consumer.stop()

    async def snapshot(self) -> dict[str, Any]:
        assert self.settings is not None and self.sink is not None
        topics = TopicNames(self.settings.topic_prefix)
        conn = await self.db()
        try:
            processed = [r["event_id"] for r in await conn.fetch("SELECT event_id FROM processed_events")]
            tables = await conn.fetch(
                "SELECT bt.booking_id, bt.restaurant_id, rt.table_id, lower(bt.during) AS s,"
                " upper(bt.during) AS e FROM booking_tables bt JOIN restaurant_tables rt"
                " USING (table_key)"
            )
            rows = await conn.fetch(
                "SELECT booking_id, restaurant_id, status, pending_ref, booking_date, start_time,"
                " party_size, notes, alloc_state, episode_kind FROM bookings"
            )
            notes = await conn.fetch(
                "SELECT booking_id, kind, pending_ref, status FROM notifications"
            )
            progress = await self.progress()
        finally:
            await conn.close()
        held: dict[str, list[str]] = {}
        for t in tables:
            held.setdefault(t["booking_id"], []).append(t["table_id"])
        bookings = {
            r["booking_id"]: checks.DbBooking(
                booking_id=r["booking_id"], restaurant_id=r["restaurant_id"], status=r["status"],
                pending_ref=r["pending_ref"], booking_date=r["booking_date"].isoformat(),
                start_time=r["start_time"].strftime("%H:%M"), party_size=r["party_size"],
                notes=r["notes"], alloc_state=r["alloc_state"], episode_kind=r["episode_kind"],
                table_ids=tuple(sorted(held.get(r["booking_id"], []))),
            )
            for r in rows
        }
        status_records = await read_topic(self.settings.kafka_bootstrap, topics.booking_status,
                                          timeout=90)
        status_events = []
        for rec in status_records:
            v = json.loads(rec.value)
            status_events.append(checks.StatusEvent(
                event_id=v["event_id"], type=v["type"], booking_id=v["booking_id"],
                pending_ref=v.get("pending_ref"), caused_by=v.get("caused_by"),
                table_ids=tuple(v["table_ids"]) if v.get("table_ids") is not None else None,
                partition=rec.partition, offset=rec.offset,
            ))
        dead = await read_topic(self.settings.kafka_bootstrap, topics.dead_letters, timeout=20)
        parser = BytesParser(policy=email.policy.default)
        sink = []
        for path in self.sink.message_files():
            with path.open("rb") as fh:
                msg = parser.parse(fh, headersonly=True)
            sink.append(checks.SinkMail(message_id=str(msg["Message-ID"]).strip(),
                                        kind=str(msg["X-Seatflow-Kind"]),
                                        booking_id=str(msg["X-Seatflow-Booking"]), file=path.name))
        return {
            "processed": processed,
            "bookings": bookings,
            "assignments": [checks.Assignment(t["booking_id"], t["restaurant_id"], t["table_id"],
                                              t["s"], t["e"]) for t in tables],
            "notifications": [
                checks.NotificationRow(n["booking_id"], n["kind"], n["pending_ref"], n["status"],
                                       message_id_for(n["booking_id"], n["kind"], n["pending_ref"]))
                for n in notes
            ],
            "status_events": status_events,
            "sink": sink,
            "leftovers": checks.Leftovers(
                outbox_rows=progress["outbox"], notifications_active=progress["mail_active"],
                allocations_active=progress["alloc_active"], parked_changes=progress["parked"],
                dead_letters=len(dead),
            ),
            "dead_letters": [
                {"key": (r.key or b"").decode(errors="replace"),
                 "headers": {k: v.decode(errors="replace") for k, v in r.headers}}
                for r in dead[:20]
            ],
            "committed": {
                "booking_changes": await self.committed_offsets(topics.booking_changes),
                "allocation_requests": await self.committed_offsets(topics.allocation_requests),
            },
        }

    # --- teardown ----------------------------------------------------------------------------

    def stop_all(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop(timeout=20)
        for component in (self.sink, self.postgres, self.broker):
            if component is not None:
                with contextlib.suppress(Exception):
                    component.stop()


def near_kills(at_s: float, kills: list[dict[str, Any]]) -> dict[str, float | None]:
    """Seconds from the closest kill before and after a moment (to read a loss against)."""
    before = [at_s - k["at_s"] for k in kills if k["at_s"] <= at_s]
    after = [k["at_s"] - at_s for k in kills if k["at_s"] > at_s]
    return {"since_kill_s": round(min(before), 1) if before else None,
            "until_kill_s": round(min(after), 1) if after else None}


def evaluate(
    inputs: list[checks.InputChange], always_seatable: set[str], snap: dict[str, Any],
    journal: Journal,
) -> list[checks.CheckResult]:
    expected = checks.expected_states(inputs, always_seatable)
    lost = checks.check_none_lost(inputs, snap["processed"], snap["committed"]["booking_changes"])
    for entry in lost.details["lost_events"]:
        entry.update(near_kills(entry["sent_at_s"], journal.kills))
    allowed = len(journal.kills) + WORKERS * len(journal.smtp)
    return [
        lost,
        checks.check_final_states(expected, snap["bookings"], snap["status_events"]),
        checks.check_emails(snap["sink"], snap["notifications"], expected, snap["bookings"],
                            allowed_repeats=allowed),
        checks.check_tables(snap["assignments"], snap["bookings"]),
        checks.check_applied_once(expected, snap["status_events"]),
        checks.check_drained(snap["leftovers"]),
        checks.check_workers(journal.unexpected_exits),
    ]


async def run(args: argparse.Namespace) -> int:
    size = QUICK_SIZE if args.quick else DEFAULT_SIZE
    if args.bookings:
        size = Size(**{**asdict(size), "bookings": args.bookings})
    if args.duration:
        size = Size(**{**asdict(size), "duration_s": args.duration})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(tempfile.mkdtemp(prefix=f"seatflow-chaos-{stamp}-"))
    print(f"chaos: seed={args.seed} bookings={size.bookings} duration={size.duration_s:.0f}s "
          f"run folder {folder}", flush=True)
    workload = plan_workload(args.seed, size, datetime.now(UTC).date())
    timeline = chaos_timeline(args.seed, size.duration_s)
    chaos_run = Run(args, size, folder)
    report: dict[str, Any] = {
        "seed": args.seed, "quick": args.quick, "size": asdict(size), "run_folder": str(folder),
        "started_at": stamp, "workers": WORKERS, "partitions": PARTITIONS,
        "inline_confirm_window_ms": INLINE_WINDOW_MS, "retry_delays_ms": RETRY_DELAYS_MS,
        "changes": len(workload.changes), "restaurants": len(workload.restaurants),
        "faust_fixes": not args.without_faust_fixes, "code": code_version(),
    }
    wall = time.monotonic()
    code = 2
    watchdog: asyncio.Task[None] | None = None
    try:
        await chaos_run.start_stack()
        await chaos_run.publish_restaurants(workload.restaurants)
        await asyncio.gather(*(chaos_run.start_worker() for _ in range(WORKERS)))
        await chaos_run.wait_restaurants(len(workload.restaurants))
        chaos_run.t0 = time.monotonic()
        producer = asyncio.create_task(chaos_run.produce(workload.changes))
        watchdog = asyncio.create_task(chaos_run.watchdog())
        await chaos_run.chaos(timeline)
        inputs = await producer
        print(f"chaos: produced {len(inputs)} changes, {len(chaos_run.journal.kills)} kills; "
              "waiting for quiescence", flush=True)
        report["quiescence"] = await chaos_run.wait_quiescent(len(inputs))
        watchdog.cancel()
        snap = await chaos_run.snapshot()
        chaos_run.stop_all()
        results = evaluate(inputs, workload.always_seatable, snap, chaos_run.journal)
        report["dead_letters"] = snap["dead_letters"]
        report["committed_offsets"] = snap["committed"]
        report["checks"] = [r.to_json() for r in results]
        lost, _, mails, tables, _, drained, _ = results
        summary = {
            "changes": len(inputs), "bookings": len(snap["bookings"]),
            "kills": len(chaos_run.journal.kills), "lost": lost.counts["lost"],
            "lost_by_partition": json.dumps(lost.details["lost_by_partition"], separators=(",", ":")),
            "wrong_final": len(results[1].problems), "dup_emails": mails.counts.get("duplicate", 0),
            "crash_window_repeats": mails.counts["crash_window_repeats"],
            "emails": mails.counts["delivered"], "overlaps": tables.counts["overlaps"],
            "applied_twice_problems": len(results[4].problems),
            "outbox_left": drained.counts["outbox_rows"],
            "unexpected_worker_exits": len(chaos_run.journal.unexpected_exits),
        }
        report["summary"] = summary
        report["verdict"] = "PASS" if all(r.ok for r in results) else "FAIL"
        report["verdict_line"] = checks.verdict_line(results, summary)
        if args.without_faust_fixes:
            report["verdict_line"] += " (WITHOUT faust_fixes)"
        code = 0 if report["verdict"] == "PASS" else 1
    except Exception as exc:  # noqa: BLE001 - the report says what broke
        report["verdict"] = "ERROR"
        report["error"] = traceback.format_exc()
        report["verdict_line"] = f"chaos: ERROR (the run could not be carried out: {exc!r})"
    finally:
        if watchdog is not None:
            watchdog.cancel()
        chaos_run.stop_all()
        report.setdefault("verdict", "INTERRUPTED")
        report.setdefault("verdict_line", "chaos: INTERRUPTED (no verdict)")
        report["journal"] = asdict(chaos_run.journal)
        report["wall_s"] = round(time.monotonic() - wall, 1)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"report-{stamp}.json"
        text = json.dumps(report, indent=2, default=str)
        out.write_text(text)
        (folder / "report.json").write_text(text)
        if code == 0 and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(report["verdict_line"], flush=True)
    print(f"chaos: report {out}" + ("" if code == 0 and not args.keep else f"; logs in {folder}"),
          flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run, about 3 minutes")
    parser.add_argument("--seed", type=int, default=None, help="workload and chaos seed")
    parser.add_argument("--bookings", type=int, default=None, help="override the booking count")
    parser.add_argument("--duration", type=float, default=None,
                        help="override how long changes are produced (seconds)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder after a PASS")
    parser.add_argument("--without-faust-fixes", action="store_true",
                        help="diagnostic: run the workers without streams.faust_fixes (plain "
                        "faust), to see that the suite catches its rebalance loss")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2**31)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
