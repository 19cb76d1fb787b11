"""Seeded, generated restaurant days for the allocation benchmarks.

A restaurant of N tables: a realistic mix of 2-, 4- and 6-tops laid out in rows per zone
(neighbours in a row are adjacent, so rows of 2-tops can be pushed together), a lunch
service that may overrun and a dinner service that may not. A day: dinner booking requests
whose covers add up to a chosen share (70-110%) of what the dinner service offers, with a
realistic party-size mix and peak around 19:00-20:00, in the order guests made them (not in
sitting order).

Kinds of day (``KINDS``), each from the same restaurant generator and seed:
  * ``standard``: the above (the quality targets are measured on these days);
  * ``large_parties``: a third of the parties are 7-12 (combinations of two or three tables);
  * ``walk_ins``: 40 % of the covers are walk-ins, asked for at the moment they start (after
    every advance booking, in time order), so bookings already seated cannot be re-seated;
  * ``midnight``: a late service 22:00-02:00 besides dinner; late bookings start up to 01:30
    (those after midnight belong to the next date) and some end past midnight;
  * ``layout_change``: half way through the requests a table that combinations use is
    deactivated; later requests see the new layout, bookings already on it stay there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

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

KINDS = ("standard", "large_parties", "walk_ins", "midnight", "layout_change")
# Large-party days: a third of the parties need two or three tables.
_LARGE_PARTY_MIX = (
    (2, 0.30), (3, 0.08), (4, 0.17), (5, 0.06), (6, 0.06),
    (7, 0.07), (8, 0.08), (9, 0.06), (10, 0.05), (11, 0.04), (12, 0.03),
)  # fmt: skip
# Walk-ins: mostly couples and small groups, who turn up rather than book.
_WALK_IN_MIX = ((1, 0.08), (2, 0.55), (3, 0.15), (4, 0.17), (5, 0.03), (6, 0.02))
WALK_IN_SHARE = 0.4
# The late service of a midnight day: what it offers, in turns, on top of dinner's.
LATE_START, LATE_END = time(22, 0), time(2, 0)
LATE_TURNS = 1.5
# Late starts (every 15 min, 22:00-01:30), most before midnight.
_LATE_SLOTS = (
    ("22:00", 6), ("22:15", 6), ("22:30", 6), ("22:45", 5), ("23:00", 5), ("23:15", 4),
    ("23:30", 4), ("23:45", 3), ("00:00", 3), ("00:15", 2), ("00:30", 2), ("00:45", 1),
    ("01:00", 1), ("01:15", 1), ("01:30", 1),
)  # fmt: skip
# Share of late bookings that give their own end (a long evening), 90-150 minutes.
_LATE_EXPLICIT_END = 0.3


@dataclass(frozen=True, slots=True)
class Request:
    booking_id: str
    start: time
    party: int
    date: date = BENCH_DATE  # the date it starts on (a booking belongs to it)
    end: time | None = None  # None: the turn; earlier than start: ends the next day
    walk_in: bool = False  # asked for as it starts: bookings already seated stay put


@dataclass(frozen=True, slots=True)
class Day:
    config: RestaurantConfig
    requests: tuple[Request, ...]  # in arrival (booking) order
    demand: float  # requested covers (or cover-minutes) / what the services offer
    seed: int
    kind: str = "standard"
    # layout_change: from request index ``change_at`` (arrival order) on, ``config_after``
    # is the restaurant's configuration.
    change_at: int | None = None
    config_after: RestaurantConfig | None = None
    deactivated: tuple[str, ...] = field(default=())

    def config_for(self, index: int) -> RestaurantConfig:
        """The configuration in force when request ``index`` (arrival order) is decided."""
        if self.change_at is not None and index >= self.change_at:
            assert self.config_after is not None
            return self.config_after
        return self.config

    def decided_at(self, request: Request) -> datetime:
        """When a request is decided (local naive): walk-ins a minute before they start,
        advance bookings the day before."""
        if request.walk_in:
            return datetime.combine(request.date, request.start) - timedelta(minutes=1)
        return datetime.combine(BENCH_DATE - timedelta(days=1), time(12, 0))


def _zones_for(n_tables: int) -> list[str]:
    if n_tables <= 12:
        return ["main"]
    if n_tables <= 40:
        return ["main", "terrace"]
    return ["main", "terrace", "window"][: max(3, n_tables // 20)] + [
        f"room{i}" for i in range(max(0, n_tables // 20 - 3))
    ]


def generate_restaurant(
    n_tables: int, rng: random.Random, *, late_service: bool = False
) -> RestaurantConfig:
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
            ]
            + (
                [{"name": "late", "start": f"{LATE_START:%H:%M}", "end": f"{LATE_END:%H:%M}",
                  "allow_overrun": True}]
                if late_service
                else []
            ),
        }
    )


def generate_day(
    n_tables: int,
    seed: int,
    demand: float | None = None,
    basis: str = "turns",
    kind: str = "standard",
) -> Day:
    """One seeded day of a kind (``KINDS``); ``demand`` defaults to a seeded draw from
    0.70-1.10. A standard day is the same whatever else this module offers.

    ``basis`` says what 100% demand means:
      * "turns": requested covers = seats x TURNS_PER_EVENING, the capacity a restaurant
        plans with (dinner tables turn about twice in an evening);
      * "seat_minutes": requested covers x turn minutes = seats x dinner minutes, the
        theoretical ceiling no peaked evening reaches: a stress test, far over-booked.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown day kind {kind!r}; one of {', '.join(KINDS)}")
    # A standard day keeps the seed string it always had, so its days stay the same.
    rng = random.Random(f"{n_tables}:{seed}" if kind == "standard" else f"{kind}:{n_tables}:{seed}")
    cfg = generate_restaurant(n_tables, rng, late_service=kind == "midnight")
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

    mix = _LARGE_PARTY_MIX if kind == "large_parties" else _PARTY_MIX
    booked_share = 1.0 - WALK_IN_SHARE if kind == "walk_ins" else 1.0
    requests = _draw(rng, mix, _SLOT_WEIGHTS, demand * offered * booked_share, load, "b")
    if kind == "midnight":
        late_target = demand * offered * LATE_TURNS / TURNS_PER_EVENING
        requests += [_late(rng, r) for r in _draw(rng, _PARTY_MIX, _LATE_SLOTS, late_target,
                                                  load, "n")]
    # Arrival order: mostly random, but big groups tend to book further ahead.
    order = sorted(requests, key=lambda r: rng.random() - 0.04 * r.party)

    if kind == "walk_ins":
        walk_ins = _draw(rng, _WALK_IN_MIX, _SLOT_WEIGHTS, demand * offered * WALK_IN_SHARE,
                         load, "w")
        # Walk-ins come through the door at any minute, after every advance booking.
        walk_ins = [
            Request(r.booking_id, _jitter(rng, r.start, 14), r.party, walk_in=True)
            for r in walk_ins
        ]
        order += sorted(walk_ins, key=lambda r: (r.start, r.booking_id))
    elif kind == "layout_change":
        change_at = len(order) // 2
        victim = _table_to_deactivate(cfg, rng)
        after = cfg.model_copy(
            update={
                "tables": [
                    t.model_copy(update={"active": False}) if t.table_id == victim else t
                    for t in cfg.tables
                ]
            }
        )
        return Day(cfg, tuple(order), demand, seed, kind, change_at, after, (victim,))
    return Day(config=cfg, requests=tuple(order), demand=demand, seed=seed, kind=kind)


def _draw(rng, mix, slots_weighted, target: float, load, prefix: str) -> list[Request]:
    """Requests of the party mix at the weighted start slots until their load reaches target."""
    sizes, size_weights = zip(*mix, strict=True)
    slots, slot_weights = zip(*slots_weighted, strict=True)
    requests: list[Request] = []
    requested = 0.0
    while requested < target:
        party = rng.choices(sizes, size_weights)[0]
        hh, mm = rng.choices(slots, slot_weights)[0].split(":")
        requests.append(Request(f"{prefix}{len(requests) + 1:04d}", time(int(hh), int(mm)), party))
        requested += load(party)
    return requests


def _jitter(rng: random.Random, start: time, minutes: int) -> time:
    at = datetime.combine(BENCH_DATE, start) + timedelta(minutes=rng.randint(0, minutes))
    return at.time() if at.date() == BENCH_DATE else start


def _late(rng: random.Random, request: Request) -> Request:
    """A late-service request: after midnight it belongs to the next date; some give an
    end of their own (a long evening), which may fall past midnight."""
    day = BENCH_DATE + timedelta(days=1) if request.start < LATE_START else BENCH_DATE
    end = None
    if rng.random() < _LATE_EXPLICIT_END:
        end = (datetime.combine(day, request.start)
               + timedelta(minutes=rng.choice((90, 105, 120, 150)))).time()
    return Request(request.booking_id, request.start, request.party, day, end)


def _table_to_deactivate(cfg: RestaurantConfig, rng: random.Random) -> str:
    """An active 4-top in some combination (what a broken table costs most), else any."""
    linked = {tid for pair in cfg.adjacency for tid in pair}
    active = [t for t in cfg.tables if t.active]
    pool = [t for t in active if t.capacity == 4 and t.table_id in linked] or active
    return rng.choice(pool).table_id
