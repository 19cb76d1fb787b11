"""Store a restaurant configuration and apply the booking changes that waited for it."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from domain.model import OpsNote
from models.events import BookingChange
from models.restaurant import RestaurantConfig
from services import outbox
from services.changes import ChangePolicy, apply_changes
from services.outbox import OutboxRow
from storage import repository as repo


async def apply_restaurant(
    conn: asyncpg.Connection, cfg: RestaurantConfig, policy: ChangePolicy
) -> list[OutboxRow]:
    """Inside the caller's transaction. The exclusive advisory lock makes a concurrent change
    either see the restaurant or finish parking before we look for parked changes."""
    now = datetime.now(UTC)
    await repo.lock_restaurant_exclusive(conn, cfg.restaurant_id)
    await repo.upsert_restaurant(conn, cfg)
    waiting = [BookingChange.model_validate(p) for p in await repo.take_parked(conn, cfg.restaurant_id)]
    rows = []
    if waiting:
        result = await apply_changes(conn, waiting, policy, now=now)
        rows = result.rows
    note = OpsNote(
        "restaurant.configured",
        "info",
        {"tables": len(cfg.tables), "released_parked_changes": len(waiting)},
    )
    return rows + await outbox.insert(conn, [outbox.ops_row(note, now, restaurant_id=cfg.restaurant_id)])
