"""Booking changes agent: decode -> lifecycle core -> one transaction -> publish."""

from __future__ import annotations

from datetime import timedelta

import faust

from models.events import BookingChange
from services.changes import ChangePolicy, apply_changes
from streams.app import input_topic
from streams.guard import BatchGuard, guarded_agent
from streams.runtime import Runtime


def change_policy(rt: Runtime) -> ChangePolicy:
    s = rt.settings
    return ChangePolicy(
        auto_assign=s.feature_auto_assign_on_booking,
        inline_window=timedelta(milliseconds=s.inline_confirm_window_ms),
    )


def register(app: faust.App, rt: Runtime) -> None:
    topic = input_topic(app, rt.topics.booking_changes)
    policy = change_policy(rt)

    async def handle(changes: list[BookingChange]) -> None:
        pool = await rt.db()
        async with pool.acquire() as conn, conn.transaction():
            result = await apply_changes(conn, changes, policy)
        rt.metrics.duplicates.inc(result.duplicates)
        await rt.publish_and_forget(result.rows)

    guarded_agent(
        app,
        topic,
        BatchGuard(rt, "booking-changes", BookingChange, handle, key_field="booking_id"),
        batch_size=rt.settings.batch_size,
        within_s=rt.settings.batch_within_s,
    )
