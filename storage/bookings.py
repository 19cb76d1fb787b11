"""Bookings and the tables they hold: one batched statement per step."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from domain.allocation import REACH_WINDOWS, Seated, Window
from domain.model import BookingState, assemble

_STATE_FIELDS = [
    "booking_id", "restaurant_id", "status", "pending_ref", "episode_kind", "episode_caused_by",
    "booking_date", "start_time", "requested_end_time", "end_time", "party_size",
    "customer_name", "customer_email", "customer_phone", "seating_preference", "notes",
    "source", "channel", "idempotency_key", "ever_confirmed", "alloc_state", "attempts",
    "last_failure", "version",
]
# Read with the state, never written by `save` (erasure sets it: storage.guest_data).
_BOOKING_COLUMNS = ", ".join(_STATE_FIELDS) + ", erased_at IS NOT NULL AS personal_data_erased"
_ROW_FIELDS = (*_STATE_FIELDS, "personal_data_erased")

# Column -> PostgreSQL array type, for the one-statement unnest upsert below.
_BOOKING_TYPES = {
    "booking_id": "text", "restaurant_id": "text", "status": "text", "pending_ref": "text",
    "episode_kind": "text", "episode_caused_by": "text", "booking_date": "date",
    "start_time": "time", "requested_end_time": "time", "end_time": "time",
    "party_size": "int4", "customer_name": "text", "customer_email": "text",
    "customer_phone": "text", "seating_preference": "text", "notes": "text", "source": "text",
    "channel": "text", "idempotency_key": "text", "ever_confirmed": "bool",
    "alloc_state": "text", "attempts": "int4", "last_failure": "text", "version": "int4",
    "next_attempt_at": "timestamptz", "customer_id": "int8",
}
_SAVE_COLUMNS = _STATE_FIELDS + ["next_attempt_at", "customer_id"]
_SAVE_SQL = (
    f"INSERT INTO bookings ({', '.join(_SAVE_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{_BOOKING_TYPES[c]}[]" for i, c in enumerate(_SAVE_COLUMNS))
    + ") ON CONFLICT (booking_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = EXCLUDED.{c}"
        for c in _SAVE_COLUMNS
        if c not in ("booking_id", "customer_id", "next_attempt_at")
    )
    + ", customer_id = COALESCE(EXCLUDED.customer_id, bookings.customer_id),"
    # A details-only edit must not lose a scheduled retry.
    " next_attempt_at = CASE WHEN EXCLUDED.alloc_state = 'retry'"
    "  THEN COALESCE(EXCLUDED.next_attempt_at, bookings.next_attempt_at) END,"
    " updated_at = now()"
)


def _state(row: asyncpg.Record, table_ids: tuple[str, ...]) -> BookingState:
    values = {k: row[k] for k in _ROW_FIELDS}
    values["table_ids"] = table_ids
    return assemble(BookingState, values)


@dataclass(frozen=True)
class TableHold:
    """One table a booking holds for [start, blocked_until)."""

    booking_id: str
    restaurant_id: str
    booking_date: date
    table_id: str
    start: datetime
    blocked_until: datetime


@dataclass(frozen=True)
class SeatingQuery:
    """The confirmed bookings one allocation decision may meet: those around `window`
    (within `allocation.reach` of it, when it has one), or, without a window, all those that
    can touch a window starting on `day`."""

    restaurant_id: str
    day: date
    window: Window | None = None
    # The longest window the batch itself places at this restaurant (they are not rows yet).
    longest: timedelta = timedelta(0)

    def bounds(self) -> tuple[datetime | None, datetime | None, datetime | None,
                              datetime | None, timedelta]:
        """(service start, service end, start, blocked until, longest) for the SQL, which
        widens the first two as `allocation.reach` does; all None but `longest` for none."""
        w = self.window
        if w is None or w.service_start is None or w.service_end is None:
            return None, None, None, None, self.longest
        return (w.service_start, w.service_end, w.start, w.blocked_until,
                max(self.longest, w.blocked_until - w.start))


@dataclass(frozen=True)
class DueAttempt:
    """A pending booking whose next allocation attempt is due."""

    booking_id: str
    restaurant_id: str
    pending_ref: str | None
    attempts: int


class BookingRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def table_ids_of(self, booking_ids: list[str]) -> dict[str, tuple[str, ...]]:
        rows = await self.conn.fetch(
            "SELECT bt.booking_id, rt.table_id FROM booking_tables bt"
            " JOIN restaurant_tables rt USING (table_key)"
            " WHERE bt.booking_id = ANY($1::text[]) ORDER BY bt.booking_id, rt.table_id",
            booking_ids,
        )
        out: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            out[r["booking_id"]].append(r["table_id"])
        return {k: tuple(v) for k, v in out.items()}

    async def lock(self, booking_ids: list[str]) -> dict[str, BookingState]:
        """Load and row-lock bookings (sorted, so concurrent batches never deadlock)."""
        ids = sorted(set(booking_ids))
        if not ids:
            return {}
        rows = await self.conn.fetch(
            f"SELECT {_BOOKING_COLUMNS} FROM bookings WHERE booking_id = ANY($1::text[])"
            " ORDER BY booking_id FOR UPDATE",
            ids,
        )
        confirmed = [r["booking_id"] for r in rows if r["status"] == "confirmed"]
        tables = await self.table_ids_of(confirmed) if confirmed else {}
        return {r["booking_id"]: _state(r, tables.get(r["booking_id"], ())) for r in rows}

    async def try_lock_confirmed(self, booking_ids: list[str]) -> dict[str, BookingState]:
        """Row-lock confirmed bookings without waiting (SKIP LOCKED): a booking another
        transaction is changing right now, or that is no longer confirmed, is left out."""
        ids = sorted(set(booking_ids))
        if not ids:
            return {}
        rows = await self.conn.fetch(
            f"SELECT {_BOOKING_COLUMNS} FROM bookings WHERE booking_id = ANY($1::text[])"
            " AND status = 'confirmed' ORDER BY booking_id FOR UPDATE SKIP LOCKED",
            ids,
        )
        tables = await self.table_ids_of([r["booking_id"] for r in rows])
        return {r["booking_id"]: _state(r, tables.get(r["booking_id"], ())) for r in rows}

    async def lock_pending_for_allocation(
        self, booking_ids: list[str], sweeps: list[tuple[str, date]]
    ) -> dict[str, BookingState]:
        """Pending bookings named by requests, plus every retryable pending one of swept
        (restaurant, date)s, row-locked."""
        # Two index lookups (by id; by restaurant and day among pending ones), not one OR
        # over every pending booking: with an OR the planner scans them all, and the scan
        # grows with the backlog it is there to drain (found by bench.soak).
        rows = await self.conn.fetch(
            f"SELECT {_BOOKING_COLUMNS} FROM bookings WHERE status = 'pending' AND booking_id IN ("
            " SELECT unnest($1::text[])"
            " UNION SELECT b.booking_id FROM unnest($2::text[], $3::date[]) AS d(r, day)"
            "  JOIN bookings b ON b.restaurant_id = d.r AND b.booking_date = d.day"
            "  AND b.status = 'pending' AND b.alloc_state IN ('queued', 'retry', 'exhausted'))"
            " ORDER BY booking_id FOR UPDATE",
            booking_ids,
            [r for r, _ in sweeps],
            [d for _, d in sweeps],
        )
        return {r["booking_id"]: _state(r, ()) for r in rows}

    async def save(
        self,
        states: list[BookingState],
        *,
        next_attempt_at: dict[str, datetime] | None = None,
        customer_ids: dict[str, int] | None = None,
    ) -> None:
        """Upsert final states in one statement (one round trip, however many bookings)."""
        if not states:
            return
        next_attempt_at = next_attempt_at or {}
        customer_ids = customer_ids or {}
        columns: list[list[Any]] = [[getattr(s, f) for s in states] for f in _STATE_FIELDS]
        columns.append([next_attempt_at.get(s.booking_id) for s in states])
        columns.append([customer_ids.get(s.booking_id) for s in states])
        await self.conn.execute(_SAVE_SQL, *columns)

    async def release_tables(self, booking_ids: list[str]) -> None:
        if booking_ids:
            await self.conn.execute(
                "DELETE FROM booking_tables WHERE booking_id = ANY($1::text[])", booking_ids
            )

    async def seated(self, wanted: list[SeatingQuery]) -> dict[str, dict[str, Seated]]:
        """Confirmed bookings per restaurant, with where they sit: what allocation must
        avoid, and what re-seating may move. Per query, those of its date and the
        neighbours (midnight) that can touch a window starting that day, and of those, when
        the query has a window with a reach (`allocation.reach`), only the ones within it."""
        if not wanted:
            return {}
        wanted = list(dict.fromkeys(wanted))  # the same decision twice: one query
        reaches = [q.bounds() for q in wanted]
        # One row per booking, its tables gathered here: a Python loop per table row was
        # the largest own cost of a busy allocator (bench.soak). DISTINCT: with a
        # restaurant's adjacent days in one batch, a booking matches both.
        rows = await self.conn.fetch(
            "SELECT n.restaurant_id, n.booking_id, b.party_size,"
            " array_agg(DISTINCT rt.table_id ORDER BY rt.table_id) AS table_ids,"
            " lower(n.during) AS s, upper(n.during) AS e"
            " FROM (SELECT w.lo, w.hi, w.s, w.u, bt.restaurant_id, bt.booking_id,"
            "   bt.table_key, bt.during,"
            # allocation.reach's far, with the longest window taken from the rows themselves
            # and from what this batch places (`floor`). Per restaurant, not per query: a
            # decision is also shown the rows loaded for the batch's other decisions there
            # (services.allocation._BatchSeating), and a longer one among them reaches further.
            "   $8::int * greatest(w.floor, max(upper(bt.during) - lower(bt.during))"
            "    OVER (PARTITION BY w.r)) AS far"
            "  FROM unnest($1::text[], $2::date[], $3::timestamp[], $4::timestamp[],"
            "   $5::timestamp[], $6::timestamp[], $7::interval[])"
            "   AS w(r, day, lo, hi, s, u, floor)"
            "  JOIN booking_tables bt ON bt.restaurant_id = w.r"
            "   AND bt.booking_date BETWEEN w.day - 1 AND w.day + 1"
            # Only what can touch a window starting that day: neighbours crossing midnight.
            # Written as bounds, not `during && tsrange(...)`: the overlap operator lets the
            # planner AND in the exclusion constraint's GiST index, which matches every
            # restaurant's bookings of those days and grows with the whole table (bench.soak).
            "   AND lower(bt.during) < (w.day + 2)::timestamp"
            "   AND upper(bt.during) > w.day::timestamp) AS n"
            " JOIN restaurant_tables rt ON rt.table_key = n.table_key"
            " JOIN bookings b ON b.booking_id = n.booking_id"
            " WHERE n.lo IS NULL OR (upper(n.during) > least(n.lo, n.s - n.far)"
            "  AND lower(n.during) < greatest(n.hi, n.u + n.far))"
            " GROUP BY n.restaurant_id, n.booking_id, b.party_size, n.during"
            " ORDER BY n.booking_id",
            [q.restaurant_id for q in wanted],
            [q.day for q in wanted],
            *([r[k] for r in reaches] for k in range(5)),
            REACH_WINDOWS,
        )
        out: dict[str, dict[str, Seated]] = defaultdict(dict)
        for restaurant_id, booking_id, party, table_ids, start, end in rows:
            # Positional: keywords cost a fifth of this loop, which runs per booking shown.
            out[restaurant_id][booking_id] = Seated(
                booking_id, party, Window(start, end, end), tuple(table_ids))
        return out

    async def hold_tables(self, holds: list[TableHold]) -> None:
        """Insert table holds; the exclusion constraint refuses any overlap."""
        if not holds:
            return
        await self.conn.execute(
            "INSERT INTO booking_tables (booking_id, table_key, restaurant_id, booking_date,"
            " during) SELECT x.b, rt.table_key, x.r, x.d, tsrange(x.s, x.e, '[)')"
            " FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::timestamp[],"
            "  $6::timestamp[]) AS x(b, r, d, t, s, e)"
            " JOIN restaurant_tables rt ON rt.restaurant_id = x.r AND rt.table_id = x.t",
            [h.booking_id for h in holds],
            [h.restaurant_id for h in holds],
            [h.booking_date for h in holds],
            [h.table_id for h in holds],
            [h.start for h in holds],
            [h.blocked_until for h in holds],
        )

    async def take_due_attempts(
        self, *, now: datetime, stuck_after: timedelta, limit: int
    ) -> list[DueAttempt]:
        """Mark due retries (and requests unanswered for `stuck_after`) queued again, and
        return them. SKIP LOCKED: several workers never claim the same booking."""
        # The inner select names only what its two partial indexes cover: with `status =
        # 'pending'` beside them, a worker's generic plan also walked every pending booking
        # (bookings_pending_by_date, ANDed in), on each timer tick (bench.soak: ~190 index
        # entries per change late in the run). A booking leaves pending only with its
        # alloc_state done (domain.lifecycle); the outer filter keeps that a guarantee.
        records = await self.conn.fetch(
            "UPDATE bookings SET alloc_state = 'queued', next_attempt_at = NULL, updated_at = $1"
            " WHERE status = 'pending' AND booking_id IN ("
            "  SELECT booking_id FROM bookings WHERE"
            "  (alloc_state = 'retry' AND next_attempt_at <= $1)"
            "   OR (alloc_state = 'queued' AND updated_at < $1 - $3::interval)"
            "  ORDER BY next_attempt_at NULLS LAST LIMIT $2 FOR UPDATE SKIP LOCKED"
            ") RETURNING booking_id, restaurant_id, pending_ref, attempts",
            now,
            limit,
            stuck_after,
        )
        return [DueAttempt(r["booking_id"], r["restaurant_id"], r["pending_ref"], r["attempts"])
                for r in records]

    async def view(self, booking_id: str) -> dict[str, Any] | None:
        """The booking as `GET /bookings/{id}` shows it (without its emails)."""
        row = await self.conn.fetchrow(
            "SELECT booking_id, restaurant_id, status, pending_ref, booking_date, start_time,"
            " end_time, requested_end_time, party_size, customer_name, customer_email,"
            " customer_phone, seating_preference, notes, source, channel, idempotency_key,"
            " alloc_state, attempts, last_failure, version, updated_at, erased_at IS NOT NULL AS personal_data_erased"
            " FROM bookings WHERE booking_id = $1",
            booking_id,
        )
        if row is None:
            return None
        view = dict(row)
        view["table_ids"] = list((await self.table_ids_of([booking_id])).get(booking_id, ()))
        return view

    async def for_emails(self, booking_ids: list[str]) -> dict[str, asyncpg.Record]:
        """What the email templates need of each booking."""
        return {
            b["booking_id"]: b
            for b in await self.conn.fetch(
                "SELECT booking_id, restaurant_id, pending_ref, booking_date, start_time,"
                " end_time, party_size, customer_name, customer_email, notes, last_failure"
                " FROM bookings WHERE booking_id = ANY($1::text[])",
                booking_ids,
            )
        }
