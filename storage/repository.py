"""SQL for bookings, restaurants, tables and notifications: one place, batched statements."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

import asyncpg

from domain.allocation import Seated, Window
from domain.model import BookingState
from models.restaurant import RestaurantConfig

# --- restaurants ------------------------------------------------------------------------------

_config_cache: dict[tuple[str, datetime], RestaurantConfig] = {}


def _parse_config(restaurant_id: str, updated_at: datetime, raw: dict) -> RestaurantConfig:
    # Parsing a config is the costliest thing per batch; the row's updated_at keys the cache.
    key = (restaurant_id, updated_at)
    cfg = _config_cache.get(key)
    if cfg is None:
        if len(_config_cache) > 10_000:
            _config_cache.clear()
        cfg = _config_cache[key] = RestaurantConfig.model_validate(raw)
    return cfg


async def load_restaurants(
    conn: asyncpg.Connection, restaurant_ids: list[str], *, lock: bool = False
) -> dict[str, RestaurantConfig]:
    """Validated configs; the jsonb is fetched and parsed only when its version is new."""
    if not restaurant_ids:
        return {}
    sql = (
        "SELECT restaurant_id, updated_at FROM restaurants "
        "WHERE restaurant_id = ANY($1::text[]) ORDER BY restaurant_id"
    )
    if lock:
        sql += " FOR UPDATE"
    versions = await conn.fetch(sql, sorted(set(restaurant_ids)))
    missing = [r["restaurant_id"] for r in versions
               if (r["restaurant_id"], r["updated_at"]) not in _config_cache]
    if missing:
        for r in await conn.fetch(
            "SELECT restaurant_id, config, updated_at FROM restaurants"
            " WHERE restaurant_id = ANY($1::text[])",
            missing,
        ):
            _parse_config(r["restaurant_id"], r["updated_at"], r["config"])
    out = {}
    for r in versions:
        cfg = _config_cache.get((r["restaurant_id"], r["updated_at"]))
        if cfg is not None:  # None only if a newer version landed between the two reads
            out[r["restaurant_id"]] = cfg
    return out


async def upsert_restaurant(conn: asyncpg.Connection, cfg: RestaurantConfig) -> None:
    await conn.execute(
        "INSERT INTO restaurants (restaurant_id, slug, name, timezone, contact_email, config,"
        " updated_at) VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())"
        " ON CONFLICT (restaurant_id) DO UPDATE SET slug = EXCLUDED.slug, name = EXCLUDED.name,"
        " timezone = EXCLUDED.timezone, contact_email = EXCLUDED.contact_email,"
        " config = EXCLUDED.config, updated_at = EXCLUDED.updated_at",
        cfg.restaurant_id,
        cfg.slug,
        cfg.name,
        cfg.timezone,
        cfg.contact_email,
        cfg.model_dump(mode="json"),
    )
    await conn.execute(
        "INSERT INTO restaurant_tables (restaurant_id, table_id)"
        " SELECT $1, t FROM unnest($2::text[]) t ON CONFLICT DO NOTHING",
        cfg.restaurant_id,
        [t.table_id for t in cfg.tables],
    )


def restaurant_lock_key(restaurant_id: str) -> str:
    return f"restaurant:{restaurant_id}"


async def lock_restaurants_shared(conn: asyncpg.Connection, restaurant_ids: list[str]) -> None:
    """Readers of 'is this restaurant configured?' vs the config writer (parking race)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock_shared(hashtext(k)) FROM unnest($1::text[]) k ORDER BY k",
        sorted({restaurant_lock_key(r) for r in restaurant_ids}),
    )


async def lock_restaurant_exclusive(conn: asyncpg.Connection, restaurant_id: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))", restaurant_lock_key(restaurant_id)
    )


# --- bookings ------------------------------------------------------------------------------------

_BOOKING_COLUMNS = (
    "booking_id, restaurant_id, status, pending_ref, episode_kind, episode_caused_by,"
    " booking_date, start_time, requested_end_time, end_time, party_size, customer_name,"
    " customer_email, customer_phone, seating_preference, notes, source, channel,"
    " idempotency_key, ever_confirmed, alloc_state, attempts, last_failure, version"
)


def _state(row: asyncpg.Record, table_ids: tuple[str, ...]) -> BookingState:
    return BookingState(**{k: row[k] for k in _STATE_FIELDS}, table_ids=table_ids)


_STATE_FIELDS = [c.strip() for c in _BOOKING_COLUMNS.split(",")]


async def table_ids_of(conn: asyncpg.Connection, booking_ids: list[str]) -> dict[str, tuple[str, ...]]:
    rows = await conn.fetch(
        "SELECT bt.booking_id, rt.table_id FROM booking_tables bt"
        " JOIN restaurant_tables rt USING (table_key)"
        " WHERE bt.booking_id = ANY($1::text[]) ORDER BY bt.booking_id, rt.table_id",
        booking_ids,
    )
    out: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        out[r["booking_id"]].append(r["table_id"])
    return {k: tuple(v) for k, v in out.items()}


async def lock_bookings(conn: asyncpg.Connection, booking_ids: list[str]) -> dict[str, BookingState]:
    """Load and row-lock bookings (sorted, so concurrent batches never deadlock)."""
    ids = sorted(set(booking_ids))
    if not ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {_BOOKING_COLUMNS} FROM bookings WHERE booking_id = ANY($1::text[])"
        " ORDER BY booking_id FOR UPDATE",
        ids,
    )
    confirmed = [r["booking_id"] for r in rows if r["status"] == "confirmed"]
    tables = await table_ids_of(conn, confirmed) if confirmed else {}
    return {r["booking_id"]: _state(r, tables.get(r["booking_id"], ())) for r in rows}


async def lock_pending_for_allocation(
    conn: asyncpg.Connection, booking_ids: list[str], sweeps: list[tuple[str, date]]
) -> dict[str, BookingState]:
    """Pending bookings named by requests, plus every retryable pending one of swept dates."""
    rows = await conn.fetch(
        f"SELECT {_BOOKING_COLUMNS}, created_at FROM bookings b WHERE status = 'pending' AND ("
        " booking_id = ANY($1::text[]) OR (alloc_state IN ('queued', 'retry', 'exhausted') AND"
        "  (restaurant_id, booking_date) IN (SELECT * FROM unnest($2::text[], $3::date[]))))"
        " ORDER BY booking_id FOR UPDATE",
        booking_ids,
        [r for r, _ in sweeps],
        [d for _, d in sweeps],
    )
    return {r["booking_id"]: _state(r, ()) for r in rows}


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


async def save_bookings(
    conn: asyncpg.Connection,
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
    await conn.execute(_SAVE_SQL, *columns)


async def release_tables(conn: asyncpg.Connection, booking_ids: list[str]) -> None:
    if booking_ids:
        await conn.execute(
            "DELETE FROM booking_tables WHERE booking_id = ANY($1::text[])", booking_ids
        )


async def seated_bookings(
    conn: asyncpg.Connection, days: list[tuple[str, date]]
) -> dict[str, dict[str, Seated]]:
    """Confirmed bookings per restaurant on the given dates and their neighbours (midnight),
    with where they sit: what allocation must avoid, and what re-seating may move."""
    if not days:
        return {}
    days = sorted(set(days))
    rows = await conn.fetch(
        "SELECT bt.restaurant_id, bt.booking_id, bt.booking_date, b.party_size, rt.table_id,"
        " lower(bt.during) AS s, upper(bt.during) AS e"
        " FROM unnest($1::text[], $2::date[]) AS d(r, day)"
        " JOIN booking_tables bt ON bt.restaurant_id = d.r"
        "  AND bt.booking_date BETWEEN d.day - 1 AND d.day + 1"
        # Only what can touch a window starting that day: neighbours crossing midnight.
        "  AND bt.during && tsrange(d.day::timestamp, (d.day + 2)::timestamp)"
        " JOIN restaurant_tables rt ON rt.table_key = bt.table_key"
        " JOIN bookings b ON b.booking_id = bt.booking_id"
        " ORDER BY bt.booking_id, rt.table_id",
        [r for r, _ in days],
        [d for _, d in days],
    )
    tables: dict[str, list[str]] = defaultdict(list)
    first: dict[str, asyncpg.Record] = {}
    for r in rows:
        tables[r["booking_id"]].append(r["table_id"])
        first.setdefault(r["booking_id"], r)
    out: dict[str, dict[str, Seated]] = defaultdict(dict)
    for bid, r in first.items():
        window = Window(start=r["s"], end=r["e"], blocked_until=r["e"])
        out[r["restaurant_id"]][bid] = Seated(bid, r["party_size"], window, tuple(tables[bid]))
    return out


async def assign_tables(conn: asyncpg.Connection, rows: list[tuple[str, str, date, str, datetime, datetime]]) -> None:
    """rows: (booking_id, restaurant_id, booking_date, table_id, start, blocked_until)."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO booking_tables (booking_id, table_key, restaurant_id, booking_date, during)"
        " SELECT x.b, rt.table_key, x.r, x.d, tsrange(x.s, x.e, '[)')"
        " FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::timestamp[],"
        "  $6::timestamp[]) AS x(b, r, d, t, s, e)"
        " JOIN restaurant_tables rt ON rt.restaurant_id = x.r AND rt.table_id = x.t",
        *[list(col) for col in zip(*rows, strict=True)],
    )


# --- idempotent submissions and customers -------------------------------------------------------


async def claim_submissions(
    conn: asyncpg.Connection, claims: list[tuple[str, str, str]]
) -> dict[tuple[str, str], str]:
    """claims: (restaurant_id, idempotency_key, booking_id). Returns the owner of each key."""
    if not claims:
        return {}
    cols = [list(c) for c in zip(*claims, strict=True)]
    await conn.execute(
        "INSERT INTO submissions (restaurant_id, idempotency_key, booking_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
        *cols,
    )
    rows = await conn.fetch(
        "SELECT s.restaurant_id, s.idempotency_key, s.booking_id FROM submissions s"
        " JOIN unnest($1::text[], $2::text[]) AS k(r, i)"
        " ON s.restaurant_id = k.r AND s.idempotency_key = k.i",
        cols[0],
        cols[1],
    )
    return {(r["restaurant_id"], r["idempotency_key"]): r["booking_id"] for r in rows}


async def upsert_customers(
    conn: asyncpg.Connection, customers: list[tuple[str, str, str | None, str | None, bool]]
) -> dict[tuple[str, str], int]:
    """customers: (restaurant_id, email, name, phone, synthetic) -> {(restaurant, email): id}."""
    if not customers:
        return {}
    unique = {(c[0], c[1]): c for c in customers}
    cols = [list(c) for c in zip(*unique.values(), strict=True)]
    rows = await conn.fetch(
        "INSERT INTO customers (restaurant_id, email, name, phone, synthetic)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[])"
        " ON CONFLICT (restaurant_id, email) DO UPDATE SET"
        "  name = COALESCE(EXCLUDED.name, customers.name),"
        "  phone = COALESCE(customers.phone, EXCLUDED.phone)"
        " RETURNING customer_id, restaurant_id, email",
        *cols,
    )
    return {(r["restaurant_id"], r["email"]): r["customer_id"] for r in rows}


# --- parked changes (restaurant not configured yet) ---------------------------------------------


async def bookings_with_parked(conn: asyncpg.Connection, booking_ids: list[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT booking_id FROM parked_changes WHERE booking_id = ANY($1::text[])",
        booking_ids,
    )
    return {r["booking_id"] for r in rows}


async def park(conn: asyncpg.Connection, parked: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    """parked: (restaurant_id, booking_id, event_id, payload)."""
    if parked:
        await conn.executemany(
            "INSERT INTO parked_changes (restaurant_id, booking_id, event_id, payload)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
            parked,
        )


async def take_parked(conn: asyncpg.Connection, restaurant_id: str) -> list[dict[str, Any]]:
    """Remove and return the restaurant's parked changes, oldest first; also every later
    change parked for the same bookings (they waited behind them, whatever the restaurant)."""
    rows = await conn.fetch(
        "DELETE FROM parked_changes WHERE booking_id IN"
        " (SELECT booking_id FROM parked_changes WHERE restaurant_id = $1)"
        " RETURNING seq, payload",
        restaurant_id,
    )
    return [r["payload"] for r in sorted(rows, key=lambda r: r["seq"])]


# --- allocation requests acted on ------------------------------------------------------------


async def claim_allocation_requests(
    conn: asyncpg.Connection, requests: list[tuple[str, str]]
) -> set[str]:
    """requests: (request_id, restaurant_id). Records each id once; returns the ids this
    transaction claimed (the others were acted on before: redeliveries)."""
    if not requests:
        return set()
    rows = await conn.fetch(
        "INSERT INTO allocation_requests_done (request_id, restaurant_id)"
        " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING"
        " RETURNING request_id",
        [r for r, _ in requests],
        [rid for _, rid in requests],
    )
    return {r["request_id"] for r in rows}


# --- dead letters the topic refused ---------------------------------------------------------


async def backlog_dead_letters(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """rows: (topic, partition, offset, key, value, header_names, header_values, stage,
    publish_error). A message stored before (a redelivery) is not stored twice."""
    if rows:
        await conn.executemany(
            "INSERT INTO dead_letter_backlog (original_topic, original_partition,"
            " original_offset, original_key, original_value, header_names, header_values,"
            " stage, publish_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (original_topic, original_partition, original_offset) DO NOTHING",
            rows,
        )


async def due_backlogged_dead_letters(
    conn: asyncpg.Connection, *, limit: int
) -> list[asyncpg.Record]:
    """Backlogged dead letters due for another try, locked for this transaction."""
    return await conn.fetch(
        "SELECT id, original_key, original_value, header_names, header_values, attempts"
        " FROM dead_letter_backlog WHERE next_attempt_at <= now()"
        " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )


async def forget_backlogged_dead_letters(conn: asyncpg.Connection, ids: list[int]) -> None:
    if ids:
        await conn.execute("DELETE FROM dead_letter_backlog WHERE id = ANY($1::bigint[])", ids)


async def postpone_backlogged_dead_letter(
    conn: asyncpg.Connection, backlog_id: int, error: str, delay_s: float
) -> None:
    await conn.execute(
        "UPDATE dead_letter_backlog SET attempts = attempts + 1, publish_error = $2,"
        " next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
        backlog_id,
        error[:2000],
        delay_s,
    )


async def backlogged_dead_letters(conn: asyncpg.Connection, *, limit: int | None = None
                                  ) -> list[asyncpg.Record]:
    """Every backlogged dead letter, oldest first (for `seatflow dlq tail`)."""
    return await conn.fetch(
        "SELECT id, original_topic, original_partition, original_offset, original_key,"
        " original_value, header_names, header_values, stage, publish_error, attempts,"
        " created_at FROM dead_letter_backlog ORDER BY id"
        + (" LIMIT $1" if limit is not None else ""),
        *([limit] if limit is not None else []),
    )


async def count_backlogged_dead_letters(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM dead_letter_backlog"))
