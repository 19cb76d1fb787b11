"""Restaurant configuration agent: compacted topic -> PostgreSQL (+ release parked changes)."""

from __future__ import annotations

import faust

from models.restaurant import RestaurantConfig
from services.changes import ChangePolicy
from services.restaurants import apply_restaurant
from streams.guard import BatchGuard, guarded_agent
from streams.runtime import Runtime

# Configurations are few and large: smaller batches than changes.
BATCH_SIZE = 100


def register(app: faust.App, rt: Runtime, topic: faust.TopicT, policy: ChangePolicy) -> None:
    """`policy`: how the changes parked for a restaurant are applied when it arrives."""

    async def handle(configs: list[RestaurantConfig]) -> None:
        rows = []
        async with (await rt.database()).transaction() as uow:
            for cfg in configs:  # in order: a newer record for a restaurant replaces the old
                rows += await apply_restaurant(uow, cfg, policy)
        await rt.publish_committed(rows)

    guarded_agent(
        app,
        topic,
        BatchGuard(rt, "restaurants", RestaurantConfig, handle, key_field="restaurant_id"),
        batch_size=BATCH_SIZE,
        within_s=rt.settings.batch_within_s,
    )
