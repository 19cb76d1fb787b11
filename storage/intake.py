"""What the intake of booking changes records: event ids it applied, idempotent
submissions, customers, and changes parked until their restaurant is configured."""

from __future__ import annotations

from collections.abc import Sequence
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
class SourceMessage:
    """A consumed message as the broker delivered it: what a dead letter of it carries."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class ParkedChange:
    """A change waiting for its restaurant's configuration, in arrival order."""

    restaurant_id: str
    booking_id: str
    event_id: str
    payload: dict[str, Any]  # the change as JSON
    # The message it came in: if it fails once released, it is dead-lettered as itself.
    source: SourceMessage | None = None
    seq: int | None = None  # set when taken back out


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
                "INSERT INTO parked_changes (restaurant_id, booking_id, event_id, payload,"
                " source_topic, source_partition, source_offset, source_timestamp_ms,"
                " source_key, source_value, source_header_names, source_header_values)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                " ON CONFLICT (event_id) DO NOTHING",
                [_parked_row(p) for p in parked],
            )

    async def take_parked(self, restaurant_id: str) -> list[ParkedChange]:
        """Remove and return the restaurant's parked changes, oldest first; also every later
        change parked for the same bookings (they waited behind them, whatever the
        restaurant)."""
        rows = await self.conn.fetch(
            "DELETE FROM parked_changes WHERE booking_id IN"
            " (SELECT booking_id FROM parked_changes WHERE restaurant_id = $1)"
            " RETURNING *",
            restaurant_id,
        )
        return [_parked(r) for r in sorted(rows, key=lambda r: r["seq"])]


def _parked_row(p: ParkedChange) -> tuple:
    src = p.source
    if src is None:
        return (p.restaurant_id, p.booking_id, p.event_id, p.payload, *([None] * 8))
    return (p.restaurant_id, p.booking_id, p.event_id, p.payload, src.topic, src.partition,
            src.offset, src.timestamp_ms, src.key, src.value, [n for n, _ in src.headers],
            [v for _, v in src.headers])


def _parked(r: asyncpg.Record) -> ParkedChange:
    source = None
    if r["source_topic"] is not None:
        source = SourceMessage(
            r["source_topic"], r["source_partition"], r["source_offset"],
            r["source_timestamp_ms"], r["source_key"], r["source_value"],
            tuple(zip(r["source_header_names"] or [], r["source_header_values"] or [],
                      strict=True)),
        )
    return ParkedChange(r["restaurant_id"], r["booking_id"], r["event_id"], r["payload"],
                        source, r["seq"])
