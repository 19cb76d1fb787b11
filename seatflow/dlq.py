"""`seatflow dlq tail` and `seatflow dlq replay` (docs/interface.md §8): inspect dead letters and send
them back to their original topic.

Reads the dead-letters topic by assigning its partitions directly: no consumer group, because
joins are slow on Tansu and a reader has nothing to commit. "Everything so far" means up to the
high watermark that fetch responses report, because Tansu's ListOffsets "latest" answer is off
(docs/infrastructure.md). Topic existence is checked with an all-topics metadata request: asking for one
topic by name makes Tansu create it.

Exit codes: 0 done, 1 broker trouble or a partial replay, 2 bad input (an `--offset` that is
malformed or names no dead letter, nothing selected), 130 interrupted replay.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from config.kafka import client_options
from config.settings import Settings
from config.topics import TopicNames
from seatflow.console import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from streams.connection import BrokerUnreachable, start_client
from streams.deadletter import DeadLetterView, parse_dead_letter, replay_headers

# Give up on catching up when the broker neither sends records nor a high watermark this long.
STALL_TIMEOUT_S = 15.0
FOLLOW_POLL_MS = 500
PROGRESS_EVERY_S = 2.0
SEND_WINDOW = 500  # sends in flight before waiting for acknowledgements


class DlqError(Exception):
    """A one-line message for the operator, and the exit code that goes with it."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- entry points called by seatflow/cli.py ------------------------------------------------


def tail(settings: Settings, follow: bool, as_json: bool, limit: int | None) -> int:
    """Print dead letters (the last `limit`, or all); with `follow`, keep printing until Ctrl-C."""
    try:
        return asyncio.run(tail_async(settings, follow=follow, as_json=as_json, limit=limit))
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is how --follow ends


def replay(settings: Settings, offsets: list[str], all_: bool, dry_run: bool) -> int:
    """Republish the selected dead letters (`P:O` of the dead-letters topic, or all)."""
    try:
        return asyncio.run(replay_async(settings, offsets=offsets, all_=all_, dry_run=dry_run))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# --- tail ----------------------------------------------------------------------------------


async def tail_async(
    settings: Settings,
    *,
    follow: bool = False,
    as_json: bool = False,
    limit: int | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if limit is not None and limit < 1:
        return _fail(err, DlqError(f"--limit must be at least 1, got {limit}"))
    topic = TopicNames(settings.topic_prefix).dead_letters
    printer = _Printer(out, as_json)
    await report_backlog(settings, out, err, as_json=as_json)
    try:
        async with _dead_letter_reader(settings) as reader:
            partitions = await reader.partitions(topic)
            while partitions is None and follow:
                if not printer.waiting_noted:
                    print(f"no dead letters yet ({topic} does not exist); waiting…", file=err)
                    printer.waiting_noted = True
                await asyncio.sleep(1.0)
                partitions = await reader.partitions(topic)
            if partitions is None:
                print(f"no dead letters ({topic} does not exist)", file=err)
                return EXIT_OK

            latest: dict[int, deque[ConsumerRecord]] = {
                p.partition: deque(maxlen=limit) for p in partitions
            }
            total = await reader.read_to_end(partitions, lambda r: latest[r.partition].append(r))
            # Each partition kept its last `limit`; the last `limit` overall are among them.
            shown = sorted((r for kept in latest.values() for r in kept), key=_record_order)
            if limit is not None:
                shown = shown[-limit:]
            for record in shown:
                printer.row(parse_dead_letter(record))
            if not follow:
                if total == 0:
                    print(f"no dead letters in {topic}", file=err)
                else:
                    print(f"{len(shown)} of {total} dead letter(s) in {topic}", file=err)
                return EXIT_OK

            if total == 0:
                print(f"no dead letters in {topic} yet; waiting… (Ctrl-C to stop)", file=err)
            while True:
                batch = await reader.poll(FOLLOW_POLL_MS)
                for record in sorted(batch, key=_record_order):
                    printer.row(parse_dead_letter(record))
    except DlqError as exc:
        return _fail(err, exc)


async def report_backlog(settings: Settings, out: TextIO, err: TextIO, *, as_json: bool) -> int:
    """List dead letters the topic refused (they wait in PostgreSQL, `dead_letter_backlog`,
    for the worker's relay). Only when a database is configured or the embedded one runs;
    an unreachable database is a note, not a failure of `tail`."""
    import asyncpg

    from storage.dead_letters import DeadLetterBacklog

    url = settings.database_url
    if not url and (settings.embedded_pgdata / "postmaster.pid").exists():
        from seatflow.database import database_url

        url = database_url(settings)
    if not url:
        return 0
    try:
        conn = await asyncio.wait_for(asyncpg.connect(url), 5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        print(f"note: cannot read refused dead letters from PostgreSQL ({type(exc).__name__})",
              file=err)
        return 0
    try:
        rows = await DeadLetterBacklog(conn).all()
    except asyncpg.UndefinedTableError:
        rows = []  # a database no worker has migrated yet
    finally:
        await conn.close()
    if rows:
        print(f"{len(rows)} dead letter(s) the topic refused wait in PostgreSQL"
              " (table dead_letter_backlog; the worker retries them):", file=err)
    for row in rows:
        where = f"{row['original_topic']}[{row['original_partition']}]@{row['original_offset']}"
        key = row["original_key"]
        size = 0 if row["original_value"] is None else len(row["original_value"])
        if as_json:
            print(json.dumps({
                "dead_letter": f"backlog:{row['id']}", "backlog": True, "stage": row["stage"],
                "original": where, "key_size": 0 if key is None else len(key),
                "value_size": size, "publish_error": row["publish_error"],
                "attempts": row["attempts"], "since": row["created_at"].isoformat(),
            }), file=out, flush=True)
        else:
            print(f"  backlog:{row['id']}  stage {row['stage']}  {where}  key "
                  f"{0 if key is None else len(key)} bytes  value {size} bytes  refused: "
                  f"{row['publish_error']}", file=err)
    return len(rows)


# --- replay --------------------------------------------------------------------------------


def parse_offsets(values: Iterable[str]) -> list[tuple[int, int]]:
    """`["3:120", "0:7"]` -> `[(3, 120), (0, 7)]`, duplicates dropped; DlqError on bad input."""
    parsed: list[tuple[int, int]] = []
    for value in values:
        partition_text, sep, offset_text = value.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            position = (int(partition_text), int(offset_text))
        except ValueError:
            raise DlqError(
                f"bad --offset {value!r}: expected PARTITION:OFFSET of the dead-letters topic, "
                "e.g. 3:120 (see `seatflow dlq tail`)"
            ) from None
        if position[0] < 0 or position[1] < 0:
            raise DlqError(f"bad --offset {value!r}: partition and offset must be >= 0")
        if position not in parsed:
            parsed.append(position)
    return parsed


async def replay_async(
    settings: Settings,
    *,
    offsets: list[str] | None = None,
    all_: bool = False,
    dry_run: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    topic = TopicNames(settings.topic_prefix).dead_letters
    try:
        wanted = parse_offsets(offsets or [])
        if all_ and wanted:
            raise DlqError("give either --offset P:O ... or --all, not both")
        if not all_ and not wanted:
            raise DlqError("nothing selected: give --offset P:O (repeatable) or --all")

        async with _dead_letter_reader(settings) as reader:
            partitions = await reader.partitions(topic)
            if partitions is None:
                if all_:
                    print(f"no dead letters ({topic} does not exist); nothing to replay", file=out)
                    return EXIT_OK
                raise DlqError(f"no dead letters: {topic} does not exist")
            selected = await _select(reader, topic, partitions, wanted, all_)
            existing_topics = await reader.topic_names()

        if not selected:
            print(f"no dead letters in {topic}; nothing to replay", file=out)
            return EXIT_OK
        plan, skipped = _plan(selected, existing_topics)
        if skipped and not all_:
            # An explicit selection is all or nothing: send none of it.
            raise DlqError(skipped[0])
        for reason in skipped:
            print(f"skipping {reason}", file=err)

        if dry_run:
            for item in plan:
                print(f"would replay {_describe(item)}", file=out)
            print(
                f"dry run: would replay {len(plan)} dead letter(s){_by_topic(plan)}; "
                f"{len(skipped)} skipped; nothing sent",
                file=out,
            )
            return EXIT_FAILED if skipped else EXIT_OK

        sent = await _send(settings, plan, err)
        print(
            f"replayed {sent} dead letter(s){_by_topic(plan)}; {len(skipped)} skipped",
            file=out,
        )
        return EXIT_FAILED if skipped else EXIT_OK
    except DlqError as exc:
        return _fail(err, exc)


@dataclass(frozen=True)
class _ReplayItem:
    record: ConsumerRecord
    view: DeadLetterView

    @property
    def topic(self) -> str:
        assert self.view.original_topic is not None
        return self.view.original_topic


async def _select(
    reader: _DeadLetterReader,
    topic: str,
    partitions: list[TopicPartition],
    wanted: list[tuple[int, int]],
    all_: bool,
) -> list[ConsumerRecord]:
    if all_:
        records: list[ConsumerRecord] = []
        await reader.read_to_end(partitions, records.append)
        return records

    known = {tp.partition for tp in partitions}
    unknown = [f"{p}:{o}" for p, o in wanted if p not in known]
    if unknown:
        raise DlqError(
            f"no dead letter at {', '.join(unknown)}: {topic} has partitions 0..{max(known)}"
        )
    by_partition: dict[int, set[int]] = {}
    for partition, offset in wanted:
        by_partition.setdefault(partition, set()).add(offset)
    found: dict[tuple[int, int], ConsumerRecord] = {}

    def keep(record: ConsumerRecord) -> None:
        if record.offset in by_partition[record.partition]:
            found[(record.partition, record.offset)] = record

    await reader.read_ranges(
        {TopicPartition(topic, p): (min(offs), max(offs)) for p, offs in by_partition.items()},
        keep,
    )
    missing = [f"{p}:{o}" for p, o in wanted if (p, o) not in found]
    if missing:
        raise DlqError(f"no dead letter at {', '.join(missing)} in {topic}")
    return [found[position] for position in wanted]


def _plan(
    records: list[ConsumerRecord], existing_topics: set[str]
) -> tuple[list[_ReplayItem], list[str]]:
    """What can be replayed, in original order (so a booking's events stay in sequence)."""
    plan: list[_ReplayItem] = []
    skipped: list[str] = []
    for record in records:
        view = parse_dead_letter(record)
        if view.original_topic is None:
            skipped.append(f"dead letter {view.position}: it has no x-dlq-original-topic header")
        elif view.original_topic not in existing_topics:
            skipped.append(
                f"dead letter {view.position}: original topic {view.original_topic} does not exist"
            )
        else:
            plan.append(_ReplayItem(record, view))
    plan.sort(
        key=lambda item: (
            item.topic,
            -1 if item.view.original_partition is None else item.view.original_partition,
            -1 if item.view.original_offset is None else item.view.original_offset,
            _record_order(item.record),
        )
    )
    return plan, skipped


async def _send(settings: Settings, plan: list[_ReplayItem], err: TextIO) -> int:
    # No idempotence: aiokafka's InitProducerId v0 is rejected by Tansu (docs/infrastructure.md). Replays
    # are at-least-once anyway; the service dedupes by event_id.
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
    )
    sent = 0
    last_progress = time.monotonic()
    try:
        await start_client(producer, settings)
        in_flight: list[Awaitable[object]] = []
        for item in plan:
            # Partition from the key, as the original producer chose it.
            in_flight.append(
                await producer.send(
                    item.topic,
                    value=item.record.value,
                    key=item.record.key,
                    headers=replay_headers(
                        item.record.headers,
                        partition=item.record.partition,
                        offset=item.record.offset,
                    ),
                )
            )
            if len(in_flight) >= SEND_WINDOW:
                await asyncio.gather(*in_flight)
                sent += len(in_flight)
                in_flight.clear()
                if time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                    print(f"replayed {sent}/{len(plan)}…", file=err, flush=True)
                    last_progress = time.monotonic()
        await asyncio.gather(*in_flight)
        sent += len(in_flight)
    except KafkaError as exc:
        raise DlqError(
            f"replay stopped after {sent} of {len(plan)} acknowledged: {exc!r}", EXIT_FAILED
        ) from exc
    except asyncio.CancelledError:
        print(f"interrupted: {sent} of {len(plan)} acknowledged", file=err, flush=True)
        raise
    finally:
        await producer.stop()
    return sent


def _describe(item: _ReplayItem) -> str:
    view = item.view
    return (
        f"{view.position} -> {view.original}  key={view.key}  attempts={view.attempts}  "
        f"{view.stage}: {_short_class(view.exception_class)}"
    )


def _by_topic(plan: list[_ReplayItem]) -> str:
    counts: dict[str, int] = {}
    for item in plan:
        counts[item.topic] = counts.get(item.topic, 0) + 1
    if not counts:
        return ""
    return " (" + ", ".join(f"{topic}: {n}" for topic, n in sorted(counts.items())) + ")"


# --- reading the dead-letters topic --------------------------------------------------------


class _DeadLetterReader:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._bootstrap = settings.kafka_bootstrap
        self._consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )

    async def __aenter__(self) -> _DeadLetterReader:
        try:
            await start_client(self._consumer, self._settings)
        except BrokerUnreachable as exc:
            await self._consumer.stop()
            raise DlqError(str(exc), EXIT_FAILED) from exc
        except KafkaError as exc:
            await self._consumer.stop()
            raise DlqError(f"cannot reach Kafka at {self._bootstrap}: {exc}", EXIT_FAILED) from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._consumer.stop()

    async def topic_names(self) -> set[str]:
        # All-topics metadata: naming one topic in the request makes Tansu create it.
        try:
            return set(await self._consumer.topics())
        except KafkaError as exc:
            raise DlqError(f"cannot list topics at {self._bootstrap}: {exc}", EXIT_FAILED) from exc

    async def partitions(self, topic: str) -> list[TopicPartition] | None:
        """The topic's partitions, or None when it does not exist."""
        if topic not in await self.topic_names():
            return None
        ids = self._consumer.partitions_for_topic(topic) or set()
        return [TopicPartition(topic, p) for p in sorted(ids)] or None

    async def read_to_end(
        self, partitions: list[TopicPartition], handle: Callable[[ConsumerRecord], None]
    ) -> int:
        """Feed every record from the beginning up to the high watermark; return the count."""
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        return await self._read_until(partitions, handle, last_wanted=None)

    async def read_ranges(
        self,
        ranges: dict[TopicPartition, tuple[int, int]],
        handle: Callable[[ConsumerRecord], None],
    ) -> int:
        """Feed records from each partition's first to last wanted offset (or its end)."""
        partitions = list(ranges)
        self._consumer.assign(partitions)
        for tp, (first, _) in ranges.items():
            self._consumer.seek(tp, first)
        return await self._read_until(
            partitions, handle, last_wanted={tp: last for tp, (_, last) in ranges.items()}
        )

    async def poll(self, timeout_ms: int) -> list[ConsumerRecord]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        return [record for batch in batches.values() for record in batch]

    async def _read_until(
        self,
        partitions: list[TopicPartition],
        handle: Callable[[ConsumerRecord], None],
        last_wanted: dict[TopicPartition, int] | None,
    ) -> int:
        count = 0
        last_progress = time.monotonic()
        pending = set(partitions)
        while pending:
            batches = await self._consumer.getmany(*pending, timeout_ms=200)
            for batch in batches.values():
                for record in batch:
                    handle(record)
                    count += 1
            if batches:
                last_progress = time.monotonic()
            for tp in list(pending):
                position = await self._consumer.position(tp)
                highwater = self._consumer.highwater(tp)  # None until a fetch answered for tp
                if highwater is not None and position >= highwater:
                    pending.discard(tp)
                elif last_wanted is not None and position > last_wanted[tp]:
                    pending.discard(tp)
            if pending and time.monotonic() - last_progress > STALL_TIMEOUT_S:
                raise DlqError(
                    f"reading {partitions[0].topic} stalled for {STALL_TIMEOUT_S:.0f} s "
                    f"at {self._bootstrap}",
                    EXIT_FAILED,
                )
        return count


def _dead_letter_reader(settings: Settings) -> _DeadLetterReader:
    return _DeadLetterReader(settings)


# --- output --------------------------------------------------------------------------------

_COLUMNS: list[tuple[str, int]] = [
    ("FAILED AT", 24),
    ("DLQ P:O", 9),
    ("STAGE", 8),
    ("TRY", 3),
    ("EXCEPTION", 44),
    ("ORIGINAL", 36),
    ("KEY", 20),
    ("VALUE", 0),  # last column: not padded, the preview is already cut
]


def _fit(text: str, width: int) -> str:
    if width == 0:
        return text
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.ljust(width)


def _table_line(cells: list[str]) -> str:
    return "  ".join(_fit(cell, width) for cell, (_, width) in zip(cells, _COLUMNS, strict=True))


def _short_class(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def table_row(view: DeadLetterView) -> str:
    exception = _short_class(view.exception_class)
    if view.exception_message:
        exception = f"{exception}: {view.exception_message}"
    return _table_line(
        [
            view.failed_at,
            view.position,
            view.stage,
            "?" if view.attempts is None else str(view.attempts),
            exception,
            view.original,
            "<null>" if view.key is None else view.key,
            view.value_preview,
        ]
    )


TABLE_HEADER = _table_line([name for name, _ in _COLUMNS])


class _Printer:
    """Table (header printed before the first row) or JSON lines, flushed row by row."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self._out = out
        self._as_json = as_json
        self._header_done = False
        self.waiting_noted = False

    def row(self, view: DeadLetterView) -> None:
        if self._as_json:
            line = json.dumps(view.as_json(), ensure_ascii=False)
        else:
            if not self._header_done:
                print(TABLE_HEADER.rstrip(), file=self._out)
                self._header_done = True
            line = table_row(view).rstrip()
        print(line, file=self._out, flush=True)


def _record_order(record: ConsumerRecord) -> tuple[int, int, int]:
    return (record.timestamp, record.partition, record.offset)


def _fail(err: TextIO, exc: DlqError) -> int:
    return fail(f"error: {exc}", exc.exit_code, err=err)
