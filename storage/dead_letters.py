"""Dead letters the dead-letters topic refused for good, kept whole until a relay gets them
out (docs/interface.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class RefusedDeadLetter:
    original_topic: str
    original_partition: int
    original_offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    stage: str
    publish_error: str


class DeadLetterBacklog:
    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self.conn = conn

    async def add(self, letters: list[RefusedDeadLetter]) -> None:
        """A message stored before (a redelivery) is not stored twice."""
        if letters:
            await self.conn.executemany(
                "INSERT INTO dead_letter_backlog (original_topic, original_partition,"
                " original_offset, original_key, original_value, header_names, header_values,"
                " stage, publish_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (original_topic, original_partition, original_offset) DO NOTHING",
                [
                    (d.original_topic, d.original_partition, d.original_offset, d.key, d.value,
                     [n for n, _ in d.headers], [v for _, v in d.headers], d.stage,
                     d.publish_error)
                    for d in letters
                ],
            )

    async def lock_due(self, *, limit: int) -> list[asyncpg.Record]:
        """Backlogged dead letters due for another try, row-locked."""
        return await self.conn.fetch(
            "SELECT id, original_key, original_value, header_names, header_values, attempts"
            " FROM dead_letter_backlog WHERE next_attempt_at <= now()"
            " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )

    async def forget(self, ids: list[int]) -> None:
        if ids:
            await self.conn.execute("DELETE FROM dead_letter_backlog WHERE id = ANY($1::bigint[])",
                                    ids)

    async def postpone(self, backlog_id: int, error: str, delay_s: float) -> None:
        await self.conn.execute(
            "UPDATE dead_letter_backlog SET attempts = attempts + 1, publish_error = $2,"
            " next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
            backlog_id,
            error[:2000],
            delay_s,
        )

    async def all(self) -> list[asyncpg.Record]:
        """Every backlogged dead letter, oldest first (for `seatflow dlq tail`)."""
        return await self.conn.fetch(
            "SELECT id, original_topic, original_partition, original_offset, original_key,"
            " original_value, header_names, header_values, stage, publish_error, attempts,"
            " created_at FROM dead_letter_backlog ORDER BY id"
        )

    async def count(self) -> int:
        return int(await self.conn.fetchval("SELECT count(*) FROM dead_letter_backlog"))
