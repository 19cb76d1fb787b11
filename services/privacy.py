"""Erasing guests' personal data: on request (`seatflow guests erase`) and past retention.

An erasure nulls a booking's name, email, phone and notes and marks it erased (for good:
later changes store no personal data for it, and no email about it is sent); the
booking's facts (restaurant, date, times, party, tables, status) stay for reporting. It
also reaches every other place PostgreSQL holds the guest's data: email records
(recipient, errors; unsent ones are cancelled), the customer record once no booking refers
to it, and the stored copies still waiting here: unpublished outbox rows, changes parked
for an unconfigured restaurant, dead letters kept for retry. What was already published to
Kafka stays there until the topics' retention removes it (docs/deployment.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

from domain.model import OpsNote
from domain.privacy import needles, scrub_bytes, scrub_change, scrub_json
from services import outbox
from storage.guest_data import GuestBooking, StoredCopy
from storage.outbox import OutboxRow
from storage.uow import UnitOfWork


class UnknownBooking(LookupError):
    """`erase_guest(booking_id=...)` found no booking and no stored copy of one."""


@dataclass
class Erasure:
    """What one erasure changed. Counts are of rows that still held personal data, so a
    repeated erasure counts zero everywhere."""

    booking_ids: list[str] = field(default_factory=list)  # every booking of the guest found
    bookings: int = 0  # of them, those erased now (not before)
    notifications: int = 0
    customers: int = 0
    stored_copies: int = 0  # outbox rows, parked changes, dead letters rewritten


async def erase_guest(
    uow: UnitOfWork,
    *,
    now: datetime,
    email: str | None = None,
    booking_id: str | None = None,
    restaurant_id: str | None = None,
) -> tuple[Erasure, list[OutboxRow]]:
    """Erase one guest's data now: every booking with `email` (optionally only at
    `restaurant_id`), or the one booking `booking_id`. Idempotent. Returns what changed
    and the `guest.erased` ops event, stored in the outbox for the caller to publish."""
    if (email is None) == (booking_id is None):
        raise ValueError("erase by email or by booking id, not both or neither")
    if email is not None:
        email = email.strip()
        found = await uow.guest_data.lock_by_email(email, restaurant_id)
    else:
        assert booking_id is not None
        found = await uow.guest_data.lock_by_booking(booking_id)
    erasure = await _erase(uow, found, now, email=email, restaurant_id=restaurant_id)
    if booking_id is not None and not found and not erasure.stored_copies:
        # A typo must not look like an erasure (the caller's transaction rolls back).
        raise UnknownBooking(booking_id)
    note = OpsNote("guest.erased", "info", {
        # Ids and counts only: the event must not carry what it erased.
        "count": erasure.bookings,
        "by": "email" if email is not None else "booking",
        "booking_ids": erasure.booking_ids,
        "notifications": erasure.notifications,
        "customers": erasure.customers,
        "stored_copies": erasure.stored_copies,
    })
    row = outbox.ops_row(note, now, booking_id=booking_id, restaurant_id=restaurant_id)
    return erasure, await uow.outbox.add([row])


async def expire_batch(uow: UnitOfWork, *, before_day: date, limit: int, now: datetime
                       ) -> int:
    """Erase the personal data of at most `limit` bookings dated before `before_day`;
    returns how many. Call again while it returns `limit`."""
    found = await uow.guest_data.lock_past(before_day, limit=limit)
    if found:
        await _erase(uow, found, now)
    return len(found)


async def _erase(uow: UnitOfWork, found: list[GuestBooking], now: datetime, *,
                 email: str | None = None, restaurant_id: str | None = None) -> Erasure:
    store = uow.guest_data
    ids = [g.booking_id for g in found]
    erasure = Erasure(booking_ids=ids, bookings=sum(1 for g in found if not g.erased))
    values: list[str | None] = [email]
    for g in found:
        values += [g.name, g.email, g.phone, g.notes]
    if ids:
        await store.erase_bookings(ids, now)
    customer_ids = sorted({g.customer_id for g in found if g.customer_id is not None})
    deleted = await store.delete_customers(customer_ids, email, restaurant_id)
    erasure.customers = len(deleted)
    for c in deleted:
        values += [c["name"], c["email"], c["phone"]]
    erasure.notifications = await store.erase_notifications(ids, email, restaurant_id)
    personal = needles(values)
    if not personal:
        return erasure

    outbox_rows = [_rewritten_json(c, personal) for c in await store.outbox_copies(ids, email)]
    outbox_rows = [c for c in outbox_rows if c is not None]
    await store.rewrite_outbox(outbox_rows)
    parked = [_rewritten_change(c)
              for c in await store.parked_copies(ids, email, restaurant_id)]
    parked = [c for c in parked if c is not None]
    await store.rewrite_parked(parked)
    letters = [_rewritten_bytes(c, personal) for c in await store.dead_letter_copies(ids, email)]
    letters = [c for c in letters if c is not None]
    await store.rewrite_dead_letters(letters)
    erasure.stored_copies = len(outbox_rows) + len(parked) + len(letters)
    return erasure


def _rewritten_json(copy: StoredCopy, personal: list[str]) -> StoredCopy | None:
    """The outbox row with no string holding the guest's data (None: it held none)."""
    value = json.loads(copy.data)
    scrubbed = scrub_json(value, personal)
    if scrubbed == value:
        return None
    return StoredCopy(copy.id, json.dumps(scrubbed, separators=(",", ":")).encode())


def _rewritten_change(copy: StoredCopy) -> StoredCopy | None:
    scrubbed = scrub_change(copy.data)
    return None if scrubbed == copy.data else StoredCopy(copy.id, scrubbed)


def _rewritten_bytes(copy: StoredCopy, personal: list[str]) -> StoredCopy | None:
    """The dead letter's value and headers without the guest's data (its key is an id)."""
    value = scrub_bytes(copy.data, personal)
    headers = [scrub_bytes(h, personal) or b"" for h in copy.header_values or []]
    if (value, headers) == (copy.data, copy.header_values or []):
        return None
    return StoredCopy(copy.id, value, copy.key, headers)
