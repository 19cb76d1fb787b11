"""PostgreSQL goes away mid-stream and comes back (docs/interface.md §5, §6): a transient
infrastructure error is waited out, never dead-lettered, and nothing is lost; /health is 503
while the database is unreachable and 200 again once it is back.

This stops the session's shared PostgreSQL server (every test database on it), so it runs
on its own worker and always restarts the server in a `finally`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from devstack import start_postgres
from producers.publisher import Publisher, make_cancel, make_change
from tests.integration.conftest import Harness, restaurant
from tests.support.kafka import read_topic
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.integration

OUTAGE_S = 10.0
FIRST_DAY = date(2031, 3, 3)


async def database_answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        return await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


def stop_postgres(stack: Any) -> None:
    stack.postgres.stop()


def start_postgres_again(stack: Any) -> None:
    # Same data directory, so the same socket and URL; the session fixture stops this handle.
    stack.postgres = start_postgres(stack.postgres.datadir)


class HealthLog:
    """Polls /health every `every_s` in the background; keeps (seconds since start, code)."""

    def __init__(self, worker: WorkerProcess, every_s: float = 0.25) -> None:
        self.worker = worker
        self.every_s = every_s
        self.started = time.monotonic()
        self.seen: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            code, _ = await asyncio.to_thread(self.worker.health)
            self.seen.append((time.monotonic() - self.started, code))
            await asyncio.sleep(self.every_s)

    def start(self) -> HealthLog:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def between(self, start: float, end: float) -> list[int]:
        return [code for at, code in self.seen if start <= at <= end]


async def test_postgres_outage_turns_health_503_dead_letters_nothing_and_loses_nothing(
    start_worker: Callable[..., WorkerProcess], stack: Any,
) -> None:
    w = start_worker(suppress_emails=True)
    h = Harness(w, stack)
    rid = h.ids("r")
    expected: dict[str, str] = {}
    done_publishing = asyncio.Event()

    def booking_id(i: int) -> str:
        return h.ids(f"b{i}")

    def create(i: int) -> Any:
        return make_change(
            "booking.created", booking_id(i), rid,
            booking_date=(FIRST_DAY + timedelta(days=i)).isoformat(), start_time="19:00",
            party_size=2, customer_name="Outage Guest", customer_email=None,
        )

    async def publish_steadily() -> None:
        """A create every 50 ms (every fourth cancels the one before), until told to stop."""
        async with Publisher(w.settings) as pub:
            i = 0
            while not done_publishing.is_set():
                await pub.publish_change(create(i))
                expected[booking_id(i)] = "confirmed"
                if i % 4 == 3:
                    await pub.publish_change(make_cancel(booking_id(i - 1), rid))
                    expected[booking_id(i - 1)] = "cancelled"
                await pub.flush()
                i += 1
                await asyncio.sleep(0.05)

    await h.publish(restaurant(rid, tables=2), create(-1))
    await h.wait_booking(booking_id(-1), lambda b: b["status"] == "confirmed", timeout=30)
    expected[booking_id(-1)] = "confirmed"

    health = HealthLog(w).start()
    publisher = asyncio.get_running_loop().create_task(publish_steadily())
    server_down = False
    try:
        await asyncio.sleep(1.5)
        stopping_at = time.monotonic() - health.started
        await asyncio.to_thread(stop_postgres, stack)
        server_down = True
        down_at = time.monotonic() - health.started
        published_before_outage = len(expected)
        assert not await database_answers(w.settings.database_url), (
            "PostgreSQL still answers after stop (another process holds a pgserver handle?)"
        )
        await asyncio.sleep(OUTAGE_S)
        up_from = time.monotonic() - health.started
        await asyncio.to_thread(start_postgres_again, stack)
        server_down = False
        up_at = time.monotonic() - health.started
        published_by_restart = len(expected)
        await asyncio.sleep(1.5)
    finally:
        done_publishing.set()
        await asyncio.gather(publisher, return_exceptions=True)
        if server_down:
            await asyncio.to_thread(start_postgres_again, stack)
    assert publisher.exception() is None, f"publishing failed: {publisher.exception()!r}"

    # Nothing lost: every booking reaches its final status once the database is back.
    deadline = time.monotonic() + 30
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(w.settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT booking_id, status FROM bookings WHERE booking_id = ANY($1::text[])",
                list(expected),
            )
        finally:
            await conn.close()
        seen = {r["booking_id"]: r["status"] for r in rows}
        if seen == expected:
            break
        await asyncio.sleep(0.5)
    # Healthy again once it caught up.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if await asyncio.to_thread(lambda: w.health()[0]) == 200:
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(0.5)
    await health.stop()

    assert published_by_restart - published_before_outage >= 20, "hardly published while down"
    wrong = {b: (s, seen.get(b)) for b, s in expected.items() if seen.get(b) != s}
    assert not wrong, (
        f"{len(wrong)} of {len(expected)} bookings lost or wrong after the outage: "
        f"{list(wrong.items())[:10]}; worker log: {w.log_tail(15)}"
    )

    during = health.between(down_at + 3.0, up_from)  # a few seconds for the check to notice
    assert during and all(code == 503 for code in during), (
        f"/health while PostgreSQL was down: {during}"
    )
    before = health.between(0, stopping_at - 0.3)
    assert before and all(code == 200 for code in before), f"/health before the outage: {before}"
    assert w.health()[0] == 200, f"/health after recovery: {w.health()}"
    assert health.seen[-1][1] == 200 and health.seen[-1][0] > up_at

    dead = await read_topic(stack.kafka_bootstrap, w.topics.dead_letters, timeout=3)
    assert dead == [], f"dead-lettered during the outage: {[dict(r.headers) for r in dead][:5]}"
