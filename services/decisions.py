"""Persist what domain decisions ask for, inside the caller's unit of work: booking states,
released tables, notification rows, and the outbox rows to publish after commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.model import BookingState, Decision
from domain.notifications import PENDING_KINDS
from models.events import NotificationRecord
from models.restaurant import RestaurantConfig
from services import outbox
from storage.notifications import NewNotification
from storage.outbox import OutboxRow
from storage.uow import UnitOfWork


@dataclass(frozen=True)
class Decided:
    """A decision, the booking state it was taken on (None: not stored yet), and the
    booking it concerns (named even when nothing is stored, for its ops notes)."""

    booking_id: str
    restaurant_id: str
    before: BookingState | None
    decision: Decision


def _recipient(audience: str, state: BookingState, cfg: RestaurantConfig | None) -> str | None:
    if audience == "restaurant":
        return cfg.contact_email if cfg else None
    return state.customer_email


async def persist_decisions(
    uow: UnitOfWork,
    items: list[Decided],
    configs: dict[str, RestaurantConfig],
    inline_window: timedelta,
    now: datetime,
    *,
    next_attempt_at: dict[str, datetime] | None = None,
    customer_ids: dict[str, int] | None = None,
    extra_rows: list[OutboxRow] | None = None,
) -> list[OutboxRow]:
    """Write what the decisions ask for; returns the outbox rows (with ids) to publish.
    Several decisions may concern one booking; the last state wins."""
    final: dict[str, BookingState] = {}
    release: list[str] = []
    cancel_unsent: list[str] = []
    notifications: list[NewNotification] = []
    rows: list[OutboxRow] = list(extra_rows or [])
    for item in items:
        d = item.decision
        for note in d.ops:
            rows.append(outbox.ops_row(note, now, booking_id=item.booking_id,
                                       restaurant_id=item.restaurant_id))
        state = d.state or item.before
        if state is None:
            continue
        if d.state is not None:
            final[state.booking_id] = d.state
        if d.release_tables:
            release.append(state.booking_id)
        if d.cancel_held_emails:
            cancel_unsent.append(state.booking_id)
        for change in d.status_changes:
            rows.append(outbox.status_row(state, change, now))
        for intent in d.notifications:
            notifications.append(NewNotification(
                notification_id=NotificationRecord.make_id(
                    state.booking_id, intent.kind, intent.pending_ref),
                booking_id=state.booking_id,
                restaurant_id=state.restaurant_id,
                kind=intent.kind,
                pending_ref=intent.pending_ref,
                recipient=_recipient(intent.audience, state, configs.get(state.restaurant_id)),
                held=intent.hold,
                due_at=now + inline_window if intent.hold else now,
            ))
        if d.allocation is not None:
            rows.append(outbox.allocation_row(
                state.restaurant_id, d.allocation.reason, now, booking_id=state.booking_id,
                pending_ref=d.allocation.pending_ref, attempt=d.allocation.attempt,
            ))
        for rid, day in d.capacity_released:
            # The releasing transition (booking, version) names the sweep: a republished
            # sweep is recognised by the allocator.
            rows.append(outbox.allocation_row(
                rid, "capacity_released", now, booking_date=day,
                cause=f"{state.booking_id}@{state.version}",
            ))

    await uow.bookings.release_tables(release)
    await uow.bookings.save(list(final.values()), next_attempt_at=next_attempt_at,
                            customer_ids=customer_ids)
    await uow.notifications.add(notifications)
    # A confirmation or cancellation drops every pending email not yet handed to the mail
    # server: inside the inline window, and after it (a backlog, an SMTP outage). The sender
    # claims rows FOR UPDATE, so a row it holds is `sending` by then.
    await uow.notifications.cancel_unsent(cancel_unsent, list(PENDING_KINDS))
    return await uow.outbox.add(rows)
