"""The email decision table (docs/interface.md §4 "Emails"), as a pure function of one transition.

| transition                                   | kind                    | to         | held |
|----------------------------------------------|-------------------------|------------|------|
| new booking -> pending                       | request_received        | guest      | yes  |
| confirmed booking realigned -> pending       | modification_pending    | guest      | yes  |
| pending booking realigned -> pending         | (nothing new)           |            |      |
| -> confirmed, episode began as a new booking | confirmed               | guest      | no   |
| -> confirmed, episode began as modification  | modification_confirmed  | guest      | no   |
| -> cancelled                                 | cancelled               | guest      | no   |
| retries used up -> allocation_failed         | allocation_failed       | restaurant | no   |
| confirmed booking re-seated (tables_changed) | (nothing)               |            |      |

A confirmation or cancellation cancels any pending email still held inside its window.
Uniqueness per (booking, kind, pending_ref) is enforced where the intents are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from domain.model import BookingState, NotificationIntent, StatusChange
from domain.walkins import is_synthetic
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
    if change.type == "booking.tables_changed":
        return NotificationPlan()  # re-seated: no email names a table
    raise ValueError(f"unknown status change type {change.type!r}")


@dataclass(frozen=True)
class Delivery:
    """What to do with an email row that fell due: send it, or close it with a status."""

    send: bool
    status: str | None = None  # when not sent: suppressed | skipped | cancelled
    reason: str | None = None


SEND = Delivery(True)


def decide_delivery(
    kind: str, recipient: str | None, booking_status: str | None, *, suppress: bool,
    erased: bool = False,
) -> Delivery:
    """A pending email (request_received, modification_pending) leaves only while its
    booking is still pending; an empty or synthetic (`@system.local`) recipient is never
    mailed; nothing is mailed about a booking whose guest's data was erased;
    SUPPRESS_EMAILS records the decision and sends nothing."""
    if erased:
        return Delivery(False, "skipped", "personal_data_erased")
    if kind in PENDING_KINDS and booking_status != "pending":
        return Delivery(False, "cancelled", "superseded")
    if recipient is None or not recipient.strip():
        return Delivery(False, "skipped", "no_recipient")
    if is_synthetic(recipient):
        return Delivery(False, "skipped", "synthetic_address")
    if suppress:
        return Delivery(False, "suppressed", "SUPPRESS_EMAILS")
    return SEND
