"""Graceful shutdown (issue: scale-out and crash safety): SIGTERM mid-stream hands the
in-flight work back; a new worker finishes it; nothing lost, nothing applied twice."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from producers.publisher import Publisher, make_change
from tests.integration.conftest import restaurant
from tests.support.kafka import json_values, read_topic
from tests.support.workers import WorkerProcess

BOOKINGS = 1000
SIGTERM_DEADLINE_S = 20.0


async def test_sigterm_mid_stream_exits_in_bounded_time_and_loses_nothing(
    start_worker: Any, tmp_path: Any
) -> None:
    first: WorkerProcess = start_worker()
    settings = first.settings
    changes = [
        make_change(
            "booking.created", f"g-{i}", "r-shutdown", booking_date=f"2030-07-{1 + i % 28:02d}",
            start_time=f"{17 + i % 5}:00", party_size=2, customer_name="G",
        )
        for i in range(BOOKINGS)
    ]
    async with Publisher(settings) as pub:
        await pub.publish_restaurant(restaurant("r-shutdown", tables=20))
        await pub.flush()
        for c in changes:
            await pub.publish_change(c)
        await pub.flush()

    conn = await asyncpg.connect(settings.database_url)
    try:
        # Stop while the stream is being worked through.
        deadline = time.monotonic() + 30
        while await conn.fetchval("SELECT count(*) FROM processed_events") < 20:
            assert time.monotonic() < deadline, "worker never started processing"
            await asyncio.sleep(0.05)
        started = time.monotonic()
        code = await asyncio.to_thread(first.stop, timeout=SIGTERM_DEADLINE_S + 5)
        took = time.monotonic() - started
        assert code == 0, f"worker exit code {code}; log:\n{first.log_tail()}"
        assert took < SIGTERM_DEADLINE_S, f"SIGTERM took {took:.1f} s"
        done_at_stop = await conn.fetchval("SELECT count(*) FROM processed_events")

        second = WorkerProcess(settings, tmp_path / "second.log").start()
        try:
            deadline = time.monotonic() + 60
            while await conn.fetchval(
                "SELECT count(*) FROM bookings WHERE status = 'confirmed'"
            ) < BOOKINGS:
                assert time.monotonic() < deadline, second.log_tail()
                await asyncio.sleep(0.2)
        finally:
            second.stop()
        assert await conn.fetchval("SELECT count(*) FROM processed_events") == BOOKINGS
    finally:
        await conn.close()

    statuses = json_values(await read_topic(
        settings.kafka_bootstrap, first.topics.booking_status, min_count=2 * BOOKINGS))
    confirmed = {s["event_id"]: s for s in statuses if s["type"] == "booking.confirmed"}
    # One confirmation per booking (a republished one carries the same event_id).
    assert len(confirmed) == BOOKINGS
    assert {s["booking_id"] for s in confirmed.values()} == {c.booking.booking_id for c in changes}
    assert done_at_stop < BOOKINGS, "the worker finished before SIGTERM: not a mid-stream stop"
