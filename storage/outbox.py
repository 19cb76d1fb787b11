"""The transactional outbox: facts written in the transaction that decided them.

After commit the writer publishes its own rows at once and deletes them; a relay publishes
whatever a crash left behind. Every payload carries a deterministic id, so a row published
twice is a duplicate consumers can drop (docs/interface.md, "Delivery").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from config.topics import Topic


@dataclass(frozen=True)
class OutboxRow:
    topic: Topic
    key: str | None
    payload: bytes  # the JSON record exactly as it is published
    id: int | None = None

    @property
    def value(self) -> dict[str, Any]:
        return json.loads(self.payload)


class OutboxRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def add(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """Store rows; returns them with their ids (in order)."""
        if not rows:
            return []
        ids = await self.conn.fetch(
            "INSERT INTO outbox (topic, key, payload) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) RETURNING id",
            [r.topic.value for r in rows],
            [r.key for r in rows],
            [r.payload for r in rows],
        )
        return [
            OutboxRow(r.topic, r.key, r.payload, rec["id"])
            for r, rec in zip(rows, ids, strict=True)
        ]

    async def delete(self, ids: list[int]) -> None:
        if ids:
            await self.conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)

    async def take_stale(self, *, older_than_s: float, limit: int) -> list[OutboxRow]:
        """Remove and return rows a crashed publisher left behind, oldest first; the caller
        publishes them before its transaction commits (a failure leaves them in place)."""
        records = await self.conn.fetch(
            "DELETE FROM outbox WHERE id IN ("
            "  SELECT id FROM outbox WHERE created_at < now() - make_interval(secs => $1)"
            "  ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED"
            ") RETURNING id, topic, key, payload",
            older_than_s,
            limit,
        )
        rows = [OutboxRow(Topic(r["topic"]), r["key"], r["payload"], r["id"]) for r in records]
        rows.sort(key=lambda r: r.id or 0)
        return rows
