"""Allocator agent: requests keyed by restaurant, so one writer decides per restaurant."""

from __future__ import annotations

from datetime import timedelta

import faust

from models.events import AllocationRequest
from services.allocation import AllocationPolicy, run_requests
from streams.app import input_topic
from streams.guard import BatchGuard, guarded_agent
from streams.runtime import Runtime


def register(app: faust.App, rt: Runtime) -> None:
    topic = input_topic(app, rt.topics.allocation_requests)
    policy = AllocationPolicy(
        retry_delays_s=rt.settings.retry_delays_s,
        inline_window=timedelta(milliseconds=rt.settings.inline_confirm_window_ms),
        repack=rt.settings.allocation_repack,
    )

    async def handle(requests: list[AllocationRequest]) -> None:
        pool = await rt.db()
        async with pool.acquire() as conn, conn.transaction():
            result = await run_requests(conn, requests, policy)
        rt.metrics.allocations.labels(result="confirmed").inc(result.confirmed)
        rt.metrics.allocations.labels(result="failed").inc(result.failed)
        rt.metrics.allocations.labels(result="stale").inc(result.stale)
        await rt.publish_and_forget(result.rows)

    guarded_agent(
        app,
        topic,
        BatchGuard(rt, "allocation-requests", AllocationRequest, handle,
                   key_field="restaurant_id"),
        batch_size=rt.settings.batch_size,
        within_s=rt.settings.batch_within_s,
    )
