"""What the pipeline benchmark feeds the worker: generated restaurants (loaded once, through a
worker, into a template database), the change mix of the throughput runs, the creates of the
latency runs, and producing them."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from bench.daygen import generate_restaurant
from bench.pipeline.config import BenchConfig, run_settings
from config.settings import Settings
from config.topics import TopicNames
from models.restaurant import RestaurantConfig
from producers.publisher import Publisher, make_change
from tests.support.stack import Stack, create_database_async
from tests.support.workers import WorkerProcess

MIX = {"create": 0.60, "realign": 0.15, "notes": 0.15, "cancel": 0.10}
# Party sizes (up to 8, so every party fits some combination) and start slots.
PARTY_MIX = ((1, 4), (2, 45), (3, 12), (4, 21), (5, 6), (6, 6), (7, 3), (8, 3))
LUNCH_SLOTS = ("12:00", "12:15", "12:30", "12:45", "13:00", "13:15", "13:30")
DINNER_SLOTS = tuple(f"{h}:{m:02d}" for h in range(17, 21) for m in (0, 15, 30, 45)) + ("21:00",)


# --- restaurants ------------------------------------------------------------------------------


def make_restaurants(cfg: BenchConfig) -> list[RestaurantConfig]:
    rng = random.Random(cfg.seed)
    out = []
    for i in range(cfg.restaurants):
        base = generate_restaurant(cfg.tables_per_restaurant, rng)
        rid = f"r{i:04d}"
        out.append(
            base.model_copy(
                update={"restaurant_id": rid, "slug": f"bench-{rid}", "name": f"Bench {rid}",
                        "timezone": "Europe/London", "contact_email": f"host@{rid}.example"}
            )
        )
    return out


async def build_template(stack: Stack, restaurants: list[RestaurantConfig], cfg: BenchConfig) -> str:
    """Restaurants loaded through a real worker (topic -> agent -> PostgreSQL), kept as a
    template database every run copies."""
    name = "bench_template"
    url = await create_database_async(stack, name)
    settings = run_settings(stack, url, "tpl", cfg)
    async with Publisher(settings) as pub:
        for r in restaurants:
            await pub.publish_restaurant(r)
    worker = WorkerProcess(settings, stack.root / "template.log").start(timeout=60.0)
    try:
        conn = await asyncpg.connect(url)
        try:
            deadline = time.monotonic() + 120
            while await conn.fetchval("SELECT count(*) FROM restaurants") < len(restaurants):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"restaurants not loaded:\n{worker.log_tail()}")
                await asyncio.sleep(0.2)
        finally:
            await conn.close()
    finally:
        worker.stop()
    return name


# --- the changes -------------------------------------------------------------------------------


def _first_day() -> date:
    # Two days ahead: no booking's start can pass (in any time zone) during a run.
    return datetime.now(UTC).date() + timedelta(days=2)


def _booking_fields(rng: random.Random, days: int, first: date) -> dict[str, Any]:
    slots = LUNCH_SLOTS if rng.random() < 0.3 else DINNER_SLOTS
    party = rng.choices([p for p, _ in PARTY_MIX], weights=[w for _, w in PARTY_MIX])[0]
    return {
        "booking_date": (first + timedelta(days=rng.randrange(days))).isoformat(),
        "start_time": rng.choice(slots),
        "party_size": party,
        "customer_name": f"Guest {rng.randrange(10**6)}",
        "customer_email": f"guest{rng.randrange(10**6)}@example.com",
        "notes": None,
    }


def _realign(rng: random.Random, fields: dict[str, Any], days: int, first: date) -> dict[str, Any]:
    what = rng.choice(("start_time", "party_size", "booking_date"))
    new = dict(fields)
    if what == "start_time":
        slots = LUNCH_SLOTS if fields["start_time"] in LUNCH_SLOTS else DINNER_SLOTS
        new["start_time"] = rng.choice([s for s in slots if s != fields["start_time"]])
    elif what == "party_size":
        new["party_size"] = fields["party_size"] + 1 if fields["party_size"] < 8 else 7
    else:  # another day in the spread, never the same one
        current = (date.fromisoformat(fields["booking_date"]) - first).days
        day = first + timedelta(days=(current + 1 + rng.randrange(days - 1)) % days)
        new["booking_date"] = day.isoformat()
    return new


def generate_mix(
    n: int, restaurants: list[RestaurantConfig], cfg: BenchConfig, seed: int, tag: str
) -> tuple[list[tuple[bytes, bytes]], Counter[str]]:
    """N change records (key, value) in publication order, and how many of each kind.

    Edits and cancellations name a booking created earlier in the stream (not cancelled
    yet); kinds are drawn so the stream ends with the exact mix."""
    rng = random.Random(seed)
    first = _first_day()
    remaining = {k: round(share * n) for k, share in MIX.items()}
    remaining["create"] += n - sum(remaining.values())
    live: list[str] = []
    live_index: dict[str, int] = {}
    bookings: dict[str, tuple[str, dict[str, Any]]] = {}
    records: list[tuple[bytes, bytes]] = []
    kinds: Counter[str] = Counter()
    for _ in range(n):
        choices = [k for k, left in remaining.items() if left > 0 and (k == "create" or live)]
        kind = rng.choices(choices, weights=[remaining[k] for k in choices])[0]
        remaining[kind] -= 1
        kinds[kind] += 1
        if kind == "create":
            bid = f"b-{tag}-{len(bookings)}"
            rid = rng.choice(restaurants).restaurant_id
            fields = _booking_fields(rng, cfg.days, first)
            bookings[bid] = (rid, fields)
            live_index[bid] = len(live)
            live.append(bid)
            change = make_change("booking.created", bid, rid, **fields)
        else:
            bid = live[rng.randrange(len(live))]
            rid, fields = bookings[bid]
            if kind == "cancel":
                last = live.pop()  # O(1) removal: move the last entry into the hole
                if last != bid:
                    live[live_index[bid]] = last
                    live_index[last] = live_index[bid]
                del live_index[bid]
                change = make_change("booking.cancelled", bid, rid)
            else:
                fields = (
                    _realign(rng, fields, cfg.days, first)
                    if kind == "realign"
                    else {**fields, "notes": f"note {rng.randrange(10**6)}: window seat please"}
                )
                bookings[bid] = (rid, fields)
                change = make_change("booking.updated", bid, rid, **fields)
        records.append((bid.encode(), change.model_dump_json().encode()))
    return records, kinds


def creates(
    n: int, restaurants: list[RestaurantConfig], cfg: BenchConfig, tag: str
) -> list[tuple[bytes, bytes]]:
    """N `booking.created` records (key, value), for the latency runs' offered load."""
    rng = random.Random(f"{cfg.seed}:{tag}")
    first = _first_day()
    out = []
    for i in range(n):
        bid = f"b-{tag}-{i}"
        change = make_change("booking.created", bid, rng.choice(restaurants).restaurant_id,
                             **_booking_fields(rng, cfg.days, first))
        out.append((bid.encode(), change.model_dump_json().encode()))
    return out


async def produce(settings: Settings, records: list[tuple[bytes, bytes]]) -> dict[str, float]:
    topic = TopicNames(settings.topic_prefix).booking_changes
    async with Publisher(settings, linger_ms=20, max_batch_size=512 * 1024) as pub:
        t0 = time.perf_counter()
        for key, value in records:
            await pub.publish_raw(topic, key, value)
        await pub.flush()
        elapsed = time.perf_counter() - t0
    return {"seconds": round(elapsed, 3), "per_s": round(len(records) / elapsed)}
