"""Apply a batch of booking change events in ONE transaction: dedupe, decide, persist, outbox.

Order inside the transaction (the lock order every writer follows, so no deadlocks):
advisory lock per restaurant (shared) -> booking rows (sorted) -> everything else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from domain.lifecycle import apply_change
from domain.model import BookingState, Decision, OpsNote
from domain.notifications import PENDING_KINDS
from domain.walkins import ResolvedContact, resolve_contact
from models.events import BookingChange, NotificationRecord
from models.restaurant import RestaurantConfig
from services import outbox
from services.outbox import OutboxRow
from storage import repository as repo

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Decided:
    """A decision, the booking state it was taken on (None: not stored yet), and the
    booking it concerns (named even when nothing is stored, for its ops notes)."""

    booking_id: str
    restaurant_id: str
    before: BookingState | None
    decision: Decision


def _recipient(intent_audience: str, state: BookingState, cfg: RestaurantConfig | None) -> str | None:
    if intent_audience == "restaurant":
        return cfg.contact_email if cfg else None
    return state.customer_email


async def persist_decisions(
    conn: asyncpg.Connection,
    items: list[Decided],
    configs: dict[str, RestaurantConfig],
    policy_window: timedelta,
    now: datetime,
    *,
    next_attempt_at: dict[str, datetime] | None = None,
    customer_ids: dict[str, int] | None = None,
    extra_rows: list[OutboxRow] | None = None,
) -> list[OutboxRow]:
    """Write what a list of decisions asks for; returns the committed-to-be outbox rows.

    Several decisions may concern one booking; the last state wins.
    """
    final: dict[str, BookingState] = {}
    release: list[str] = []
    cancel_held: list[str] = []
    notifications: list[tuple] = []
    rows: list[OutboxRow] = list(extra_rows or [])
    for item in items:
        d = item.decision
        for note in d.ops:
            rows.append(
                outbox.ops_row(note, now, booking_id=item.booking_id,
                               restaurant_id=item.restaurant_id)
            )
        state = d.state or item.before
        if state is None:
            continue
        if d.state is not None:
            final[state.booking_id] = d.state
        if d.release_tables:
            release.append(state.booking_id)
        if d.cancel_held_emails:
            cancel_held.append(state.booking_id)
        for change in d.status_changes:
            rows.append(outbox.status_row(state, change, now))
        for intent in d.notifications:
            due = now + policy_window if intent.hold else now
            notifications.append(
                (
                    NotificationRecord.make_id(state.booking_id, intent.kind, intent.pending_ref),
                    state.booking_id,
                    state.restaurant_id,
                    intent.kind,
                    intent.pending_ref,
                    _recipient(intent.audience, state, configs.get(state.restaurant_id)),
                    "held" if intent.hold else "due",
                    due,
                )
            )
        if d.allocation is not None:
            rows.append(
                outbox.allocation_row(
                    state.restaurant_id,
                    d.allocation.reason,
                    now,
                    booking_id=state.booking_id,
                    pending_ref=d.allocation.pending_ref,
                    attempt=d.allocation.attempt,
                )
            )
        for rid, day in d.capacity_released:
            # The releasing transition (booking, version) names the sweep: a republished
            # sweep is recognised by the allocator.
            rows.append(outbox.allocation_row(
                rid, "capacity_released", now, booking_date=day,
                cause=f"{state.booking_id}@{state.version}",
            ))

    await repo.release_tables(conn, release)
    await repo.save_bookings(
        conn, list(final.values()), next_attempt_at=next_attempt_at, customer_ids=customer_ids
    )
    if notifications:
        await conn.execute(
            "INSERT INTO notifications (notification_id, booking_id, restaurant_id, kind,"
            " pending_ref, recipient, status, due_at) SELECT * FROM unnest($1::text[],"
            " $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
            " $8::timestamptz[]) ON CONFLICT DO NOTHING",
            *[list(col) for col in zip(*notifications, strict=True)],
        )
    if cancel_held:
        # A confirmation or cancellation drops every pending email not yet handed to the
        # mail server: inside the inline window, and after it (a backlog, an SMTP outage).
        # The sender claims rows FOR UPDATE, so a row it holds is `sending` by then.
        await conn.execute(
            "UPDATE notifications SET status = 'cancelled', reason = 'superseded'"
            " WHERE booking_id = ANY($1::text[]) AND status IN ('held', 'due')"
            " AND kind = ANY($2::text[])",
            cancel_held,
            list(PENDING_KINDS),
        )
    return await outbox.insert(conn, rows)


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
    conn: asyncpg.Connection,
    changes: list[BookingChange],
    policy: ChangePolicy,
    *,
    now: datetime | None = None,
) -> BatchResult:
    """Apply changes (in order) inside the caller's transaction."""
    now = now or datetime.now(UTC)
    result = BatchResult()
    # Dedupe: one claim per event_id, atomically (a redelivery or replay finds it taken).
    unique: dict[str, BookingChange] = {}
    for c in changes:
        unique.setdefault(c.event_id, c)
    claimed = {
        r["event_id"]
        for r in await conn.fetch(
            "INSERT INTO processed_events (event_id, booking_id)"
            " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING"
            " RETURNING event_id",
            list(unique),
            [c.booking.booking_id for c in unique.values()],
        )
    }
    fresh = [c for c in unique.values() if c.event_id in claimed]
    result.duplicates = len(changes) - len(fresh)
    if not fresh:
        return result

    restaurant_ids = sorted({c.booking.restaurant_id for c in fresh})
    await repo.lock_restaurants_shared(conn, restaurant_ids)
    booking_ids = sorted({c.booking.booking_id for c in fresh})
    states: dict[str, BookingState | None] = dict(await repo.lock_bookings(conn, booking_ids))
    # Also the restaurants stored bookings hold tables in (an edit may move one elsewhere).
    configs = await repo.load_restaurants(
        conn, sorted({*restaurant_ids, *(s.restaurant_id for s in states.values() if s)})
    )
    waiting = await repo.bookings_with_parked(conn, booking_ids)

    # Idempotent submissions: the first booking to claim (restaurant, key) owns it.
    claims = [
        (c.booking.restaurant_id, c.idempotency_key, c.booking.booking_id)
        for c in fresh
        if c.idempotency_key
        and c.type != "booking.cancelled"
        and states.get(c.booking.booking_id) is None
        and c.booking.restaurant_id in configs
        and c.booking.booking_id not in waiting
    ]
    owners = await repo.claim_submissions(conn, claims)

    items: list[Decided] = []
    parked: list[tuple] = []
    customers: list[tuple[str, str, str | None, str | None, bool]] = []
    customer_of: dict[str, tuple[str, str]] = {}
    extra: list[OutboxRow] = []
    for change in fresh:
        b = change.booking
        cfg = configs.get(b.restaurant_id)
        if cfg is None or b.booking_id in waiting:
            # Not dead-lettered: waits, in order, until the configuration arrives.
            waiting.add(b.booking_id)
            parked.append((b.restaurant_id, b.booking_id, change.event_id,
                           change.model_dump(mode="json")))
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
        contact = _contact(change, cfg, stored) if change.type != "booking.cancelled" else None
        decision = apply_change(
            stored, change, contact, cfg=cfg, auto_assign=policy.auto_assign,
            stored_cfg=configs.get(stored.restaurant_id) if stored is not None else None,
        )
        if decision.state is not None:
            states[b.booking_id] = decision.state
            if contact is not None and contact.identity_email:
                key = (b.restaurant_id, contact.identity_email)
                customers.append((*key, b.customer_name, contact.phone, contact.synthetic))
                customer_of[b.booking_id] = key
        items.append(Decided(b.booking_id, b.restaurant_id, stored, decision))
        result.applied += 1

    if parked:
        await repo.park(conn, parked)
        # Parked events are applied later under their own claim.
        await conn.execute(
            "DELETE FROM processed_events WHERE event_id = ANY($1::text[])", [p[2] for p in parked]
        )
        result.parked = len(parked)
    ids = await repo.upsert_customers(conn, customers)
    customer_ids = {bid: ids[key] for bid, key in customer_of.items() if key in ids}
    result.rows = await persist_decisions(
        conn, items, configs, policy.inline_window, now, customer_ids=customer_ids,
        extra_rows=extra,
    )
    return result
