"""The unit of work: one PostgreSQL transaction and the repositories that work inside it.

    async with database.transaction() as uow:
        states = await uow.bookings.lock(ids)
        ...
        await uow.outbox.add(rows)

Everything the block does commits together, or nothing does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from storage.allocations import AllocationRequestRepository
from storage.bookings import BookingRepository
from storage.days import DayRepository
from storage.dead_letters import DeadLetterBacklog
from storage.guest_data import GuestDataRepository
from storage.intake import IntakeRepository
from storage.notifications import NotificationRepository
from storage.outbox import OutboxRepository
from storage.restaurants import RestaurantRepository
from storage.retention import RetentionRepository


class UnitOfWork:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.bookings = BookingRepository(conn)
        self.restaurants = RestaurantRepository(conn)
        self.intake = IntakeRepository(conn)
        self.notifications = NotificationRepository(conn)
        self.allocation_requests = AllocationRequestRepository(conn)
        self.outbox = OutboxRepository(conn)
        self.dead_letters = DeadLetterBacklog(conn)
        self.retention = RetentionRepository(conn)
        self.guest_data = GuestDataRepository(conn)
        self.days = DayRepository(conn)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A block that, if it raises, is undone alone; the rest of the unit of work stays."""
        async with self._conn.transaction():
            yield


class Database:
    """A connection pool that hands out units of work."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield UnitOfWork(conn)

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def close(self) -> None:
        await self.pool.close()
