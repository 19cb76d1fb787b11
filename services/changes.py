"""Apply a batch of booking change events in ONE transaction: dedupe, decide, persist, outbox.

Order inside the transaction (the lock order every writer follows, so no deadlocks):
advisory lock per restaurant (shared) -> booking rows (sorted) -> everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from domain.lifecycle import apply_change
from domain.model import BookingState, OpsNote
from domain.privacy import without_personal_data
from domain.walkins import ResolvedContact, resolve_contact
from models.events import BookingChange
from models.restaurant import RestaurantConfig
from services import outbox
from services.decisions import Decided, persist_decisions
from storage.intake import Customer, ParkedChange, SourceMessage, Submission
from storage.outbox import OutboxRow
from storage.uow import UnitOfWork


@dataclass(frozen=True)
class ChangePolicy:
    auto_assign: bool
    inline_window: timedelta


@dataclass
class BatchResult:
    rows: list[OutboxRow] = field(default_factory=list)  # committed outbox rows, with ids
    applied: int = 0
    duplicates: int = 0
    parked: int = 0


def _contact(
    change: BookingChange, cfg: RestaurantConfig, stored: BookingState | None
) -> ResolvedContact:
    b = change.booking
    # The walk-in slug belongs to the booking: an edit (which need not repeat the key) keeps
    # the key the booking was created with, so its synthetic address and phone stay put.
    key = stored.idempotency_key if stored is not None else change.idempotency_key
    return resolve_contact(
        source=change.source,
        customer_email=b.customer_email,
        customer_phone=b.customer_phone,
        idempotency_key=key,
        booking_id=b.booking_id,
        restaurant_contact_email=cfg.contact_email,
        # An edit never erases contact details: blanks keep what is stored.
        kept_email=stored.customer_email if stored is not None else None,
        kept_phone=stored.customer_phone if stored is not None else None,
    )


async def apply_changes(
    uow: UnitOfWork,
    changes: list[BookingChange],
    policy: ChangePolicy,
    *,
    now: datetime | None = None,
    sources: Mapping[str, SourceMessage] | None = None,
) -> BatchResult:
    """Apply changes (in order) inside the caller's unit of work. `sources`: the message
    each change came in, by event id; a change parked for its restaurant keeps it."""
    now = now or datetime.now(UTC)
    result = BatchResult()
    # Dedupe: one claim per event_id, atomically (a redelivery or replay finds it taken).
    unique: dict[str, BookingChange] = {}
    for c in changes:
        unique.setdefault(c.event_id, c)
    claimed = await uow.intake.claim_events(
        {event_id: c.booking.booking_id for event_id, c in unique.items()}
    )
    fresh = [c for c in unique.values() if c.event_id in claimed]
    result.duplicates = len(changes) - len(fresh)
    if not fresh:
        return result

    restaurant_ids = sorted({c.booking.restaurant_id for c in fresh})
    await uow.restaurants.lock_shared(restaurant_ids)
    booking_ids = sorted({c.booking.booking_id for c in fresh})
    states: dict[str, BookingState | None] = dict(await uow.bookings.lock(booking_ids))
    # Also the restaurants stored bookings hold tables in (an edit may move one elsewhere).
    configs = await uow.restaurants.load(
        sorted({*restaurant_ids, *(s.restaurant_id for s in states.values() if s)})
    )
    waiting = await uow.intake.bookings_with_parked(booking_ids)

    # Idempotent submissions: the first booking to claim (restaurant, key) owns it.
    claims = [
        Submission(c.booking.restaurant_id, c.idempotency_key, c.booking.booking_id)
        for c in fresh
        if c.idempotency_key
        and c.type != "booking.cancelled"
        and states.get(c.booking.booking_id) is None
        and c.booking.restaurant_id in configs
        and c.booking.booking_id not in waiting
    ]
    owners = await uow.intake.claim_submissions(claims)

    items: list[Decided] = []
    parked: list[ParkedChange] = []
    customers: list[Customer] = []
    customer_of: dict[str, tuple[str, str]] = {}
    extra: list[OutboxRow] = []
    for change in fresh:
        b = change.booking
        cfg = configs.get(b.restaurant_id)
        if cfg is None or b.booking_id in waiting:
            # Not dead-lettered: waits, in order, until the configuration arrives.
            waiting.add(b.booking_id)
            parked.append(ParkedChange(b.restaurant_id, b.booking_id, change.event_id,
                                       change.model_dump(mode="json"),
                                       (sources or {}).get(change.event_id)))
            continue
        stored = states.get(b.booking_id)
        if change.idempotency_key and stored is None and change.type != "booking.cancelled":
            owner = owners.get((b.restaurant_id, change.idempotency_key))
            if owner is not None and owner != b.booking_id:
                extra.append(
                    outbox.ops_row(
                        OpsNote(
                            "booking.duplicate_submission",
                            "info",
                            {"idempotency_key": change.idempotency_key, "existing_booking_id": owner,
                             "event_id": change.event_id},
                        ),
                        now,
                        booking_id=b.booking_id,
                        restaurant_id=b.restaurant_id,
                    )
                )
                continue
        if stored is not None and stored.personal_data_erased:
            change = without_personal_data(change)
        contact = _contact(change, cfg, stored) if change.type != "booking.cancelled" else None
        decision = apply_change(
            stored, change, contact, cfg=cfg, auto_assign=policy.auto_assign,
            stored_cfg=configs.get(stored.restaurant_id) if stored is not None else None,
        )
        if decision.state is not None:
            states[b.booking_id] = decision.state
            if contact is not None and contact.identity_email:
                key = (b.restaurant_id, contact.identity_email)
                customers.append(Customer(*key, b.customer_name, contact.phone, contact.synthetic))
                customer_of[b.booking_id] = key
        items.append(Decided(b.booking_id, b.restaurant_id, stored, decision))
        result.applied += 1

    if parked:
        await uow.intake.park(parked)
        # Parked events are applied later under their own claim.
        await uow.intake.unclaim_events([p.event_id for p in parked])
        result.parked = len(parked)
    ids = await uow.intake.save_customers(customers)
    customer_ids = {bid: ids[key] for bid, key in customer_of.items() if key in ids}
    result.rows = await persist_decisions(
        uow, items, configs, policy.inline_window, now, customer_ids=customer_ids,
        extra_rows=extra,
    )
    return result
