"""Seeded, generated restaurant days for the allocation benchmarks.

A restaurant of N tables: a realistic mix of 2-, 4- and 6-tops laid out in rows per zone
(neighbours in a row are adjacent, so rows of 2-tops can be pushed together), a lunch
service that may overrun and a dinner service that may not. A day: dinner booking requests
whose covers x turn minutes add up to a chosen share (70-110%) of the seat-minutes the
dinner service offers, with a realistic party-size mix and peak around 19:00-20:00, in the
order guests made them (not in sitting order).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, time

from models.restaurant import RestaurantConfig

BENCH_DATE = date(2026, 12, 4)

# Share of tables by capacity, and the zones a restaurant of a given size has.
_TABLE_MIX = ((2, 0.40), (4, 0.45), (6, 0.15))
_ROW_LENGTH = 5
# Party sizes as restaurants see them: mostly couples and foursomes, a tail of big groups.
_PARTY_MIX = (
    (1, 0.04), (2, 0.44), (3, 0.12), (4, 0.21), (5, 0.06), (6, 0.06),
    (7, 0.03), (8, 0.025), (9, 0.01), (10, 0.005),
)  # fmt: skip
# Dinner start slots (every 15 min, 17:00-21:00) weighted to a 19:00-20:00 peak.
_SLOT_WEIGHTS = (
    ("17:00", 2), ("17:15", 2), ("17:30", 3), ("17:45", 3), ("18:00", 5), ("18:15", 5),
    ("18:30", 7), ("18:45", 7), ("19:00", 9), ("19:15", 9), ("19:30", 10), ("19:45", 9),
    ("20:00", 8), ("20:15", 7), ("20:30", 5), ("20:45", 3), ("21:00", 2),
)  # fmt: skip
DINNER_START, DINNER_END = time(17, 0), time(22, 0)
TURNS_PER_EVENING = 2.0


@dataclass(frozen=True, slots=True)
class Request:
    booking_id: str
    start: time
    party: int


@dataclass(frozen=True, slots=True)
class Day:
    config: RestaurantConfig
    requests: tuple[Request, ...]  # in arrival (booking) order
    demand: float  # requested cover-minutes / offered seat-minutes at dinner
    seed: int


def _zones_for(n_tables: int) -> list[str]:
    if n_tables <= 12:
        return ["main"]
    if n_tables <= 40:
        return ["main", "terrace"]
    return ["main", "terrace", "window"][: max(3, n_tables // 20)] + [
        f"room{i}" for i in range(max(0, n_tables // 20 - 3))
    ]


def generate_restaurant(n_tables: int, rng: random.Random) -> RestaurantConfig:
    capacities = []
    for cap, share in _TABLE_MIX:
        capacities += [cap] * round(n_tables * share)
    while len(capacities) < n_tables:
        capacities.append(4)
    capacities = capacities[:n_tables]
    rng.shuffle(capacities)
    # Rows of like tables read as real floors (banquettes of 2-tops); shuffle a little.
    capacities.sort(key=lambda c: (c, rng.random() < 0.3))

    zones = _zones_for(n_tables)
    tables, adjacency = [], []
    for i, cap in enumerate(capacities):
        zone = zones[min(len(zones) - 1, i * len(zones) // n_tables)]
        tid = f"t{i + 1:03d}"
        tables.append(
            {
                "table_id": tid,
                "number": str(i + 1),
                "zone": zone,
                "capacity": cap,
                # A 6-top is not given to a couple; a 2-top may squeeze in a third at a push.
                "min_party": 3 if cap == 6 else 1,
                "max_party": 3 if cap == 2 and rng.random() < 0.1 else None,
                "active": rng.random() > 0.02,
            }
        )
        prev = tables[i - 1] if i else None
        if prev is not None and prev["zone"] == zone and i % _ROW_LENGTH != 0:
            adjacency.append([prev["table_id"], tid])
        # A few tables also touch the one across the aisle (a row behind).
        if i >= _ROW_LENGTH and rng.random() < 0.15:
            other = tables[i - _ROW_LENGTH]
            if other["zone"] == zone:
                adjacency.append([other["table_id"], tid])
    return RestaurantConfig.model_validate(
        {
            "restaurant_id": f"r-bench-{n_tables}",
            "name": f"Bench {n_tables}",
            "slug": f"bench-{n_tables}",
            "tables": tables,
            "adjacency": adjacency,
            "services": [
                {"name": "lunch", "start": "12:00", "end": "15:00", "allow_overrun": True},
                {"name": "dinner", "start": "17:00", "end": "22:00", "allow_overrun": False},
            ],
        }
    )


def generate_day(
    n_tables: int, seed: int, demand: float | None = None, basis: str = "turns"
) -> Day:
    """One seeded day; ``demand`` defaults to a seeded draw from 0.70-1.10.

    ``basis`` says what 100% demand means:
      * "turns": requested covers = seats x TURNS_PER_EVENING, the capacity a restaurant
        plans with (dinner tables turn about twice in an evening);
      * "seat_minutes": requested covers x turn minutes = seats x dinner minutes, the
        theoretical ceiling no peaked evening reaches: a stress test, far over-booked.
    """
    rng = random.Random(f"{n_tables}:{seed}")
    cfg = generate_restaurant(n_tables, rng)
    if demand is None:
        demand = rng.uniform(0.70, 1.10)
    seats = sum(t.capacity for t in cfg.tables if t.active)
    if basis == "turns":
        offered = seats * TURNS_PER_EVENING

        def load(party: int) -> float:
            return party

    elif basis == "seat_minutes":
        offered = seats * (DINNER_END.hour - DINNER_START.hour) * 60

        def load(party: int) -> float:
            return party * cfg.turn_for(party)

    else:
        raise ValueError(f"unknown demand basis {basis!r}")

    sizes, size_weights = zip(*_PARTY_MIX, strict=True)
    slots, slot_weights = zip(*_SLOT_WEIGHTS, strict=True)
    requests: list[Request] = []
    requested = 0.0
    while requested < demand * offered:
        party = rng.choices(sizes, size_weights)[0]
        hh, mm = rng.choices(slots, slot_weights)[0].split(":")
        requests.append(Request(f"b{len(requests) + 1:04d}", time(int(hh), int(mm)), party))
        requested += load(party)
    # Arrival order: mostly random, but big groups tend to book further ahead.
    order = sorted(requests, key=lambda r: rng.random() - 0.04 * r.party)
    return Day(config=cfg, requests=tuple(order), demand=demand, seed=seed)
