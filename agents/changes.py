"""Booking changes agent: decode -> lifecycle core -> one unit of work -> publish."""

from __future__ import annotations

import faust

from models.events import BookingChange
from services.changes import ChangePolicy, apply_changes
from storage.intake import SourceMessage
from streams.guard import BatchGuard, guarded_agent
from streams.runtime import Runtime

NAME = "booking-changes"


def register(app: faust.App, rt: Runtime, topic: faust.TopicT, policy: ChangePolicy) -> None:
    async def handle(changes: list[BookingChange], sources: list[SourceMessage]) -> None:
        # A change parked for its restaurant keeps its message, to be dead-lettered as itself.
        by_event = {c.event_id: s for c, s in zip(changes, sources, strict=True)}
        with rt.metrics.stage_seconds.labels(agent=NAME, stage="transaction").time():
            async with (await rt.database()).transaction() as uow:
                result = await apply_changes(uow, changes, policy, sources=by_event)
        rt.metrics.duplicates.inc(result.duplicates)
        with rt.metrics.stage_seconds.labels(agent=NAME, stage="publish").time():
            await rt.publish_committed(result.rows)

    guarded_agent(
        app,
        topic,
        BatchGuard(rt, NAME, BookingChange, handle, key_field="booking_id", with_sources=True),
        batch_size=rt.settings.batch_size,
        within_s=rt.settings.batch_within_s,
    )
