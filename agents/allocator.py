"""Allocator agent: requests keyed by restaurant, so one writer decides per restaurant."""

from __future__ import annotations

import faust

from models.events import AllocationRequest
from services.allocation import AllocationPolicy, run_requests
from streams.guard import BatchGuard, guarded_agent
from streams.runtime import Runtime

NAME = "allocation-requests"


def register(app: faust.App, rt: Runtime, topic: faust.TopicT, policy: AllocationPolicy
             ) -> None:
    async def handle(requests: list[AllocationRequest]) -> None:
        with rt.metrics.stage_seconds.labels(agent=NAME, stage="transaction").time():
            async with (await rt.database()).transaction() as uow:
                result = await run_requests(uow, requests, policy)
        rt.metrics.allocations.labels(result="confirmed").inc(result.confirmed)
        rt.metrics.allocations.labels(result="failed").inc(result.failed)
        rt.metrics.allocations.labels(result="stale").inc(result.stale)
        with rt.metrics.stage_seconds.labels(agent=NAME, stage="publish").time():
            await rt.publish_committed(result.rows)

    guarded_agent(
        app,
        topic,
        BatchGuard(rt, NAME, AllocationRequest, handle, key_field="restaurant_id"),
        batch_size=rt.settings.batch_size,
        within_s=rt.settings.batch_within_s,
    )
