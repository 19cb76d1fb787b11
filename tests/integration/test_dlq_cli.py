"""`seatflow dlq tail` / `seatflow dlq replay` (docs/interface.md §5, §8) against the real broker.

Dead letters are built with `build_dead_letter` (what the agents publish) and written to the
test's own dead-letters topic at chosen partitions, so their `P:O` positions are known.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import signal
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config.settings import Settings
from config.topics import TopicNames
from seatflow import dlq
from streams.deadletter import SourceMessage, build_dead_letter, header_text
from tests.support.kafka import read_topic
from tests.support.workers import SEATFLOW_BIN, settings_env

pytestmark = pytest.mark.integration

DEAD_LETTER_PARTITIONS = 3
ORIGINAL_PARTITIONS = 2
BASE_TIMESTAMP_MS = 1_795_284_000_000
NOW = datetime(2026, 11, 21, 18, 0, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Published:
    position: str  # "P:O" in the dead-letters topic
    key: bytes | None
    value: bytes | None
    exception: str


@dataclass
class Output:
    code: int
    out: str
    err: str


async def create_topics(settings: Settings, *names: tuple[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name, partitions in names])
    finally:
        await admin.close()


async def topic_exists(settings: Settings, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()


async def publish_dead_letters(
    settings: Settings, letters: list[tuple[SourceMessage, BaseException]], *, first_index: int = 0
) -> list[Published]:
    """Publish as an agent would (original key), round-robin over partitions, with increasing
    record timestamps so "the last N" is well defined."""
    topic = TopicNames(settings.topic_prefix).dead_letters
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=False
    )
    await producer.start()
    published = []
    try:
        for i, (src, exc) in enumerate(letters, start=first_index):
            letter = build_dead_letter(src, "decode", exc, NOW)
            meta = await producer.send_and_wait(
                topic,
                letter.value,
                key=letter.key,
                headers=letter.headers,
                partition=i % DEAD_LETTER_PARTITIONS,
                timestamp_ms=BASE_TIMESTAMP_MS + i,
            )
            published.append(
                Published(f"{meta.partition}:{meta.offset}", letter.key, letter.value, str(exc))
            )
    finally:
        await producer.stop()
    return published


def source(
    settings: Settings, i: int, value: bytes | None, key: bytes | None = None
) -> SourceMessage:
    return SourceMessage(
        topic=TopicNames(settings.topic_prefix).booking_changes,
        partition=i % ORIGINAL_PARTITIONS,
        offset=100 + i,
        timestamp_ms=BASE_TIMESTAMP_MS + i,
        key=key if key is not None else f"b-{i}".encode(),
        value=value,
        headers=[],
    )


VALUES: list[bytes] = [
    b'{"schema_version": 1, "type": "booking.created"',  # truncated JSON
    b"\xff\xfe\x00 not utf-8",
    b'{"type": "booking.teleported"}\n',
    b"plain text with a\ttab",
    b'{"party_size": 0}',
]


@pytest.fixture
async def dead_letters(settings: Settings) -> list[Published]:
    names = TopicNames(settings.topic_prefix)
    await create_topics(
        settings,
        (names.dead_letters, DEAD_LETTER_PARTITIONS),
        (names.booking_changes, ORIGINAL_PARTITIONS),
    )
    letters: list[tuple[SourceMessage, BaseException]] = [
        (source(settings, i, value), ValueError(f"bad input number {i}\nsecond line"))
        for i, value in enumerate(VALUES)
    ]
    return await publish_dead_letters(settings, letters)


async def run_tail(settings: Settings, **kwargs: object) -> Output:
    out, err = io.StringIO(), io.StringIO()
    code = await dlq.tail_async(settings, out=out, err=err, **kwargs)  # type: ignore[arg-type]
    return Output(code, out.getvalue(), err.getvalue())


async def run_replay(settings: Settings, **kwargs: object) -> Output:
    out, err = io.StringIO(), io.StringIO()
    code = await dlq.replay_async(settings, out=out, err=err, **kwargs)  # type: ignore[arg-type]
    return Output(code, out.getvalue(), err.getvalue())


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {name: raw.decode() for name, raw in record.headers}


# --- tail ----------------------------------------------------------------------------------


async def test_tail_without_topic_says_no_dead_letters_and_creates_nothing(
    settings: Settings,
) -> None:
    result = await run_tail(settings)

    assert result.code == 0
    assert result.out == ""
    assert "no dead letters" in result.err
    assert not await topic_exists(settings, TopicNames(settings.topic_prefix).dead_letters)


async def test_tail_table_shows_every_dead_letter(
    settings: Settings, dead_letters: list[Published]
) -> None:
    result = await run_tail(settings)

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split()[:3] == ["FAILED", "AT", "DLQ"]
    rows = lines[1:]
    assert len(rows) == len(VALUES)
    changes = TopicNames(settings.topic_prefix).booking_changes
    for i, (row, letter) in enumerate(zip(rows, dead_letters, strict=True)):
        assert row.startswith("2026-11-21T18:00:05.000Z")
        assert f"  {letter.position} " in row
        assert "decode" in row
        assert f"ValueError: bad input number {i} | second line" in row
        assert f"{changes}[{i % ORIGINAL_PARTITIONS}]@{100 + i}" in row
        assert f"b-{i}" in row
    # value previews are escaped, one line each
    assert rows[1].endswith("\\xff\\xfe\\x00 not utf-8")
    assert rows[2].endswith('{"type": "booking.teleported"}\\n')
    assert rows[3].endswith("plain text with a\\ttab")
    assert f"{len(VALUES)} of {len(VALUES)} dead letter(s)" in result.err


async def test_tail_json_has_all_fields_and_the_exact_bytes(
    settings: Settings, dead_letters: list[Published]
) -> None:
    result = await run_tail(settings, as_json=True)

    assert result.code == 0, result.err
    objects = [json.loads(line) for line in result.out.splitlines()]
    assert [o["dead_letter"] for o in objects] == [d.position for d in dead_letters]
    for i, (obj, letter) in enumerate(zip(objects, dead_letters, strict=True)):
        raw = (
            obj["value"].encode()
            if obj["value"] is not None
            else base64.b64decode(obj["value_base64"])
        )
        assert raw == letter.value
        assert obj["key"] == f"b-{i}"
        assert obj["stage"] == "decode"
        assert obj["exception_class"] == "ValueError"
        assert obj["exception_message"] == f"bad input number {i} | second line"
        assert obj["original_topic"] == TopicNames(settings.topic_prefix).booking_changes
        assert (obj["original_partition"], obj["original_offset"]) == (i % 2, 100 + i)
        assert obj["attempts"] == 1
        assert obj["failed_at"] == "2026-11-21T18:00:05.000Z"
    assert objects[1]["value"] is None  # not UTF-8: only base64 is exact


async def test_tail_limit_shows_the_last_n(
    settings: Settings, dead_letters: list[Published]
) -> None:
    result = await run_tail(settings, as_json=True, limit=2)

    assert result.code == 0, result.err
    positions = [json.loads(line)["dead_letter"] for line in result.out.splitlines()]
    assert positions == [d.position for d in dead_letters[-2:]]
    assert f"2 of {len(VALUES)}" in result.err


async def test_tail_follow_through_the_cli_prints_new_dead_letters_until_ctrl_c(
    settings: Settings, dead_letters: list[Published]
) -> None:
    process = await asyncio.create_subprocess_exec(
        str(SEATFLOW_BIN),
        "dlq",
        "tail",
        "--follow",
        "--json",
        "--limit",
        "1",
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=20))
        assert first["dead_letter"] == dead_letters[-1].position

        [late] = await publish_dead_letters(
            settings,
            [(source(settings, 9, b"late arrival"), RuntimeError("late"))],
            first_index=len(dead_letters),
        )
        second = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=10))
        assert second["dead_letter"] == late.position
        assert second["value"] == "late arrival"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
    assert process.returncode == 0, stderr.decode()


# --- replay --------------------------------------------------------------------------------


async def test_replay_one_offset_republishes_the_original_bytes_with_replay_headers(
    settings: Settings, dead_letters: list[Published]
) -> None:
    chosen = dead_letters[1]  # the non-UTF-8 one

    result = await run_replay(settings, offsets=[chosen.position])

    assert result.code == 0, result.err
    assert "replayed 1 dead letter(s)" in result.out
    changes = TopicNames(settings.topic_prefix).booking_changes
    [record] = await read_topic(settings.kafka_bootstrap, changes, min_count=1, timeout=10)
    assert record.key == chosen.key
    assert record.value == chosen.value
    assert headers_of(record) == {
        "x-dlq-replay": "true",
        "x-dlq-attempts": "1",
        "x-dlq-replayed-from": chosen.position,
    }

    # The replayed message failing again becomes a dead letter with one more attempt.
    again = build_dead_letter(
        SourceMessage(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp,
            record.key,
            record.value,
            list(record.headers),
        ),
        "process",
        RuntimeError("still broken"),
        NOW,
    )
    assert header_text(again.headers, "x-dlq-attempts") == "2"


async def test_replay_all_republishes_every_dead_letter(
    settings: Settings, dead_letters: list[Published]
) -> None:
    result = await run_replay(settings, all_=True)

    assert result.code == 0, result.err
    assert f"replayed {len(VALUES)} dead letter(s)" in result.out
    changes = TopicNames(settings.topic_prefix).booking_changes
    records = await read_topic(settings.kafka_bootstrap, changes, min_count=len(VALUES))
    assert len(records) == len(VALUES)
    by_origin = {headers_of(r)["x-dlq-replayed-from"]: r for r in records}
    assert set(by_origin) == {d.position for d in dead_letters}
    for letter in dead_letters:
        record = by_origin[letter.position]
        assert (record.key, record.value) == (letter.key, letter.value)
        assert headers_of(record)["x-dlq-replay"] == "true"
    # the dead-letters topic itself is untouched
    dead = await read_topic(
        settings.kafka_bootstrap, TopicNames(settings.topic_prefix).dead_letters
    )
    assert len(dead) == len(VALUES)


async def test_dry_run_lists_and_sends_nothing(
    settings: Settings, dead_letters: list[Published]
) -> None:
    result = await run_replay(settings, all_=True, dry_run=True)

    assert result.code == 0, result.err
    listed = [line for line in result.out.splitlines() if line.startswith("would replay ")]
    assert sorted(line.split()[2] for line in listed) == sorted(d.position for d in dead_letters)
    assert f"would replay {len(VALUES)} dead letter(s)" in result.out
    assert "nothing sent" in result.out
    changes = TopicNames(settings.topic_prefix).booking_changes
    assert await read_topic(settings.kafka_bootstrap, changes, timeout=3) == []


@pytest.mark.parametrize(
    ("offsets", "message"),
    [
        (["banana"], "bad --offset 'banana'"),
        (["1:-3"], "bad --offset"),
        (["0:999"], "no dead letter at 0:999"),
        (["7:0"], "no dead letter at 7:0"),
        ([], "nothing selected"),
    ],
)
async def test_bad_selection_is_a_one_line_error_and_sends_nothing(
    settings: Settings, dead_letters: list[Published], offsets: list[str], message: str
) -> None:
    # a good offset alongside a bad one must not be sent either
    selection = [dead_letters[0].position, *offsets] if offsets else []

    result = await run_replay(settings, offsets=selection)

    assert result.code == 2
    assert result.err.count("\n") == 1 and result.err.startswith("error: ")
    assert message in result.err
    changes = TopicNames(settings.topic_prefix).booking_changes
    assert await read_topic(settings.kafka_bootstrap, changes, timeout=3) == []


async def test_replay_without_dead_letters_topic(settings: Settings) -> None:
    dead_letters_topic = TopicNames(settings.topic_prefix).dead_letters

    by_offset = await run_replay(settings, offsets=["0:0"])
    assert by_offset.code == 2
    assert f"{dead_letters_topic} does not exist" in by_offset.err
    assert by_offset.err.count("\n") == 1

    everything = await run_replay(settings, all_=True)
    assert everything.code == 0
    assert "no dead letters" in everything.out
    assert not await topic_exists(settings, dead_letters_topic)


async def test_dead_letter_whose_original_topic_is_gone(
    settings: Settings, dead_letters: list[Published]
) -> None:
    gone_topic = f"{settings.topic_prefix}gone"
    orphan = SourceMessage(gone_topic, 0, 5, BASE_TIMESTAMP_MS, b"b-orphan", b"{}", [])
    [orphaned] = await publish_dead_letters(
        settings, [(orphan, RuntimeError("x"))], first_index=len(dead_letters)
    )
    changes = TopicNames(settings.topic_prefix).booking_changes

    # Chosen by offset, the whole selection is refused: nothing is sent.
    chosen = await run_replay(settings, offsets=[dead_letters[0].position, orphaned.position])
    assert chosen.code == 2
    assert f"original topic {gone_topic} does not exist" in chosen.err
    assert await read_topic(settings.kafka_bootstrap, changes, timeout=3) == []

    # With --all the others go; the orphan is reported and the exit code says "partial".
    everything = await run_replay(settings, all_=True)
    assert everything.code == 1
    assert f"skipping dead letter {orphaned.position}" in everything.err
    assert f"replayed {len(dead_letters)} dead letter(s)" in everything.out
    assert "1 skipped" in everything.out
    records = await read_topic(settings.kafka_bootstrap, changes, min_count=len(dead_letters))
    assert len(records) == len(dead_letters)
    # replay never creates a topic by producing to it
    assert not await topic_exists(settings, gone_topic)
