"""Allocation requests acted on, by request_id: a redelivery is recognised and spends nothing."""

from __future__ import annotations

import asyncpg


class AllocationRequestRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim(self, requests: dict[str, str]) -> set[str]:
        """requests: request_id -> restaurant_id. Records each id once; returns the ids this
        transaction claimed (the others were acted on before)."""
        if not requests:
            return set()
        rows = await self.conn.fetch(
            "INSERT INTO allocation_requests_done (request_id, restaurant_id)"
            " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING"
            " RETURNING request_id",
            list(requests),
            list(requests.values()),
        )
        return {r["request_id"] for r in rows}
