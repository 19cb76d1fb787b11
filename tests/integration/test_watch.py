"""`seatflow watch` (docs/interface.md §8) as a person runs it, against a real worker."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import dataclass, field

import pytest

from config.settings import Settings
from devstack import free_port
from tests.integration.conftest import Harness, restaurant
from tests.support.cli import env_for, seatflow_async
from tests.support.workers import REPO_ROOT, SEATFLOW_BIN

pytestmark = pytest.mark.integration

DAY = "2031-12-06"


@dataclass
class Watch:
    """A running `seatflow watch`; its stdout lines as they arrive."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings, *args: str) -> Watch:
        process = await asyncio.create_subprocess_exec(
            str(SEATFLOW_BIN), "watch", *args, env=env_for(settings), cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        watch = cls(process)
        # "watching …" on stderr: anything published from now on is shown.
        await watch._until_err(lambda line: line.startswith("watching "), timeout=30)
        return watch

    async def _until_err(self, done, timeout: float) -> None:  # type: ignore[no-untyped-def]
        assert self.process.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(self.process.stderr.readline(),
                                         max(0.1, deadline - time.monotonic()))
            if not raw:
                raise AssertionError(f"watch exited: {self.err}")
            self.err.append(raw.decode().rstrip("\n"))
            if done(self.err[-1]):
                return
        raise AssertionError(f"watch never got ready: {self.err}")

    async def until(self, *wanted: str, timeout: float = 20.0) -> list[str]:
        """Lines until each of `wanted` is in one of them (AssertionError at the deadline)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while not all(any(w in line for line in self.lines) for w in wanted):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"watch never showed {wanted}; it showed {self.lines}")
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), left)
            except TimeoutError:
                continue
            if not raw:
                raise AssertionError(f"watch exited; it showed {self.lines}")
            self.lines.append(raw.decode().rstrip("\n"))
        return self.lines

    async def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(self.process.communicate(), 15)
        self.lines.extend(out.decode().splitlines())
        self.err.extend(err.decode().splitlines())
        assert self.process.returncode is not None
        return self.process.returncode


async def send(h: Harness, rid: str, *extra: str) -> str:
    run = await seatflow_async(h.settings, "bookings", "send", "--restaurant", rid, "--date", DAY,
                               "--time", "19:00", "--party", "2", *extra)
    assert run.code == 0, run
    return run.last_line


async def test_watch_shows_a_booking_confirm_and_its_email_then_ctrl_c_is_exit_0(
    prompt_harness: Harness,
) -> None:
    h = prompt_harness
    rid = h.ids("r")
    await h.publish_restaurant(restaurant(rid))
    watch = await Watch.start(h.settings)
    try:
        bid = await send(h, rid, "--email", "ada@example.com")
        lines = await watch.until(f"{bid} ", "booking.confirmed", "email confirmed")
    finally:
        code = await watch.interrupt()
    ours = [line for line in lines if f" {bid} " in line]
    assert any("booking.pending" in line and " pending " in line for line in ours)
    confirmed = next(line for line in ours if "booking.confirmed" in line)
    booking = h.booking(bid)
    assert booking is not None
    assert f"tables {','.join(booking['table_ids'])}" in confirmed
    email = next(line for line in ours if "email confirmed" in line)
    assert "queued" in email and "to ada@example.com" in email
    assert all("\x1b" not in line for line in lines)  # piped: no colour
    assert code == 0
    assert not any("Traceback" in line for line in watch.err)


async def test_records_from_before_watch_started_need_from_beginning(
    prompt_harness: Harness,
) -> None:
    h = prompt_harness
    rid = h.ids("r")
    await h.publish_restaurant(restaurant(rid))
    old = await send(h, rid)
    await h.wait_booking(old, lambda b: b["status"] == "confirmed")
    await h.topic_values("booking_status", key=old, min_count=1)

    watch = await Watch.start(h.settings)
    everything = await Watch.start(h.settings, "--from-beginning", "--booking", old)
    try:
        new = await send(h, rid)
        await watch.until(f"{new} ", "booking.confirmed")
        await everything.until(f"{old} ", "booking.confirmed")
    finally:
        await watch.interrupt()
        await everything.interrupt()
    assert not any(f" {old} " in line for line in watch.lines)
    assert all(f" {old} " in line for line in everything.lines)


async def test_json_lines_carry_the_topic_and_the_record(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid = h.ids("r")
    await h.publish_restaurant(restaurant(rid))
    watch = await Watch.start(h.settings, "--json")
    try:
        bid = await send(h, rid, "--email", "grace@example.com")
        await watch.until(f'"booking_id": "{bid}"', '"booking.confirmed"', '"kind": "confirmed"')
    finally:
        await watch.interrupt()
    objects = [json.loads(line) for line in watch.lines]
    ours = [o for o in objects if o.get("booking_id") == bid]
    names = h.worker.topics
    confirmed = next(o for o in ours if o.get("type") == "booking.confirmed")
    assert confirmed["topic"] == names.booking_status and confirmed["status"] == "confirmed"
    mail = next(o for o in ours if o.get("kind") == "confirmed")
    assert mail["topic"] == names.notifications and mail["to"] == "grace@example.com"


async def test_a_dead_letter_is_shown(prompt_harness: Harness) -> None:
    h = prompt_harness
    key = h.ids("garbage")
    watch = await Watch.start(h.settings, "--booking", key)
    try:
        from producers.publisher import Publisher

        async with Publisher(h.settings) as publisher:
            await publisher.publish_raw(h.worker.topics.booking_changes, key.encode(),
                                        b"{this is not json")
        lines = await watch.until("dead letter (decode)")
    finally:
        await watch.interrupt()
    [line] = lines
    assert key in line and f"from {h.worker.topics.booking_changes}[" in line


async def test_an_unreachable_broker_is_exit_1_naming_it(settings: Settings) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    run = await seatflow_async(settings, "watch", SEATFLOW_KAFKA_BOOTSTRAP=nowhere, timeout=60)
    assert run.code == 1, run
    assert run.err.startswith("broker: ") and nowhere in run.err and "Traceback" not in run.err
