"""`seatflow watch [--booking ID] [--json] [--from-beginning]` (docs/interface.md §8): follow
`booking-status`, `notifications` and `dead-letters` live, one line per record, until Ctrl-C.

It reads by assigning partitions directly (no consumer group: joins are slow on Tansu, and
a watcher has nothing to commit). By default it shows records published after it starts:
the start of each partition is the high watermark the first fetch reports, because Tansu's
ListOffsets "latest" answer is off (docs/infrastructure.md). It says "watching …" on stderr
once positioned; anything published after that line is shown. A topic that does not exist
yet is waited for and then read from its beginning (everything in it is new).

Text lines are coloured on a terminal (not when piped, nor with NO_COLOR set); `--json`
prints one JSON object per record: the record's value, with `topic` added (a dead letter as
`seatflow dlq tail --json` has it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from config.settings import Settings
from config.topics import TopicNames
from seatflow.console import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail

POLL_MS = 300
# How often topics that did not exist yet are looked for.
TOPIC_CHECK_S = 1.0
# Giving up on positioning when the broker answers no fetch this long.
POSITION_TIMEOUT_S = 20.0


def add_command(commands: argparse._SubParsersAction) -> None:
    watch = commands.add_parser(
        "watch", help="follow booking-status, notifications and dead-letters live (Ctrl-C stops)")
    watch.add_argument("--booking", metavar="ID", help="only this booking's records")
    watch.add_argument("--json", action="store_true", help="one JSON object per record")
    watch.add_argument("--from-beginning", action="store_true",
                       help="also every record published before watch started")
    watch.set_defaults(handler=cmd_watch)


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    if args.booking is not None and not args.booking.strip():
        return fail("error: --booking must not be empty", EXIT_USAGE)
    try:
        return asyncio.run(watch_async(settings, booking=args.booking, as_json=args.json,
                                       from_beginning=args.from_beginning))
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is how watching ends


# --- formatting (pure) ---------------------------------------------------------------------------

RESET = "\x1b[0m"
COLOURS = {
    "confirmed": "\x1b[32m",         # green
    "pending": "\x1b[33m",           # yellow
    "cancelled": "\x1b[2m",          # dim
    "allocation_failed": "\x1b[31m",  # red
    "tables_changed": "\x1b[36m",    # cyan
    "email": "\x1b[34m",             # blue
    "email_quiet": "\x1b[2m",
    "dead_letter": "\x1b[1;31m",     # bold red
}


def use_colour(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    if environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@dataclass(frozen=True)
class Line:
    """One record as the columns of a watch line."""

    at: str
    booking: str
    what: str
    status: str
    detail: str
    colour: str | None = None

    def render(self, colour: bool) -> str:
        text = f"{self.at}  {self.booking:<13} {self.what:<28} {self.status:<10} {self.detail}"
        text = text.rstrip()
        if colour and self.colour:
            return f"{COLOURS[self.colour]}{text}{RESET}"
        return text


def _clock(timestamp_ms: int | None) -> str:
    if timestamp_ms is None:
        return "--:--:--"
    return datetime.fromtimestamp(timestamp_ms / 1000).strftime("%H:%M:%S")


def status_line(value: dict[str, Any], timestamp_ms: int | None) -> Line:
    kind = str(value.get("type", "?"))
    short = kind.removeprefix("booking.")
    details = []
    if value.get("table_ids"):
        details.append("tables " + ",".join(value["table_ids"]))
    extras = [str(value[k]) for k in ("reason", "failure_reason") if value.get(k)]
    if value.get("booking_version") is not None:
        extras.append(f"v{value['booking_version']}")
    if extras:
        details.append(f"({', '.join(extras)})")
    return Line(_clock(timestamp_ms), str(value.get("booking_id", "?")), kind,
                str(value.get("status", "?")), " ".join(details),
                short if short in COLOURS else None)


def notification_line(value: dict[str, Any], timestamp_ms: int | None) -> Line:
    status = str(value.get("status", "?"))
    detail = f"to {value['to']}" if value.get("to") else ""
    if value.get("reason"):
        detail = f"{detail} ({value['reason']})".strip()
    return Line(_clock(timestamp_ms), str(value.get("booking_id", "?")),
                f"{value.get('channel', 'email')} {value.get('kind', '?')}", status, detail,
                "email" if status == "queued" else "email_quiet")


def dead_letter_line(view: Any, timestamp_ms: int | None) -> Line:
    exception = view.exception_class.rsplit(".", 1)[-1]
    if view.exception_message:
        exception = f"{exception}: {view.exception_message}"
    return Line(_clock(timestamp_ms), view.key or "-", f"dead letter ({view.stage})",
                f"@{view.position}", f"{exception}  from {view.original}", "dead_letter")


@dataclass
class Formatter:
    """Records of the three topics -> lines (text or JSON), filtered by booking."""

    topics: TopicNames
    as_json: bool = False
    colour: bool = False
    booking: str | None = None

    def wanted(self, record: Any) -> bool:
        if self.booking is None:
            return True
        if record.key is not None and record.key == self.booking.encode():
            return True
        value = _json_object(record.value) if record.topic != self.topics.dead_letters else None
        return bool(value) and value.get("booking_id") == self.booking

    def line(self, record: Any) -> str | None:
        """The line for a record, or None when it is filtered out."""
        if not self.wanted(record):
            return None
        if record.topic == self.topics.dead_letters:
            from streams.deadletter import parse_dead_letter

            view = parse_dead_letter(record)
            if self.as_json:
                return json.dumps({"topic": record.topic, **view.as_json()}, ensure_ascii=False)
            return dead_letter_line(view, record.timestamp).render(self.colour)
        value = _json_object(record.value)
        if value is None:
            unreadable = {"topic": record.topic, "partition": record.partition,
                          "offset": record.offset, "unreadable": True}
            if self.as_json:
                return json.dumps(unreadable)
            return Line(_clock(record.timestamp), "-", record.topic, "?",
                        f"not a JSON object at {record.partition}:{record.offset}").render(False)
        if self.as_json:
            return json.dumps({"topic": record.topic, **value}, ensure_ascii=False)
        if record.topic == self.topics.notifications:
            return notification_line(value, record.timestamp).render(self.colour)
        return status_line(value, record.timestamp).render(self.colour)


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- following the topics ------------------------------------------------------------------------


@dataclass
class _Follower:
    """Partitions assigned so far, and where "after watch started" begins in each."""

    settings: Settings
    topics: list[str]
    from_beginning: bool
    consumer: Any = None
    assigned: dict[str, list[Any]] = field(default_factory=dict)
    # Per partition: records below this offset were there before watch started.
    start_at: dict[Any, int] = field(default_factory=dict)
    held: list[Any] = field(default_factory=list)

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        from config.kafka import client_options

        self.consumer = AIOKafkaConsumer(
            **client_options(self.settings), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=POLL_MS,
        )
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def existing(self) -> list[str]:
        # All-topics metadata: naming one topic in the request makes Tansu create it.
        names = set(await self.consumer.topics())
        return [t for t in self.topics if t in names and t not in self.assigned]

    async def add(self, new_topics: list[str], *, at_start: bool) -> None:
        """Assign the partitions of `new_topics` too. At start without --from-beginning they
        are read from where watch started; topics found later are new: from the beginning."""
        from aiokafka import TopicPartition

        if not new_topics:
            return
        kept = {tp: await self.consumer.position(tp)
                for tps in self.assigned.values() for tp in tps}
        fresh = []
        for topic in new_topics:
            ids = sorted(self.consumer.partitions_for_topic(topic) or ())
            self.assigned[topic] = [TopicPartition(topic, p) for p in ids]
            fresh.extend(self.assigned[topic])
        self.consumer.assign([*kept, *fresh])
        for tp, position in kept.items():
            self.consumer.seek(tp, position)
        if not fresh:
            return
        if self.from_beginning or not at_start:
            await self.consumer.seek_to_beginning(*fresh)
            return
        await self.consumer.seek_to_end(*fresh)
        await self._find_ends(fresh)

    async def _find_ends(self, partitions: list[Any]) -> None:
        """Fetch until every partition reported its high watermark: that is where watch
        starts. Records fetched meanwhile at or past it are held for printing."""
        deadline = time.monotonic() + POSITION_TIMEOUT_S
        waiting = set(partitions)
        while waiting:
            batches = await self.consumer.getmany(*partitions, timeout_ms=POLL_MS)
            for tp in list(waiting):
                highwater = self.consumer.highwater(tp)
                if highwater is not None:
                    self.start_at[tp] = highwater
                    waiting.discard(tp)
            for records in batches.values():
                self.held.extend(records)
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"no fetch answer for {len(waiting)} partition(s) in "
                                   f"{POSITION_TIMEOUT_S:.0f} s")
        self.held = [r for r in self.held if self._new(r)]

    def _new(self, record: Any) -> bool:
        from aiokafka import TopicPartition

        start = self.start_at.get(TopicPartition(record.topic, record.partition))
        return start is None or record.offset >= start

    async def poll(self) -> list[Any]:
        held, self.held = self.held, []
        if not self.assigned:
            await asyncio.sleep(POLL_MS / 1000)
            return held
        batches = await self.consumer.getmany(timeout_ms=POLL_MS)
        records = [r for batch in batches.values() for r in batch if self._new(r)]
        return held + sorted(records, key=lambda r: (r.timestamp, r.topic, r.partition, r.offset))


async def watch_async(
    settings: Settings,
    *,
    booking: str | None = None,
    as_json: bool = False,
    from_beginning: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    colour: bool | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    """Print records until Ctrl-C (or until `keep_going()` is false, for tests)."""
    from aiokafka.errors import KafkaError

    from config.kafka import KafkaTlsError
    from seatflow.bookings_cli import describe_error
    from seatflow.logs import quiet_clients

    quiet_clients()
    out = out or sys.stdout
    err = err or sys.stderr
    names = TopicNames(settings.topic_prefix)
    wanted = [names.booking_status, names.notifications, names.dead_letters]
    formatter = Formatter(names, as_json=as_json,
                          colour=use_colour(out) if colour is None else colour, booking=booking)
    follower = _Follower(settings, wanted, from_beginning)
    try:
        await follower.start()
        await follower.add(await follower.existing(), at_start=True)
        missing = [t for t in wanted if t not in follower.assigned]
        scope = f" for booking {booking}" if booking else ""
        print(f"watching {', '.join(follower.assigned) or 'nothing yet'}{scope} "
              "(Ctrl-C to stop)", file=err, flush=True)
        if missing:
            print(f"waiting for {', '.join(missing)} to exist (a worker creates them)",
                  file=err, flush=True)
        next_check = time.monotonic() + TOPIC_CHECK_S
        while keep_going():
            for record in await follower.poll():
                line = formatter.line(record)
                if line is not None:
                    print(line, file=out, flush=True)
            if missing and time.monotonic() >= next_check:
                found = await follower.existing()
                if found:
                    await follower.add(found, at_start=False)
                    missing = [t for t in missing if t not in found]
                    print(f"watching {', '.join(found)} too", file=err, flush=True)
                next_check = time.monotonic() + TOPIC_CHECK_S
        return EXIT_OK
    except KafkaTlsError as exc:
        return fail(str(exc), EXIT_USAGE, err=err)
    except (KafkaError, OSError, TimeoutError) as exc:
        return fail(f"broker: cannot read from {settings.kafka_bootstrap} ({describe_error(exc)}) — is "
                    "`seatflow dev` running, or SEATFLOW_KAFKA_BOOTSTRAP set?", EXIT_FAILED,
                    err=err)
    finally:
        await follower.stop()
