"""What the intake of booking changes records: event ids it applied, idempotent
submissions, customers, and changes parked until their restaurant is configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Submission:
    """The first booking to claim (restaurant, idempotency_key) owns it."""

    restaurant_id: str
    idempotency_key: str
    booking_id: str


@dataclass(frozen=True)
class Customer:
    restaurant_id: str
    email: str
    name: str | None
    phone: str | None
    synthetic: bool


@dataclass(frozen=True)
class ParkedChange:
    """A change waiting for its restaurant's configuration, in arrival order."""

    restaurant_id: str
    booking_id: str
    event_id: str
    payload: dict[str, Any]  # the change as JSON


class IntakeRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim_events(self, events: dict[str, str]) -> set[str]:
        """events: event_id -> booking_id. Records each once; returns the ids this
        transaction claimed (the others were applied before: redeliveries, replays)."""
        if not events:
            return set()
        rows = await self.conn.fetch(
            "INSERT INTO processed_events (event_id, booking_id)"
            " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING"
            " RETURNING event_id",
            list(events),
            list(events.values()),
        )
        return {r["event_id"] for r in rows}

    async def unclaim_events(self, event_ids: list[str]) -> None:
        """Parked events are applied later, under their own claim."""
        if event_ids:
            await self.conn.execute(
                "DELETE FROM processed_events WHERE event_id = ANY($1::text[])", event_ids
            )

    async def claim_submissions(
        self, claims: list[Submission]
    ) -> dict[tuple[str, str], str]:
        """Returns the owning booking of each (restaurant_id, idempotency_key)."""
        if not claims:
            return {}
        restaurants = [c.restaurant_id for c in claims]
        keys = [c.idempotency_key for c in claims]
        await self.conn.execute(
            "INSERT INTO submissions (restaurant_id, idempotency_key, booking_id)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
            restaurants,
            keys,
            [c.booking_id for c in claims],
        )
        rows = await self.conn.fetch(
            "SELECT s.restaurant_id, s.idempotency_key, s.booking_id FROM submissions s"
            " JOIN unnest($1::text[], $2::text[]) AS k(r, i)"
            " ON s.restaurant_id = k.r AND s.idempotency_key = k.i",
            restaurants,
            keys,
        )
        return {(r["restaurant_id"], r["idempotency_key"]): r["booking_id"] for r in rows}

    async def save_customers(self, customers: list[Customer]) -> dict[tuple[str, str], int]:
        """Upsert by (restaurant, email); returns their ids."""
        if not customers:
            return {}
        unique = list({(c.restaurant_id, c.email): c for c in customers}.values())
        rows = await self.conn.fetch(
            "INSERT INTO customers (restaurant_id, email, name, phone, synthetic)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[])"
            " ON CONFLICT (restaurant_id, email) DO UPDATE SET"
            "  name = COALESCE(EXCLUDED.name, customers.name),"
            "  phone = COALESCE(customers.phone, EXCLUDED.phone)"
            " RETURNING customer_id, restaurant_id, email",
            [c.restaurant_id for c in unique],
            [c.email for c in unique],
            [c.name for c in unique],
            [c.phone for c in unique],
            [c.synthetic for c in unique],
        )
        return {(r["restaurant_id"], r["email"]): r["customer_id"] for r in rows}

    async def bookings_with_parked(self, booking_ids: list[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT booking_id FROM parked_changes WHERE booking_id = ANY($1::text[])",
            booking_ids,
        )
        return {r["booking_id"] for r in rows}

    async def park(self, parked: list[ParkedChange]) -> None:
        if parked:
            await self.conn.executemany(
                "INSERT INTO parked_changes (restaurant_id, booking_id, event_id, payload)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
                [(p.restaurant_id, p.booking_id, p.event_id, p.payload) for p in parked],
            )

    async def take_parked(self, restaurant_id: str) -> list[dict[str, Any]]:
        """Remove and return the restaurant's parked changes, oldest first; also every later
        change parked for the same bookings (they waited behind them, whatever the
        restaurant)."""
        rows = await self.conn.fetch(
            "DELETE FROM parked_changes WHERE booking_id IN"
            " (SELECT booking_id FROM parked_changes WHERE restaurant_id = $1)"
            " RETURNING seq, payload",
            restaurant_id,
        )
        return [r["payload"] for r in sorted(rows, key=lambda r: r["seq"])]
