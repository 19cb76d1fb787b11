"""Store a restaurant configuration and apply the booking changes that waited for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from domain.model import OpsNote
from models.events import BookingChange
from models.restaurant import RestaurantConfig
from services import outbox
from services.changes import ChangePolicy, apply_changes
from storage import db
from storage.intake import ParkedChange
from storage.outbox import OutboxRow
from storage.uow import UnitOfWork


@dataclass(frozen=True)
class FailedParkedChange:
    """A released change that could not be applied: it is dead-lettered as itself."""

    change: ParkedChange
    error: Exception


@dataclass
class RestaurantResult:
    rows: list[OutboxRow] = field(default_factory=list)
    failed: list[FailedParkedChange] = field(default_factory=list)


async def apply_restaurant(
    uow: UnitOfWork, cfg: RestaurantConfig, policy: ChangePolicy
) -> RestaurantResult:
    """Inside the caller's unit of work. The exclusive advisory lock makes a concurrent
    change either see the restaurant or finish parking before we look for parked changes.

    A released change that fails (as it would have failed had the restaurant been there)
    is undone alone and returned in `failed`; the configuration and the other changes stay.
    """
    now = datetime.now(UTC)
    await uow.restaurants.lock_exclusive(cfg.restaurant_id)
    await uow.restaurants.save(cfg)
    waiting = await uow.intake.take_parked(cfg.restaurant_id)
    result = RestaurantResult()
    if waiting:
        result = await _release(uow, waiting, policy, now)
    note = OpsNote(
        "restaurant.configured",
        "info",
        {"tables": len(cfg.tables), "released_parked_changes": len(waiting),
         "failed_parked_changes": len(result.failed)},
    )
    result.rows += await uow.outbox.add(
        [outbox.ops_row(note, now, restaurant_id=cfg.restaurant_id)]
    )
    return result


async def _release(uow: UnitOfWork, waiting: list[ParkedChange], policy: ChangePolicy,
                   now: datetime) -> RestaurantResult:
    """All together first; if that fails, one by one in order (as the agents' guard narrows a
    batch), each undone alone if it fails. Transient database errors fail the whole unit."""
    try:
        async with uow.savepoint():
            applied = await apply_changes(uow, [_change(p) for p in waiting], policy, now=now)
        return RestaurantResult(rows=applied.rows)
    except Exception as exc:  # noqa: BLE001 - narrowed below
        if db.is_transient(exc):
            raise
    result = RestaurantResult()
    for parked in waiting:
        try:
            async with uow.savepoint():
                applied = await apply_changes(uow, [_change(parked)], policy, now=now)
            result.rows += applied.rows
        except Exception as exc:  # noqa: BLE001 - any other failure is this change's own
            if db.is_transient(exc):
                raise
            result.failed.append(FailedParkedChange(parked, exc))
    return result


def _change(parked: ParkedChange) -> BookingChange:
    return BookingChange.model_validate(parked.payload)
