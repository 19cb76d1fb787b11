"""Guests' personal data in PostgreSQL: finding it, erasing it from bookings, email
records and customers, and the stored copies of it (unpublished outbox rows, parked
changes, dead letters kept for retry) that the service rewrites without it
(services/privacy.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

_GUEST_COLUMNS = (
    "booking_id, restaurant_id, customer_id, customer_name, customer_email, customer_phone,"
    " notes, erased_at IS NOT NULL AS erased"
)


@dataclass(frozen=True)
class GuestBooking:
    """A booking whose guest's data is to be erased, as it is before the erasure."""

    booking_id: str
    restaurant_id: str
    customer_id: int | None
    name: str | None
    email: str | None
    phone: str | None
    notes: str | None
    erased: bool  # already erased before


def _guest(row: asyncpg.Record) -> GuestBooking:
    return GuestBooking(row["booking_id"], row["restaurant_id"], row["customer_id"],
                        row["customer_name"], row["customer_email"], row["customer_phone"],
                        row["notes"], row["erased"])


@dataclass(frozen=True)
class StoredCopy:
    """A row that holds a copy of personal data: an outbox row or a parked change (`data`,
    its JSON or bytes), or a backlogged dead letter (key, value and header values)."""

    id: int
    data: Any
    key: bytes | None = None
    header_values: list[bytes] | None = None


class GuestDataRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # --- finding a guest's bookings (row-locked, sorted like every other writer) -------------

    async def lock_by_email(self, email: str, restaurant_id: str | None) -> list[GuestBooking]:
        """Bookings notifying `email`, or of the customer with that address (any case)."""
        rows = await self.conn.fetch(
            f"SELECT {_GUEST_COLUMNS} FROM bookings b WHERE"
            " (lower(b.customer_email) = lower($1) OR b.customer_id IN"
            "  (SELECT customer_id FROM customers WHERE lower(email) = lower($1)))"
            " AND ($2::text IS NULL OR b.restaurant_id = $2)"
            " ORDER BY booking_id FOR UPDATE",
            email,
            restaurant_id,
        )
        return [_guest(r) for r in rows]

    async def lock_by_booking(self, booking_id: str) -> list[GuestBooking]:
        rows = await self.conn.fetch(
            f"SELECT {_GUEST_COLUMNS} FROM bookings WHERE booking_id = $1 FOR UPDATE",
            booking_id,
        )
        return [_guest(r) for r in rows]

    async def lock_past(self, before_day: date, *, limit: int) -> list[GuestBooking]:
        """Bookings dated before `before_day` still holding personal data (SKIP LOCKED:
        a booking being changed right now waits for the next round)."""
        rows = await self.conn.fetch(
            # No ORDER BY: the partial index on booking_date finds the first few at once,
            # and SKIP LOCKED never waits, so the lock order does not matter.
            f"SELECT {_GUEST_COLUMNS} FROM bookings WHERE booking_date < $1"
            " AND erased_at IS NULL LIMIT $2 FOR UPDATE SKIP LOCKED",
            before_day,
            limit,
        )
        return [_guest(r) for r in rows]

    # --- erasing ------------------------------------------------------------------------------

    async def erase_bookings(self, booking_ids: list[str], now: datetime) -> None:
        """Personal fields null, the customer link cut, `erased_at` set once; facts kept."""
        await self.conn.execute(
            "UPDATE bookings SET customer_name = NULL, customer_email = NULL,"
            " customer_phone = NULL, notes = NULL, customer_id = NULL,"
            " erased_at = COALESCE(erased_at, $2) WHERE booking_id = ANY($1::text[])",
            booking_ids,
            now,
        )

    async def erase_notifications(self, booking_ids: list[str], email: str | None,
                                  restaurant_id: str | None) -> int:
        """The bookings' email records (and any other addressed to `email`, at
        `restaurant_id` if given) lose their recipient and errors; those not handed to the
        mail server yet are cancelled."""
        result = await self.conn.execute(
            "UPDATE notifications SET recipient = NULL, last_error = NULL, context = '{}',"
            " reason = CASE WHEN status IN ('held', 'due') THEN 'personal_data_erased'"
            "  ELSE reason END,"
            " status = CASE WHEN status IN ('held', 'due') THEN 'cancelled' ELSE status END"
            " WHERE (booking_id = ANY($1::text[])"
            "  OR ($2::text IS NOT NULL AND lower(recipient) = lower($2)"
            "   AND ($3::text IS NULL OR restaurant_id = $3)))"
            " AND (recipient IS NOT NULL OR last_error IS NOT NULL OR context <> '{}'"
            "  OR status IN ('held', 'due'))",
            booking_ids,
            email,
            restaurant_id,
        )
        return int(result.split()[-1])

    async def delete_customers(self, customer_ids: list[int], email: str | None,
                               restaurant_id: str | None) -> list[asyncpg.Record]:
        """Customer records named (or with `email`) that no booking refers to any more;
        returns what they held."""
        if not customer_ids and email is None:
            return []
        # One pass over bookings for all candidates (bookings.customer_id has no index: it
        # is read only here, and an index would cost every booking write).
        return await self.conn.fetch(
            "WITH candidate AS (SELECT customer_id FROM customers"
            "  WHERE customer_id = ANY($1::bigint[]) OR ($2::text IS NOT NULL"
            "   AND lower(email) = lower($2) AND ($3::text IS NULL OR restaurant_id = $3))),"
            " referenced AS (SELECT DISTINCT customer_id FROM bookings"
            "  WHERE customer_id IN (SELECT customer_id FROM candidate))"
            " DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM candidate)"
            " AND customer_id NOT IN (SELECT customer_id FROM referenced)"
            " RETURNING name, email, phone",
            customer_ids,
            email,
            restaurant_id,
        )

    # --- stored copies ------------------------------------------------------------------------

    async def outbox_copies(self, booking_ids: list[str], email: str | None) -> list[StoredCopy]:
        """Unpublished outbox rows of the bookings, or naming `email` (payloads are UTF-8
        JSON)."""
        rows = await self.conn.fetch(
            "SELECT id, payload FROM outbox WHERE key = ANY($1::text[])"
            " OR ($2::text IS NOT NULL"
            "  AND strpos(lower(convert_from(payload, 'UTF8')), lower($2)) > 0)"
            " ORDER BY id FOR UPDATE",
            booking_ids,
            email,
        )
        return [StoredCopy(r["id"], r["payload"]) for r in rows]

    async def rewrite_outbox(self, copies: list[StoredCopy]) -> None:
        if copies:
            await self.conn.executemany("UPDATE outbox SET payload = $2 WHERE id = $1",
                                        [(c.id, c.data) for c in copies])

    async def parked_copies(self, booking_ids: list[str], email: str | None,
                            restaurant_id: str | None) -> list[StoredCopy]:
        """Changes parked for the bookings, or giving `email` (at `restaurant_id`)."""
        rows = await self.conn.fetch(
            "SELECT seq, payload FROM parked_changes WHERE booking_id = ANY($1::text[])"
            " OR ($2::text IS NOT NULL"
            "  AND lower(payload->'booking'->>'customer_email') = lower($2)"
            "  AND ($3::text IS NULL OR restaurant_id = $3))"
            " ORDER BY seq FOR UPDATE",
            booking_ids,
            email,
            restaurant_id,
        )
        return [StoredCopy(r["seq"], r["payload"]) for r in rows]

    async def rewrite_parked(self, copies: list[StoredCopy]) -> None:
        if copies:
            await self.conn.executemany(
                # The message it came in holds the same data: it becomes the rewritten JSON.
                "UPDATE parked_changes SET payload = $2, source_value = CASE WHEN"
                " source_value IS NULL THEN NULL ELSE convert_to($2::jsonb::text, 'UTF8') END"
                " WHERE seq = $1",
                [(c.id, c.data) for c in copies],
            )

    async def dead_letter_copies(self, booking_ids: list[str], email: str | None
                                 ) -> list[StoredCopy]:
        """Backlogged dead letters keyed by the bookings, or whose bytes hold `email`."""
        rows = await self.conn.fetch(
            "SELECT id, original_key, original_value, header_values FROM dead_letter_backlog"
            " WHERE original_key = ANY($1::bytea[]) OR ($2::text IS NOT NULL AND"
            "  strpos(lower(encode(coalesce(original_value, ''), 'escape')), lower($2)) > 0)"
            " ORDER BY id FOR UPDATE",
            [b.encode() for b in booking_ids],
            email,
        )
        return [StoredCopy(r["id"], r["original_value"], r["original_key"],
                           list(r["header_values"])) for r in rows]

    async def rewrite_dead_letters(self, copies: list[StoredCopy]) -> None:
        if copies:
            await self.conn.executemany(
                "UPDATE dead_letter_backlog SET original_key = $2, original_value = $3,"
                " header_values = $4 WHERE id = $1",
                [(c.id, c.key, c.data, c.header_values) for c in copies],
            )
