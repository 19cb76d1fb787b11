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
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from config.settings import Settings
from config.topics import TopicNames
from devstack import free_port, start_postgres
from mail.render import message_id_for
from streams.admin import ensure_topics
from tests.chaos import checks
from tests.support.kafka import read_topic
from tests.support.stack import Stack, create_database_async, stack_settings
from tests.support.stack import start_stack as start_embedded_stack
from tests.support.workers import WorkerProcess

RESULTS_DIR = Path(__file__).with_name("results")
WORKERS = 3
PARTITIONS = 8
INLINE_WINDOW_MS = 300
RETRY_DELAYS_MS = [500, 1000]
SMTP_OUTAGE_S = 15.0
# A stretch of the run where the SMTP sink answers each message after 0.3-0.5 s. It starts
# at 15 % of the run and lasts 35 % of it, overlapping kills and the PostgreSQL restart,
# and longer than the email lease the workers get (EMAIL_LEASE_S).
SLOW_MAIL_DELAY_S = (0.3, 0.5)
SLOW_MAIL_AT, SLOW_MAIL_SHARE = 0.15, 0.35
EMAIL_LEASE_S = 10.0  # SEATFLOW_EMAIL_LEASE_S
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
    quiesce_timeout_s: float  # > the email lease (60 s by default) a kill can leave behind
    roomy_restaurants: int
    tight_restaurants: int
    late_restaurants: int = 1  # pairs: one with overrun past 02:00, one clamped at 00:30


DEFAULT_SIZE = Size(bookings=1000, duration_s=420, quiesce_timeout_s=200,
                    roomy_restaurants=45, tight_restaurants=12, late_restaurants=2)
QUICK_SIZE = Size(bookings=220, duration_s=100, quiesce_timeout_s=120,
                  roomy_restaurants=15, tight_restaurants=5, late_restaurants=1)


# --- the workload (pure, seeded) ----------------------------------------------------------------


@dataclass
class Workload:
    # Restaurants and changes are plain dicts, published as JSON: the inputs the contract
    # allows (rev 2: past-midnight services and bookings) whatever today's models accept.
    restaurants: list[dict[str, Any]]
    changes: list[dict[str, Any]]  # change events (docs/interface.md §3), in production order
    always_seatable: set[str]  # restaurants whose bookings can never miss a table
    late_restaurants: set[str] = field(default_factory=set)  # a service runs past midnight
    stats: dict[str, int] = field(default_factory=dict)


def _times(first: str, last: str, step_min: int) -> list[str]:
    start, end = datetime.strptime(first, "%H:%M"), datetime.strptime(last, "%H:%M")
    out = []
    while start <= end:
        out.append(start.strftime("%H:%M"))
        start += timedelta(minutes=step_min)
    return out


def _plus(hhmm: str, minutes: int) -> str:
    """HH:MM + minutes, on a 24 h clock (23:00 + 150 = 01:30)."""
    return (datetime.strptime(hhmm, "%H:%M") + timedelta(minutes=minutes)).strftime("%H:%M")


def _table(tid: str, capacity: int = 2, **more: Any) -> dict[str, Any]:
    return {"table_id": tid, "number": tid[1:], "zone": "main", "capacity": capacity,
            "min_party": 1, "max_party": capacity, "active": True, **more}


def restaurant_config(restaurant_id: str, *, tables: int, contact_email: str | None,
                      services: list[dict[str, Any]] | None = None,
                      extra_tables: list[dict[str, Any]] | None = None,
                      extra_adjacency: list[list[str]] | None = None) -> dict[str, Any]:
    """`tables` adjacent two-tops t1..tN (zone main), dinner 17:00-23:00 unless `services`."""
    return {
        "restaurant_id": restaurant_id,
        "name": f"Resto {restaurant_id}",
        "slug": restaurant_id,
        "timezone": "Europe/London",
        "contact_email": contact_email,
        "contact_phone": None,
        "tables": [_table(f"t{i}") for i in range(1, tables + 1)] + (extra_tables or []),
        "adjacency": [[f"t{i}", f"t{i + 1}"] for i in range(1, tables)] + (extra_adjacency or []),
        "services": services or [
            {"name": "dinner", "start": "17:00", "end": "23:00", "allow_overrun": True}],
    }


def change_event(type_: str, event_id: str, booking: dict[str, Any], *, source: str = "guest",
                 channel: str | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
    return {"schema_version": 1, "event_id": event_id, "type": type_,
            "occurred_at": datetime.now(UTC).isoformat(), "source": source, "channel": channel,
            "idempotency_key": idempotency_key, "booking": booking}


def plan_workload(seed: int, size: Size, today: date) -> Workload:
    """Restaurants and booking changes, reproducible from the seed.

    Roomy restaurants have 6 adjacent two-tops (every third also a terrace four-top with
    min_party 3 and an inactive eight-top; every fourth no contact_email) and give each
    booking three dates of its own (its "lane"): any party of 1-6 always fits, so those
    bookings must end confirmed. Tight restaurants have 4 two-tops and put every booking on
    two dates at 18:00-19:30: they compete, some run out of retries, cancellations release
    capacity. Late restaurants have 4 two-tops and a service past midnight ("late" 18:00-02:00
    with overrun, or "late" 20:00-00:30 without, which clamps across midnight); their
    bookings start 22:30-01:00 on two consecutive dates, with an explicit end (often earlier
    than the start: the next day) or none (the turn may cross midnight), and compete.
    Walk-ins (source ops, channel ops.walkin) take lanes at roomy restaurants (half of them
    at ones without contact_email), with or without an idempotency_key, email and phone; some are submitted twice (another booking_id, same
    key and restaurant, 25-35 % of the run later): the repeat must create nothing.
    Per booking: a create, 0-4 edits (half realign date/time/end/party, half change notes
    only), and a cancellation last for about a quarter of them. Never an event after a cancel.
    """
    rng = random.Random(seed)
    roomy = [
        restaurant_config(
            f"chaos-roomy-{i:02d}", tables=6,
            contact_email=None if i % 4 == 3 else f"host-roomy-{i:02d}@resto.example",
            extra_tables=[_table("t7", 4, zone="terrace", min_party=3),
                          _table("t8", 8, active=False)] if i % 3 == 1 else None,
            extra_adjacency=[["t6", "t8"]] if i % 3 == 1 else None,
        )
        for i in range(size.roomy_restaurants)
    ]
    tight = [restaurant_config(f"chaos-tight-{i:02d}", tables=4,
                               contact_email=f"host-tight-{i:02d}@resto.example")
             for i in range(size.tight_restaurants)]
    late: list[tuple[dict[str, Any], list[str]]] = []
    for i in range(size.late_restaurants):
        late.append((restaurant_config(
            f"chaos-late-{i:02d}", tables=4, contact_email=f"host-late-{i:02d}@resto.example",
            services=[{"name": "late", "start": "18:00", "end": "02:00", "allow_overrun": True}]),
            ["22:30", "23:00", "23:30", "00:15", "00:45", "01:00"]))
        late.append((restaurant_config(
            f"chaos-latestrict-{i:02d}", tables=4,
            contact_email=f"host-latestrict-{i:02d}@resto.example",
            services=[{"name": "late", "start": "20:00", "end": "00:30", "allow_overrun": False}]),
            ["22:30", "23:00", "23:30", "00:00", "00:15"]))
    lanes_used: dict[str, int] = {}
    roomy_starts, tight_starts = _times("17:00", "21:00", 15), _times("18:00", "19:30", 30)
    tight_dates = [today + timedelta(days=14 + k) for k in range(2)]
    late_dates = [today + timedelta(days=10 + k) for k in range(2)]
    stats: Counter[str] = Counter()

    def event_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def lane(cfg: dict[str, Any]) -> list[date]:
        n = lanes_used.get(cfg["restaurant_id"], 0)
        lanes_used[cfg["restaurant_id"]] = n + 1
        return [today + timedelta(days=21 + 3 * n + k) for k in range(3)]

    timed: list[tuple[float, int, dict[str, Any]]] = []
    for n in range(size.bookings):
        bid = f"chaos-b{n:05d}"
        pick = rng.random()
        kind = ("walkin" if pick < 0.10 else "late" if pick < 0.18 and late
                else "tight" if pick < 0.38 and tight else "roomy")
        stats[kind] += 1
        source, channel, key = "guest", None, None
        email: str | None = f"guest-{n:05d}@chaos.example"
        phone: str | None = None
        starts: list[str]
        durations: list[int] = []  # explicit end = start + one of these (late bookings only)
        if kind == "roomy":
            cfg = roomy[n % len(roomy)]
            dates, starts, parties = lane(cfg), roomy_starts, list(range(1, 7))
        elif kind == "tight":
            cfg = rng.choice(tight)
            dates, starts, parties = tight_dates, tight_starts, list(range(1, 5))
        elif kind == "late":
            cfg, starts = rng.choice(late)
            dates, parties, durations = late_dates, list(range(1, 5)), [45, 60, 90, 120, 150]
        else:  # half of the walk-ins at restaurants without a contact_email
            no_contact = [c for c in roomy if c["contact_email"] is None]
            cfg = rng.choice(no_contact if no_contact and rng.random() < 0.5 else roomy)
            dates, starts, parties = lane(cfg), roomy_starts, list(range(1, 7))
            source, channel = "ops", "ops.walkin"
            key = rng.choice([None, f"WalkIn/{n:05d}-Front Desk",
                              f"OPS-Desk::Evening-Shift::{n:05d}::Table-Request"])
            email = rng.choice([email, None, ""])
            phone = rng.choice([f"+44 20 7946 {n:04d}", f"+44 20 7946 {n:04d}", None, ""])
            stats["walkin_with_key"] += key is not None
            stats["walkin_without_email"] += not email
            stats["walkin_at_restaurant_without_contact"] += cfg["contact_email"] is None
        start = rng.choice(starts)
        day = rng.choice(dates)
        if kind == "late":  # after-midnight starts mostly on the later date: they compete
            day = late_dates[1] if start < "12:00" and rng.random() < 0.8 else late_dates[0]
        duration = rng.choice(durations) if durations and rng.random() < 0.5 else None
        state: dict[str, Any] = {
            "booking_id": bid, "restaurant_id": cfg["restaurant_id"],
            "booking_date": day.isoformat(), "start_time": start,
            "end_time": _plus(start, duration) if duration else None,
            "party_size": rng.choice(parties), "customer_name": f"Guest {n}",
            "customer_email": email, "customer_phone": phone, "notes": None,
        }
        if kind == "late" and state["end_time"] and state["end_time"] < start:
            stats["late_explicit_end_next_day"] += 1
        walk = {"source": source, "channel": channel}
        seq = [change_event("booking.created", event_id(), dict(state), idempotency_key=key, **walk)]
        # Keyed walk-ins submitted twice stay simple (no edit, no cancel) so the repeat's
        # expectation is only "creates nothing".
        repeat = kind == "walkin" and key is not None and rng.random() < 0.3
        n_edits = 0 if repeat else rng.choice([0, 1, 1, 2, 2, 3, 4])
        for k in range(n_edits):
            if rng.random() < 0.5:
                fields = [("booking_date", [d.isoformat() for d in dates]), ("start_time", starts),
                          ("party_size", parties)]
                if durations:
                    fields.append(("end_time", [None, *durations]))
                field_name, choices = rng.choice(fields)
                if field_name == "end_time":
                    duration = rng.choice([c for c in choices if c != duration])
                else:
                    state[field_name] = rng.choice([c for c in choices if c != state[field_name]])
                state["end_time"] = _plus(state["start_time"], duration) if duration else None
            else:
                state["notes"] = f"edit {k}: {rng.choice(['window', 'birthday', 'quiet', 'high chair'])}"
            if kind == "walkin" and not state["customer_email"] and rng.random() < 0.2:
                state["customer_email"] = f"guest-{n:05d}@chaos.example"  # staff add it later
                stats["walkin_email_added_by_edit"] += 1
            seq.append(change_event("booking.updated", event_id(), dict(state), **walk))
        if not repeat and rng.random() < 0.25:
            seq.append(change_event("booking.cancelled", event_id(),
                                    {"booking_id": bid, "restaurant_id": cfg["restaurant_id"]},
                                    **walk))
        # Spread each booking's changes over the run; sorting by time keeps their order.
        at = rng.uniform(0.0, 0.6 if repeat else 0.85)
        for change in seq:
            timed.append((at, len(timed), change))
            at = min(1.0, at + rng.uniform(0.01, 0.12))
        if repeat:
            again = {**state, "booking_id": f"{bid}-again"}
            timed.append((min(1.0, at + rng.uniform(0.25, 0.35)), len(timed),
                          change_event("booking.created", event_id(), again,
                                       idempotency_key=key, **walk)))
            stats["walkin_repeated_submissions"] += 1
    timed.sort(key=lambda t: (t[0], t[1]))
    late_cfgs = [cfg for cfg, _ in late]
    return Workload(
        restaurants=roomy + tight + late_cfgs,
        changes=[c for _, _, c in timed],
        always_seatable={c["restaurant_id"] for c in roomy},
        late_restaurants={c["restaurant_id"] for c in late_cfgs},
        stats={"changes": len(timed), "restaurants": len(roomy) + len(tight) + len(late_cfgs),
               **dict(sorted(stats.items()))},
    )


def input_change(change: dict[str, Any], partition: int, offset: int,
                 sent_at_s: float) -> checks.InputChange:
    b = change["booking"]
    return checks.InputChange(
        event_id=change["event_id"],
        type=change["type"],
        booking_id=b["booking_id"],
        restaurant_id=b["restaurant_id"],
        booking_date=b.get("booking_date"),
        start_time=b.get("start_time"),
        party_size=b.get("party_size"),
        notes=b.get("notes"),
        partition=partition,
        offset=offset,
        sent_at_s=sent_at_s,
        end_time=b.get("end_time"),
        source=change["source"],
        channel=change.get("channel"),
        idempotency_key=change.get("idempotency_key"),
        customer_email=b.get("customer_email"),
        customer_phone=b.get("customer_phone"),
    )


def chaos_timeline(seed: int, duration_s: float) -> list[tuple[float, str]]:
    """(seconds after production starts, action): kills every 15-25 s, one PG restart, one
    slow-mail phase, one SMTP outage."""
    rng = random.Random(seed ^ 0x5EA7)
    timeline: list[tuple[float, str]] = []
    t = rng.uniform(8, 15)
    while t < duration_s - 5:
        timeline.append((t, "kill"))
        t += rng.uniform(15, 25)
    timeline.append((duration_s * SLOW_MAIL_AT, "slow_mail"))
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
    slow_mail: list[dict[str, Any]] = field(default_factory=list)
    # Restaurants the service did not store (e.g. a configuration it rejected).
    restaurants_missing: list[str] = field(default_factory=list)
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
        self.wall_t0 = time.time()  # the same instant on the wall clock (sink file names)
        self.stack: Stack | None = None  # in the run folder; PostgreSQL and sink get restarted
        self.db_url = ""
        self.settings: Settings | None = None
        self.workers: list[WorkerProcess] = []  # every worker ever started
        self.serial = 0
        self.killed: set[int] = set()  # pids we SIGKILLed
        self.fleet_lock = asyncio.Lock()  # one kill/replace or watchdog round at a time

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def start_clock(self) -> None:
        self.t0, self.wall_t0 = time.monotonic(), time.time()

    # --- stack and workers ---------------------------------------------------------------

    async def start_stack(self) -> None:
        self.stack = start_embedded_stack(self.folder)
        self.db_url = await create_database_async(self.stack, "chaos")
        self.settings = stack_settings(
            self.stack,
            self.db_url,
            "chaos.",
            email_lease_s=EMAIL_LEASE_S,
            topic_partitions=PARTITIONS,
            inline_confirm_window_ms=INLINE_WINDOW_MS,
            auto_assign_retry_delays_ms=list(RETRY_DELAYS_MS),
            suppress_emails=False,
            feature_auto_assign_on_booking=True,
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
        assert self.stack is not None
        before = self.stack.postgres.url
        stopped_at = self.now()
        await asyncio.to_thread(self.stack.postgres.stop)
        await asyncio.sleep(PG_DOWN_S)
        self.stack.postgres = await asyncio.to_thread(start_postgres, self.stack.root / "pgdata")
        after = self.stack.postgres.url
        entry = {"stopped_at_s": stopped_at, "started_at_s": self.now(),
                 "url_unchanged": after == before}
        self.journal.postgres.append(entry)
        if not entry["url_unchanged"]:
            self.journal.errors.append(f"PostgreSQL URL changed: {before} -> {after}")

    async def smtp_outage(self) -> None:
        assert self.stack is not None
        sink = self.stack.mail_sink
        stopped_at = self.now()
        await asyncio.to_thread(sink.stop)
        await asyncio.sleep(SMTP_OUTAGE_S)
        await asyncio.to_thread(sink.start)
        self.journal.smtp.append({"stopped_at_s": stopped_at, "started_at_s": self.now()})

    async def slow_mail(self) -> None:
        assert self.stack is not None
        sink = self.stack.mail_sink
        phase_s = self.size.duration_s * SLOW_MAIL_SHARE
        sink.set_delay(*SLOW_MAIL_DELAY_S)
        entry: dict[str, Any] = {"from_s": self.now(), "delay_s": list(SLOW_MAIL_DELAY_S),
                                 "planned_s": round(phase_s, 1)}
        self.journal.slow_mail.append(entry)
        try:
            await asyncio.sleep(phase_s)
        finally:
            sink.set_delay(0)
            entry["to_s"] = self.now()

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
                elif action == "slow_mail":  # overlaps kills and the PostgreSQL restart
                    outages.append(asyncio.create_task(self.slow_mail()))
            except Exception as exc:  # noqa: BLE001 - recorded; the run goes on
                self.journal.errors.append(f"{self.now()}s {action}: {exc!r}"[:2000])
        await asyncio.gather(*outages)

    # --- input -------------------------------------------------------------------------------

    async def publish_restaurants(self, restaurants: list[dict[str, Any]]) -> None:
        assert self.settings is not None
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                    enable_idempotence=False)
        await producer.start()
        try:
            topic = TopicNames(self.settings.topic_prefix).restaurants
            for cfg in restaurants:
                await producer.send(topic, json.dumps(cfg).encode(),
                                    key=cfg["restaurant_id"].encode())
            await producer.flush()
        finally:
            await producer.stop()

    async def produce(self, changes: list[dict[str, Any]]) -> list[checks.InputChange]:
        """Send the changes at a steady rate over the run; where each landed, and when."""
        assert self.settings is not None
        topic = TopicNames(self.settings.topic_prefix).booking_changes
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                    enable_idempotence=False, linger_ms=20)
        await producer.start()
        rate = len(changes) / self.size.duration_s
        sent: list[tuple[dict[str, Any], asyncio.Future[Any], float]] = []
        try:
            for i, change in enumerate(changes):
                await asyncio.sleep(max(0.0, i / rate - self.now()))
                fut = await producer.send(
                    topic, json.dumps(change).encode(),
                    key=change["booking"]["booking_id"].encode(),
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

    async def wait_restaurants(self, workload: Workload, timeout: float = 60.0,
                               grace_s: float = 10.0) -> None:
        """Until every restaurant is stored. The late ones (a service past midnight, which a
        service without revision 2 of the contract rejects) get `grace_s` after the others; the ones still
        missing are journalled and the run goes on (their bookings stay parked: a finding)."""
        wanted = {c["restaurant_id"] for c in workload.restaurants}
        required = wanted - workload.late_restaurants
        deadline = time.monotonic() + timeout
        required_at: float | None = None
        stored: set[str] = set()
        while time.monotonic() < deadline:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                conn = await self.db()
                try:
                    stored = {r["restaurant_id"] for r in
                              await conn.fetch("SELECT restaurant_id FROM restaurants")}
                finally:
                    await conn.close()
            if wanted <= stored:
                return
            if required <= stored:
                required_at = required_at or time.monotonic()
                if time.monotonic() - required_at > grace_s:
                    self.journal.restaurants_missing = sorted(wanted - stored)
                    self.journal.errors.append(
                        f"the workers did not store {sorted(wanted - stored)} (rejected?); "
                        "going on: their bookings stay parked")
                    return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the workers did not store {sorted(required - stored)} in "
                           f"{timeout:.0f} s")

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
                " (SELECT count(*) FROM parked_changes) AS parked,"
                " (SELECT count(*) FROM parked_changes p WHERE NOT EXISTS (SELECT 1 FROM"
                "   restaurants r WHERE r.restaurant_id = p.restaurant_id)) AS parked_unconfigured"
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
            # Changes parked for a restaurant the service never stored wait forever: they do
            # not hold up quiescence (check_drained still reports them).
            idle = not (now["outbox"] or now["mail_active"] or now["alloc_active"]
                        or now["parked"] - now["parked_unconfigured"])
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
        assert self.settings is not None and self.stack is not None
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
                " requested_end_time, party_size, notes, alloc_state, episode_kind,"
                " customer_email, customer_phone FROM bookings"
            )
            notes = await conn.fetch(
                "SELECT booking_id, kind, pending_ref, status FROM notifications"
            )
            parked = [r["event_id"] for r in await conn.fetch("SELECT event_id FROM parked_changes")]
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
                requested_end_time=(r["requested_end_time"].strftime("%H:%M")
                                    if r["requested_end_time"] is not None else None),
                customer_email=r["customer_email"], customer_phone=r["customer_phone"],
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
                booking_version=v.get("booking_version"),
            ))
        dead = await read_topic(self.settings.kafka_bootstrap, topics.dead_letters, timeout=20)
        dead_lettered: dict[str, str] = {}
        for rec in dead:
            with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                event_id = json.loads(rec.value)["event_id"]
                headers = {k: v.decode(errors="replace") for k, v in rec.headers}
                dead_lettered[str(event_id)] = (f"{headers.get('x-dlq-stage')}: "
                                                f"{headers.get('x-dlq-exception-message', '')[:200]}")
        parser = BytesParser(policy=email.policy.default)
        sink = []
        for path in self.stack.mail_sink.message_files():
            with path.open("rb") as fh:
                msg = parser.parse(fh, headersonly=True)
            stored_ns = path.name.split("-", 1)[0]
            sink.append(checks.SinkMail(
                message_id=str(msg["Message-ID"]).strip(), kind=str(msg["X-Seatflow-Kind"]),
                booking_id=str(msg["X-Seatflow-Booking"]), file=path.name,
                to=str(msg["X-Envelope-To"] or ""),
                at_s=(round(int(stored_ns) / 1e9 - self.wall_t0, 3) if stored_ns.isdigit()
                      else None),
            ))
        return {
            "processed": processed,
            "parked": parked,
            "dead_lettered": dead_lettered,
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
        stack, self.stack = self.stack, None  # stopped once (stop_all runs again at the end)
        if stack is not None:
            stack.stop()  # each part, whatever the others do; the folder stays


def near_kills(at_s: float, kills: list[dict[str, Any]]) -> dict[str, float | None]:
    """Seconds from the closest kill before and after a moment (to read a loss against)."""
    before = [at_s - k["at_s"] for k in kills if k["at_s"] <= at_s]
    after = [k["at_s"] - at_s for k in kills if k["at_s"] > at_s]
    return {"since_kill_s": round(min(before), 1) if before else None,
            "until_kill_s": round(min(after), 1) if after else None}


def evaluate(
    inputs: list[checks.InputChange], workload: Workload, snap: dict[str, Any], journal: Journal,
) -> list[checks.CheckResult]:
    restaurants = {c["restaurant_id"]: c for c in workload.restaurants}
    expected = checks.expected_states(inputs, workload.always_seatable, restaurants)
    repeats = checks.repeated_submissions(inputs)
    lost = checks.check_none_lost(inputs, snap["processed"], snap["committed"]["booking_changes"],
                                  dead_lettered=snap["dead_lettered"], parked=snap["parked"])
    for entry in lost.details["lost_events"]:
        entry.update(near_kills(entry["sent_at_s"], journal.kills))
    # docs/interface.md §4 rev 2: a repeat only for a crash, at most one per SMTP connection of the
    # killed worker (one message in flight on each); none for the outage or the slow phase.
    kills_at = [k["at_s"] for k in journal.kills]
    per_kill = Settings().smtp_connections
    return [
        lost,
        checks.check_final_states(expected, snap["bookings"], snap["status_events"]),
        checks.check_emails(snap["sink"], snap["notifications"], expected, snap["bookings"],
                            allowed_repeats=len(kills_at) * per_kill, kills_at_s=kills_at,
                            repeats_per_kill=per_kill),
        checks.check_tables(snap["assignments"], snap["bookings"]),
        checks.check_applied_once(expected, snap["status_events"]),
        checks.check_drained(snap["leftovers"]),
        checks.check_workers(journal.unexpected_exits),
        checks.check_fit(expected, snap["bookings"], restaurants),
        checks.check_windows(expected, snap["bookings"], snap["assignments"], restaurants),
        checks.check_moves(expected, snap["bookings"], snap["status_events"], restaurants),
        checks.check_walkins(expected, snap["bookings"], snap["sink"], repeats,
                             snap["status_events"]),
        checks.check_versions(expected, snap["status_events"]),
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
        "workload": workload.stats,
        "slow_mail": {"delay_s": list(SLOW_MAIL_DELAY_S), "at": SLOW_MAIL_AT,
                      "share": SLOW_MAIL_SHARE},
        "email_lease_s": EMAIL_LEASE_S, "smtp_connections": Settings().smtp_connections,
        "faust_fixes": not args.without_faust_fixes, "code": code_version(),
    }
    wall = time.monotonic()
    code = 2
    watchdog: asyncio.Task[None] | None = None
    try:
        await chaos_run.start_stack()
        await chaos_run.publish_restaurants(workload.restaurants)
        await asyncio.gather(*(chaos_run.start_worker() for _ in range(WORKERS)))
        await chaos_run.wait_restaurants(workload)
        chaos_run.start_clock()
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
        results = evaluate(inputs, workload, snap, chaos_run.journal)
        report["dead_letters"] = snap["dead_letters"]
        report["committed_offsets"] = snap["committed"]
        report["checks"] = [r.to_json() for r in results]
        by = {r.name: r for r in results}
        lost, mails, drained = by["none_lost"], by["emails"], by["drained"]
        slow = chaos_run.journal.slow_mail
        summary = {
            "changes": len(inputs), "bookings": len(snap["bookings"]),
            "kills": len(chaos_run.journal.kills), "lost": lost.counts["lost"],
            "lost_silently": lost.counts["lost_silently"],
            "lost_by_partition": json.dumps(lost.details["lost_by_partition"], separators=(",", ":")),
            "wrong_final": len(by["final_states"].problems),
            "dup_emails": mails.counts.get("duplicate", 0),
            "crash_window_repeats": mails.counts["crash_window_repeats"],
            "repeats_without_kill": mails.counts.get("repeat_without_kill", 0),
            "emails": mails.counts["delivered"],
            "emails_in_slow_phase": sum(
                1 for m in snap["sink"] if m.at_s is not None and slow
                and slow[0]["from_s"] <= m.at_s <= slow[0].get("to_s", m.at_s)),
            "overlaps": by["tables"].counts["overlaps"],
            "misfits": len(by["fit"].problems), "wrong_windows": len(by["windows"].problems),
            "walkin_problems": len(by["walkins"].problems),
            "version_problems": ("skipped" if by["versions"].counts.get("skipped")
                                 else len(by["versions"].problems)),
            "applied_twice_problems": len(by["applied_once"].problems),
            "outbox_left": drained.counts["outbox_rows"],
            "dead_letters": drained.counts["dead_letters"],
            "parked_left": drained.counts["parked_changes"],
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
