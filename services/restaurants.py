"""Store a restaurant configuration and apply the booking changes that waited for it."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.model import OpsNote
from models.events import BookingChange
from models.restaurant import RestaurantConfig
from services import outbox
from services.changes import ChangePolicy, apply_changes
from storage.outbox import OutboxRow
from storage.uow import UnitOfWork


async def apply_restaurant(
    uow: UnitOfWork, cfg: RestaurantConfig, policy: ChangePolicy
) -> list[OutboxRow]:
    """Inside the caller's unit of work. The exclusive advisory lock makes a concurrent
    change either see the restaurant or finish parking before we look for parked changes."""
    now = datetime.now(UTC)
    await uow.restaurants.lock_exclusive(cfg.restaurant_id)
    await uow.restaurants.save(cfg)
    waiting = [BookingChange.model_validate(p)
               for p in await uow.intake.take_parked(cfg.restaurant_id)]
    rows = []
    if waiting:
        result = await apply_changes(uow, waiting, policy, now=now)
        rows = result.rows
    note = OpsNote(
        "restaurant.configured",
        "info",
        {"tables": len(cfg.tables), "released_parked_changes": len(waiting)},
    )
    return rows + await uow.outbox.add(
        [outbox.ops_row(note, now, restaurant_id=cfg.restaurant_id)]
    )
