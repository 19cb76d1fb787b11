"""Restaurant configuration agent: compacted topic -> PostgreSQL (+ release parked changes)."""

from __future__ import annotations

import faust

from agents.changes import change_policy
from models.restaurant import RestaurantConfig
from services.restaurants import apply_restaurant
from streams.app import input_topic
from streams.guard import BatchGuard, guarded_agent
from streams.runtime import Runtime


def register(app: faust.App, rt: Runtime) -> None:
    topic = input_topic(app, rt.topics.restaurants, **{"cleanup.policy": "compact"})
    policy = change_policy(rt)

    async def handle(configs: list[RestaurantConfig]) -> None:
        pool = await rt.db()
        rows = []
        async with pool.acquire() as conn, conn.transaction():
            for cfg in configs:  # in order: a newer record for a restaurant replaces the old
                rows += await apply_restaurant(conn, cfg, policy)
        await rt.publish_and_forget(rows)

    guarded_agent(
        app,
        topic,
        BatchGuard(rt, "restaurants", RestaurantConfig, handle, key_field="restaurant_id"),
        batch_size=100,
        within_s=rt.settings.batch_within_s,
    )
