"""One restaurant's day, as the day view draws it (docs/interface.md §6): the confirmed
bookings that start on it with the tables they hold, and the pending ones.

Both reads use indexes the hot path keeps anyway (`booking_tables_by_day`, and the partial
`bookings_pending_by_date`), so the page adds no write cost. Cancelled bookings hold no
table and are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import asyncpg


@dataclass(frozen=True)
class DayBooking:
    booking_id: str
    status: str
    booking_date: date
    start_time: time
    end_time: time | None
    party_size: int
    customer_name: str | None
    source: str
    channel: str | None
    alloc_state: str
    attempts: int
    last_failure: str | None
    episode_kind: str
    table_ids: tuple[str, ...] = ()
    # When its tables are free again (end + buffer), as stored with the hold.
    held_until: datetime | None = None

    @property
    def start(self) -> datetime:
        return datetime.combine(self.booking_date, self.start_time)

    @property
    def end(self) -> datetime | None:
        """The end as a local datetime: an end earlier than the start is on the next day."""
        if self.end_time is None:
            return None
        end = datetime.combine(self.booking_date, self.end_time)
        return end + timedelta(days=1) if end <= self.start else end


_COLUMNS = (
    "b.booking_id, b.status, b.booking_date, b.start_time, b.end_time, b.party_size,"
    " b.customer_name, b.source, b.channel, b.alloc_state, b.attempts, b.last_failure,"
    " b.episode_kind"
)


def _booking(row: asyncpg.Record, **extra: object) -> DayBooking:
    return DayBooking(**{k: row[k] for k in (
        "booking_id", "status", "booking_date", "start_time", "end_time", "party_size",
        "customer_name", "source", "channel", "alloc_state", "attempts", "last_failure",
        "episode_kind")}, **extra)  # type: ignore[arg-type]


class DayRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def bookings(self, restaurant_id: str, day: date) -> list[DayBooking]:
        """Confirmed bookings starting on `day` (with tables) and pending ones, by start."""
        held = await self.conn.fetch(
            f"SELECT {_COLUMNS}, rt.table_id, upper(bt.during) AS held_until"
            " FROM booking_tables bt"
            " JOIN restaurant_tables rt ON rt.table_key = bt.table_key"
            " JOIN bookings b ON b.booking_id = bt.booking_id"
            " WHERE bt.restaurant_id = $1 AND bt.booking_date = $2 AND b.status = 'confirmed'"
            " ORDER BY b.booking_id, rt.table_id",
            restaurant_id,
            day,
        )
        tables: dict[str, list[str]] = {}
        first: dict[str, asyncpg.Record] = {}
        for row in held:
            tables.setdefault(row["booking_id"], []).append(row["table_id"])
            first.setdefault(row["booking_id"], row)
        out = [_booking(row, table_ids=tuple(tables[bid]), held_until=row["held_until"])
               for bid, row in first.items()]
        pending = await self.conn.fetch(
            f"SELECT {_COLUMNS} FROM bookings b"
            " WHERE b.restaurant_id = $1 AND b.booking_date = $2 AND b.status = 'pending'",
            restaurant_id,
            day,
        )
        out.extend(_booking(row) for row in pending)
        out.sort(key=lambda b: (b.start_time, b.booking_id))
        return out
