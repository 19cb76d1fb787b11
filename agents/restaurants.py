"""Restaurant configuration agent: compacted topic -> PostgreSQL (+ release parked changes)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import faust

from agents.changes import NAME as CHANGES_AGENT
from agents.housekeeping import relay_dead_letter_backlog
from models.restaurant import RestaurantConfig
from services.changes import ChangePolicy
from services.restaurants import FailedParkedChange, apply_restaurant
from storage.dead_letters import RefusedDeadLetter
from storage.intake import SourceMessage
from storage.outbox import OutboxRow
from streams.deadletter import build_dead_letter
from streams.guard import BatchGuard, Poison, backlog_row, dead_letter_ops_row, guarded_agent
from streams.runtime import Runtime

log = logging.getLogger(__name__)

# Configurations are few and large: smaller batches than changes.
BATCH_SIZE = 100
# Why a released change's dead letter sits in the backlog: the relay publishes it right
# after the configuration commits (and again on its timer if that fails).
RELEASED_NOT_YET_PUBLISHED = "released with its restaurant's configuration; not published yet"


def register(app: faust.App, rt: Runtime, topic: faust.TopicT, policy: ChangePolicy) -> None:
    """`policy`: how the changes parked for a restaurant are applied when it arrives."""

    async def handle(configs: list[RestaurantConfig]) -> None:
        rows: list[OutboxRow] = []
        failed: list[FailedParkedChange] = []
        async with (await rt.database()).transaction() as uow:
            for cfg in configs:  # in order: a newer record for a restaurant replaces the old
                result = await apply_restaurant(uow, cfg, policy)
                rows += result.rows
                failed += result.failed
            if failed:
                # With the configuration, in one transaction: a released change that failed
                # is never lost, and never blamed on the configuration.
                letters, notes = _dead_letters(rt, failed)
                await uow.dead_letters.add(letters)
                rows += await uow.outbox.add(notes)
        await rt.publish_committed(rows)
        if failed:
            try:
                await relay_dead_letter_backlog(rt)
            except Exception:  # noqa: BLE001 - stored; the relay's timer tries again
                log.exception("restaurants: publishing released changes' dead letters failed")

    guarded_agent(
        app,
        topic,
        BatchGuard(rt, "restaurants", RestaurantConfig, handle, key_field="restaurant_id"),
        batch_size=BATCH_SIZE,
        within_s=rt.settings.batch_within_s,
    )


def _dead_letters(rt: Runtime, failed: list[FailedParkedChange]
                  ) -> tuple[list[RefusedDeadLetter], list[OutboxRow]]:
    now = datetime.now(UTC)
    letters, notes = [], []
    for f in failed:
        poison = Poison(f.change.source or _stand_in(rt, f), "process", f.error)
        src = poison.source
        log.warning("restaurants: released change %s[%d]@%d failed at stage process (%s);"
                    " dead-lettering it", src.topic, src.partition, src.offset,
                    type(f.error).__name__, extra={"booking_id": f.change.booking_id})
        letter = build_dead_letter(src, poison.stage, f.error, now)
        letters.append(backlog_row(poison, letter, RELEASED_NOT_YET_PUBLISHED))
        notes.append(dead_letter_ops_row(poison, None, now, "booking_id",
                                         restaurant_id=f.change.restaurant_id))
        rt.metrics.dead_letters.labels(topic=CHANGES_AGENT, stage=poison.stage).inc()
    return letters, notes


def _stand_in(rt: Runtime, f: FailedParkedChange) -> SourceMessage:
    """A change parked before its message was kept (an older version): its JSON, keyed by
    its booking; partition -1 and the parked row's number stand for the unknown offset."""
    return SourceMessage(
        rt.topics.booking_changes, -1, f.change.seq or 0, None,
        f.change.booking_id.encode(), json.dumps(f.change.payload).encode(),
    )
