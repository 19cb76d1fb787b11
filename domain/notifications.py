"""The email decision table (CONTRACT §4 "Emails"), as a pure function of one transition.

| transition                                   | kind                    | to         | held |
|----------------------------------------------|-------------------------|------------|------|
| new booking -> pending                       | request_received        | guest      | yes  |
| confirmed booking realigned -> pending       | modification_pending    | guest      | yes  |
| pending booking realigned -> pending         | (nothing new)           |            |      |
| -> confirmed, episode began as a new booking | confirmed               | guest      | no   |
| -> confirmed, episode began as modification  | modification_confirmed  | guest      | no   |
| -> cancelled                                 | cancelled               | guest      | no   |
| retries used up -> allocation_failed         | allocation_failed       | restaurant | no   |

A confirmation or cancellation cancels any pending email still held inside its window.
Uniqueness per (booking, kind, pending_ref) is enforced where the intents are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from domain.model import BookingState, NotificationIntent, StatusChange
from models.events import NotificationKind

PENDING_KINDS = ("request_received", "modification_pending")
ALL_KINDS: tuple[str, ...] = get_args(NotificationKind)


@dataclass(frozen=True)
class NotificationPlan:
    intents: tuple[NotificationIntent, ...] = ()
    cancel_held: bool = False


def decide_notifications(
    prev: BookingState | None, new: BookingState, change: StatusChange
) -> NotificationPlan:
    ref = change.pending_ref or ""
    if change.type == "booking.pending":
        if prev is None or prev.status == "cancelled":
            return NotificationPlan((NotificationIntent("request_received", "guest", ref, True),))
        if prev.status == "confirmed":
            return NotificationPlan(
                (NotificationIntent("modification_pending", "guest", ref, True),)
            )
        # Already pending: the guest has been told once; an edit sends nothing new.
        return NotificationPlan()
    if change.type == "booking.confirmed":
        kind = "modification_confirmed" if new.episode_kind == "modification" else "confirmed"
        return NotificationPlan((NotificationIntent(kind, "guest", ref, False),), cancel_held=True)
    if change.type == "booking.cancelled":
        return NotificationPlan(
            (NotificationIntent("cancelled", "guest", ref, False),), cancel_held=True
        )
    if change.type == "booking.allocation_failed":
        return NotificationPlan((NotificationIntent("allocation_failed", "restaurant", ref, False),))
    raise ValueError(f"unknown status change type {change.type!r}")
