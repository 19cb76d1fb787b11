"""Table allocation (docs/interface.md §2, §4 "Allocation"): pure, deterministic, no I/O.

A booking gets one table, or a combination of up to ``max_tables_per_booking`` active
tables that are connected through adjacency and all in one zone. All times are the
restaurant's local naive datetimes.

Fit rule for a plan (one table or a combination) and a party of ``n``:

* ``n <= seats`` where seats is the sum of the tables' capacities,
* ``n <= sum(effective max_party)`` (max_party, or capacity when it is unset),
* ``n >= min(min_party)`` over the plan's tables: a combination is as permissive as its
  most permissive table (for a single table this is just its own min_party).

A plan is free for a window when none of its tables has an ``Occupied`` range overlapping
``[window.start, window.blocked_until)``; ranges are half-open, so a booking may start
exactly when the previous one's buffer ends.

Usage::

    layout = Layout.from_config(cfg)               # memoised per config object
    window = booking_window(cfg, day, start, end, party)
    if isinstance(window, AllocationFailure): ...
    result = allocate(layout, party, window, occupied)   # Plan | AllocationFailure
    new_ranges = plan_occupancy(result, window)          # Occupied entries to store

``occupied`` must hold the blocked ranges of every *other* confirmed booking that could
touch the window (same date, plus the neighbouring dates when windows cross midnight);
the caller leaves the booking being (re)allocated out.

Re-seating (table re-shuffling), an extra step after ``allocate`` reports ``no_capacity``::

    result = repack(layout, party, window, confirmed)   # Repack | AllocationFailure
    # result.plan for the new booking; result.moves: booking_id -> its new table ids

``confirmed`` holds the same bookings as ``occupied`` above, as ``Seated`` (id, party,
window, tables). Moved bookings keep their window and party and stay confirmed; only their
tables change. The search is pure Python, bounded by a move limit and a work limit.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.restaurant import RestaurantConfig, Service

PARTY_TOO_LARGE = "party_too_large"
PARTY_TOO_SMALL = "party_too_small"
NO_CAPACITY = "no_capacity"
OUTSIDE_SERVICE_HOURS = "outside_service_hours"
NO_ACTIVE_TABLES = "no_active_tables"
INVALID_WINDOW = "invalid_window"
# The booking's start has passed: no later attempt can cure that.
START_PASSED = "start_passed"

# Used as the free time on a side of a window that no booking or service edge bounds:
# longer than any day, so a table with a real neighbour always counts as the tighter fit.
_OPEN_SIDE_MINUTES = 24 * 60.0


@dataclass(frozen=True, slots=True)
class TableSpec:
    table_id: str
    zone: str
    capacity: int
    min_party: int = 1
    max_party: int | None = None
    active: bool = True

    @property
    def effective_max_party(self) -> int:
        return self.max_party if self.max_party is not None else self.capacity


@dataclass(frozen=True, slots=True)
class Plan:
    table_ids: tuple[str, ...]  # sorted
    seats: int  # sum of capacities


@dataclass(frozen=True, slots=True)
class AllocationFailure:
    reason: str  # one of the module-level reason constants
    detail: str  # human-readable, for ops


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime  # the booking's end, for display
    blocked_until: datetime  # end + buffer_after_minutes: the tables are held until here
    service: str | None = None
    service_start: datetime | None = None
    service_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Occupied:
    """A confirmed booking's blocked range [start, end) on one table."""

    table_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class _Candidate:
    table_ids: tuple[str, ...]
    table_set: frozenset[str]
    seats: int
    largest_party: int  # min(seats, sum of effective max_party)
    smallest_party: int  # min over the tables' min_party
    mask: int  # one bit per table, by the table's position in the layout (re-seating)

    def fits(self, party: int) -> bool:
        return self.smallest_party <= party <= self.largest_party


@dataclass(frozen=True)
class Layout:
    """A restaurant's tables and adjacency, with every candidate plan enumerated once."""

    tables: tuple[TableSpec, ...]
    adjacency: frozenset[tuple[str, str]]  # each pair sorted
    max_tables: int = 3
    # Free time shorter than this cannot hold any booking (shortest turn + buffer).
    shortest_stay: timedelta = timedelta(minutes=65)
    _candidates: tuple[_Candidate, ...] = field(init=False, repr=False, compare=False)
    _combo_weight: dict[str, int] = field(init=False, repr=False, compare=False)
    _bit: dict[str, int] = field(init=False, repr=False, compare=False)
    _active_capacity: dict[int, int] = field(init=False, repr=False, compare=False)
    _by_party: dict[int, tuple[_Candidate, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _minimal_by_party: dict[int, tuple[_Candidate, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _least_by_party: dict[int, tuple[int, int]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _masks: dict[tuple[str, ...], int] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        candidates = _enumerate_candidates(self.tables, self.adjacency, self.max_tables)
        weight = {t.table_id: 0 for t in self.tables}
        for cand in candidates:
            if len(cand.table_ids) > 1:
                for tid in cand.table_ids:
                    weight[tid] += 1
        object.__setattr__(self, "_candidates", candidates)
        object.__setattr__(self, "_bit", _table_bits(self.tables))
        object.__setattr__(self, "_active_capacity", {
            self._bit[t.table_id]: t.capacity for t in self.tables if t.active
        })
        object.__setattr__(self, "_combo_weight", weight)
        object.__setattr__(self, "_by_party", {})
        object.__setattr__(self, "_minimal_by_party", {})
        object.__setattr__(self, "_least_by_party", {})
        object.__setattr__(self, "_masks", {})

    @classmethod
    def from_config(cls, cfg: RestaurantConfig) -> Layout:
        """The layout of a config; memoised on the config object (configs are frozen)."""
        cached = _LAYOUT_CACHE.get(id(cfg))
        if cached is not None and cached[0] is cfg:
            return cached[1]
        layout = cls(
            tables=tuple(
                TableSpec(
                    table_id=t.table_id,
                    zone=t.zone,
                    capacity=t.capacity,
                    min_party=t.min_party,
                    max_party=t.max_party,
                    active=t.active,
                )
                for t in cfg.tables
            ),
            adjacency=frozenset(tuple(sorted(pair)) for pair in cfg.adjacency),  # type: ignore[misc]
            max_tables=cfg.max_tables_per_booking,
            shortest_stay=timedelta(minutes=min(cfg.turns.values()) + cfg.buffer_after_minutes),
        )
        if len(_LAYOUT_CACHE) >= _LAYOUT_CACHE_SIZE:
            _LAYOUT_CACHE.pop(next(iter(_LAYOUT_CACHE)))
        _LAYOUT_CACHE[id(cfg)] = (cfg, layout)  # holding cfg keeps its id from being reused
        return layout

    def plans(self) -> tuple[Plan, ...]:
        """Every candidate plan (single tables and connected same-zone combinations)."""
        return tuple(Plan(c.table_ids, c.seats) for c in self._candidates)

    def plans_for(self, party: int) -> tuple[Plan, ...]:
        """Plans that could ever seat ``party``, best first when all are free."""
        return tuple(Plan(c.table_ids, c.seats) for c in self._fitting(party))

    def minimal_plans_for(self, party: int) -> tuple[Plan, ...]:
        """Plans that seat ``party`` with no strict subset that also does (what re-seating
        and the benchmark's optimum consider), best first when all are free."""
        return tuple(Plan(c.table_ids, c.seats) for c in self._minimal(party))

    def _mask_of(self, table_ids: tuple[str, ...]) -> int:
        """The mask of a booking's tables; tables the layout does not know have no bit (they
        block none of its plans)."""
        mask = self._masks.get(table_ids)
        if mask is None:
            bit = self._bit
            mask = sum(bit[t] for t in set(table_ids) if t in bit)
            if len(self._masks) < _MASK_CACHE_SIZE:
                self._masks[table_ids] = mask
        return mask

    def _least(self, party: int) -> tuple[int, int]:
        """The fewest tables and the fewest seats any plan for ``party`` takes
        ((0, 0) when none fits: such a booking can only stay where it is)."""
        least = self._least_by_party.get(party)
        if least is None:
            fitting = self._fitting(party)
            least = (
                (min(len(c.table_ids) for c in fitting), min(c.seats for c in fitting))
                if fitting
                else (0, 0)
            )
            self._least_by_party[party] = least
        return least

    def combo_weight(self, table_id: str) -> int:
        """How many combinations a table takes part in: what using it alone would cost."""
        return self._combo_weight[table_id]

    def _fitting(self, party: int) -> tuple[_Candidate, ...]:
        fitting = self._by_party.get(party)
        if fitting is None:
            fitting = tuple(
                sorted(
                    (c for c in self._candidates if c.fits(party)),
                    key=lambda c: (c.seats - party, len(c.table_ids), c.table_ids),
                )
            )
            self._by_party[party] = fitting
        return fitting

    def _minimal(self, party: int) -> tuple[_Candidate, ...]:
        """Fitting plans with no fitting strict subset, in ``_fitting`` order.

        A superset never seats ``party`` where its fitting subset could not, and holds more
        tables: re-seating only ever needs the minimal plans.
        """
        minimal = self._minimal_by_party.get(party)
        if minimal is None:
            fitting = self._fitting(party)
            masks = {c.mask for c in fitting}
            minimal = tuple(c for c in fitting if not any(
                part in masks for part in _proper_parts(c.mask)
            ))
            self._minimal_by_party[party] = minimal
        return minimal


_LAYOUT_CACHE_SIZE = 256
# Distinct table sets remembered per layout: bookings sit on its plans, so a few hundred.
_MASK_CACHE_SIZE = 4096
_LAYOUT_CACHE: dict[int, tuple[RestaurantConfig, Layout]] = {}


def _proper_parts(mask: int) -> list[int]:
    """Every non-empty strict subset of a plan's tables (a plan has a handful of tables)."""
    parts = []
    part = (mask - 1) & mask
    while part:
        parts.append(part)
        part = (part - 1) & mask
    return parts


def _table_bits(tables: tuple[TableSpec, ...]) -> dict[str, int]:
    """Table id -> its bit in a plan's mask (set operations on ints are the cheapest)."""
    return {t.table_id: 1 << i for i, t in enumerate(tables)}


def _enumerate_candidates(
    tables: tuple[TableSpec, ...], adjacency: frozenset[tuple[str, str]], max_tables: int
) -> tuple[_Candidate, ...]:
    """Active single tables, plus connected same-zone sets of active tables up to max_tables.

    Grows connected sets one neighbour at a time; the set-of-frozensets dedupes the many
    growth orders of one set. Fine for restaurant-sized graphs (sparse adjacency, k <= ~4).
    """
    by_id = {t.table_id: t for t in tables if t.active}
    neighbours: dict[str, set[str]] = {tid: set() for tid in by_id}
    for a, b in adjacency:
        if a in by_id and b in by_id and by_id[a].zone == by_id[b].zone:
            neighbours[a].add(b)
            neighbours[b].add(a)

    bit = _table_bits(tables)
    found: set[frozenset[str]] = {frozenset((tid,)) for tid in by_id}
    frontier = set(found)
    for _ in range(max_tables - 1):
        grown: set[frozenset[str]] = set()
        for group in frontier:
            for tid in group:
                for nb in neighbours[tid]:
                    if nb not in group:
                        grown.add(group | {nb})
        grown -= found
        found |= grown
        frontier = grown

    candidates = []
    for group in found:
        specs = [by_id[tid] for tid in group]
        seats = sum(t.capacity for t in specs)
        candidates.append(
            _Candidate(
                table_ids=tuple(sorted(group)),
                table_set=group,
                seats=seats,
                largest_party=min(seats, sum(t.effective_max_party for t in specs)),
                smallest_party=min(t.min_party for t in specs),
                mask=sum(bit[tid] for tid in group),
            )
        )
    candidates.sort(key=lambda c: (len(c.table_ids), c.table_ids))
    return tuple(candidates)


def local_span(booking_date: date, start: time, end: time | None
               ) -> tuple[datetime, datetime | None]:
    """A booking's start and end as local datetimes: it belongs to the date it starts on,
    and an end earlier than its start is on the next day (docs/interface.md §3)."""
    start_at = datetime.combine(booking_date, start)
    if end is None:
        return start_at, None
    end_at = datetime.combine(booking_date, end)
    if end_at < start_at:
        end_at += timedelta(days=1)
    return start_at, end_at


def booking_window(
    cfg: RestaurantConfig, booking_date: date, start: time, end: time | None, party: int
) -> Window | AllocationFailure:
    """The time a booking holds its tables, in local naive datetimes.

    End is ``end`` when given (an end before the start means it runs past midnight; an end
    equal to the start is rejected), else start + ``turn_for(party)``. With services
    configured the start must fall in one (the first, in config order, that holds it; a
    service past midnight holds early-morning starts, on the date they start);
    ``allow_overrun: false`` clamps the end at the service end.
    """
    if party < 1:
        raise ValueError(f"party must be >= 1, got {party}")
    start_at = datetime.combine(booking_date, start)
    service = next((s for s in cfg.services if s.contains(start)), None)
    if cfg.services and service is None:
        hours = ", ".join(f"{s.name} {s.start:%H:%M}-{s.end:%H:%M}" for s in cfg.services)
        return AllocationFailure(
            OUTSIDE_SERVICE_HOURS, f"start {start:%H:%M} is outside every service ({hours})"
        )

    _, requested_end = local_span(booking_date, start, end)
    if requested_end is None:
        end_at = start_at + timedelta(minutes=cfg.turn_for(party))
    elif requested_end == start_at:
        return AllocationFailure(INVALID_WINDOW, f"end {end:%H:%M} equals start")
    else:
        end_at = requested_end

    service_start = service_end = None
    if service is not None:
        service_start, service_end = _service_span(service, booking_date, start)
        if not service.allow_overrun and end_at > service_end:
            end_at = service_end
    return Window(
        start=start_at,
        end=end_at,
        blocked_until=end_at + timedelta(minutes=cfg.buffer_after_minutes),
        service=service.name if service is not None else None,
        service_start=service_start,
        service_end=service_end,
    )


def _service_span(service: Service, booking_date: date, start: time) -> tuple[datetime, datetime]:
    """When the service holding a booking that starts at `start` on `booking_date` begins
    and ends. A service past midnight that holds an early-morning start began the evening
    before (a booking belongs to the date it starts on, its service may not)."""
    begins = datetime.combine(booking_date, service.start)
    ends = datetime.combine(booking_date, service.end)
    if service.past_midnight:
        if start >= service.start:
            ends += timedelta(days=1)
        else:
            begins -= timedelta(days=1)
    return begins, ends


def effective_end(
    cfg: RestaurantConfig, booking_date: date, start: time, end: time | None, party: int
) -> time:
    """The end a booking is stored with: its window's end (turn minutes, service clamp),
    or, when no window can be formed (outside service hours), the requested end or the
    turn. The allocator reports why such a booking cannot be seated."""
    window = booking_window(cfg, booking_date, start, end, party)
    if isinstance(window, Window):
        return window.end.time()
    if end is not None:
        return end
    return (datetime.combine(booking_date, start) + timedelta(minutes=cfg.turn_for(party))).time()


def released_days(
    cfg: RestaurantConfig, booking_date: date, start: time, end: time | None, party: int
) -> tuple[date, ...]:
    """The dates whose pending bookings may fit once this booking's tables are free: its
    own; the next, when its window runs past midnight; the previous, when it starts in the
    early hours (a late booking of the evening before may reach into it)."""
    window = booking_window(cfg, booking_date, start, end, party)
    days = [booking_date]
    if isinstance(window, Window):
        if window.start.hour < EARLY_HOURS_END and booking_date > date.min:
            days.insert(0, booking_date - timedelta(days=1))
        if booking_date < date.max and window.blocked_until.date() > booking_date:
            days.append(booking_date + timedelta(days=1))
    return tuple(days)


# Bookings starting before this hour may share their tables with the previous date's late ones.
EARLY_HOURS_END = 6


def reach(window: Window, longest: timedelta) -> tuple[datetime, datetime] | None:
    """The span [lo, hi) outside which no confirmed booking changes ``seat``'s answer for
    ``window``, when no window among the bookings it is shown is longer than ``longest``;
    None when there is no bound (no service: the nearest booking on a table counts as
    free time at any distance).

    Why: a booking the window does not overlap matters only as a table's nearest
    neighbour, and free time is capped at the service's edges, so one ending before the
    service starts or starting after it ends changes nothing; re-seating reaches at most
    ``REPACK_MAX_MOVES + 1`` overlaps away, each at most the longest window further (as
    ``_RepackSearch`` itself bounds what it reads). storage.bookings.seated applies the
    same bound in SQL, with ``longest`` taken from the rows themselves."""
    if window.service_start is None or window.service_end is None:
        return None
    far = REACH_WINDOWS * max(longest, window.blocked_until - window.start)
    return (min(window.service_start, window.start - far),
            max(window.service_end, window.blocked_until + far))


def seat(
    cfg: RestaurantConfig,
    party: int,
    booking_date: date,
    start: time,
    end: time | None,
    seated: Mapping[str, Seated],
    now: datetime,
    *,
    reseat: bool,
    tidy_moves: bool = False,
) -> tuple[Plan | AllocationFailure, Window | None, dict[str, tuple[str, ...]]]:
    """The allocator's answer for one pending booking at `now` (aware): a plan and its
    window, with the confirmed bookings re-seated to make room (booking_id -> new tables),
    or why not. `seated`: every other confirmed booking that could touch the window.

    `tidy_moves` also re-seats one booking when the booking could be seated without it but
    wastes fewer seats with it (``tidy``). Off by default: the contract (§4) lets the
    service move confirmed bookings only when a booking cannot otherwise be seated."""
    window = booking_window(cfg, booking_date, start, end, party)
    if isinstance(window, AllocationFailure):
        return window, None, {}
    local_now = now.astimezone(ZoneInfo(cfg.timezone)).replace(tzinfo=None)
    if window.start <= local_now:
        return AllocationFailure(START_PASSED, "the booking's start has passed"), None, {}
    layout = Layout.from_config(cfg)
    outcome = _allocate(layout, party, window, _ranges(seated.values()))
    if reseat and isinstance(outcome, AllocationFailure) and outcome.reason == NO_CAPACITY:
        # A booking that has started is at its table: only those still to come move.
        repacked = _reseat(layout, party, window, list(seated.values()), outcome,
                           started_by=local_now)
        if isinstance(repacked, Repack):
            return repacked.plan, window, repacked.moves
        return repacked, window, {}  # says how far re-seating looked
    if reseat and tidy_moves and isinstance(outcome, Plan) and outcome.seats > party:
        tidier = tidy(layout, party, window, list(seated.values()), outcome,
                      started_by=local_now)
        return tidier.plan, window, tidier.moves
    return outcome, window, {}


def plan_occupancy(plan: Plan, window: Window) -> tuple[Occupied, ...]:
    """The blocked ranges a confirmed plan adds, one per table."""
    return tuple(Occupied(tid, window.start, window.blocked_until) for tid in plan.table_ids)


def allocate(
    layout: Layout, party: int, window: Window, occupied: Iterable[Occupied]
) -> Plan | AllocationFailure:
    """The best free plan for ``party`` in ``window``, or why there is none.

    Ranking, best first:
    1. fewest wasted seats (seats - party);
    2. fewest tables;
    3. least fragmentation left for bookings still to come:
       a. tightest time fit: the smallest free time the plan's tables keep right before
          and after the window (up to the neighbouring bookings, or the service edges).
          Best-fit in time keeps long free stretches on other tables whole, so later
          requests at any time still find room; a table whose only neighbour is the
          service edge counts as looser than one wedged between bookings;
       b. lowest combination weight: a table that many combinations need (the link in
          a row of 2-tops that makes a 6 or an 8) is kept for the parties only a
          combination can seat;
    4. sorted table ids, so equal inputs always give equal answers.
    """
    return _allocate(layout, party, window,
                     (((occ.table_id,), occ.start, occ.end) for occ in occupied))


# A blocked range as the allocator reads it: (tables, start, end).
_Range = tuple[tuple[str, ...], datetime, datetime]


def _allocate(
    layout: Layout, party: int, window: Window, ranges: Iterable[_Range]
) -> Plan | AllocationFailure:
    """``allocate`` over (tables, start, end) ranges: a confirmed booking is one range, so
    the service's day is read as it is, without a range object per table."""
    if party < 1:
        raise ValueError(f"party must be >= 1, got {party}")
    if not layout._candidates:
        return AllocationFailure(NO_ACTIVE_TABLES, "the restaurant has no active table")
    fitting = layout._fitting(party)
    if not fitting:
        return _never_fits(layout, party)

    busy, prev_end, next_start = _index_ranges(layout, window, ranges)

    best_key: tuple[int, int] | None = None
    tied: list[_Candidate] = []
    for cand in fitting:
        key = (cand.seats - party, len(cand.table_ids))
        if best_key is not None and key != best_key:
            break  # fitting is sorted by this key: nothing later can tie
        if busy.isdisjoint(cand.table_set):
            best_key = key
            tied.append(cand)
    if not tied:
        return AllocationFailure(
            NO_CAPACITY,
            f"all {len(fitting)} plans that seat {party} are busy between "
            f"{window.start:%Y-%m-%d %H:%M} and {window.blocked_until:%H:%M}",
        )
    if len(tied) == 1:
        chosen = tied[0]
    else:
        slack = _slack_minutes(window, prev_end, next_start)
        chosen = min(tied, key=lambda c: _fragmentation_key(layout, slack, c))
    return Plan(chosen.table_ids, chosen.seats)


def _fragmentation_key(layout: Layout, slack, cand: _Candidate) -> tuple:
    return (
        sum(slack(tid) for tid in cand.table_ids),
        sum(layout._combo_weight[tid] for tid in cand.table_ids),
        cand.table_ids,
    )


def _never_fits(layout: Layout, party: int) -> AllocationFailure:
    largest = max(c.largest_party for c in layout._candidates)
    if party > largest:
        return AllocationFailure(
            PARTY_TOO_LARGE,
            f"party of {party} exceeds the largest plan in the layout ({largest})",
        )
    smallest = min(c.smallest_party for c in layout._candidates)
    return AllocationFailure(
        PARTY_TOO_SMALL,
        f"no table or combination takes a party of {party} (smallest min_party {smallest}, "
        f"largest party {largest})",
    )


def _index_ranges(
    layout: Layout, window: Window, ranges: Iterable[_Range]
) -> tuple[set[str], dict[str, datetime], dict[str, datetime]]:
    """One pass over the ranges: busy tables, and each table's nearest range either side.

    O(ranges) per decision with no sort; every lookup after this is a dict or set hit.
    """
    known = layout._combo_weight  # keys: every table id in the layout
    start, until = window.start, window.blocked_until
    busy: set[str] = set()
    prev_end: dict[str, datetime] = {}
    next_start: dict[str, datetime] = {}
    for table_ids, begins, ends in ranges:
        if begins < until and start < ends:
            busy.update(table_ids)
        elif ends <= start:
            for tid in table_ids:
                if tid not in prev_end or ends > prev_end[tid]:
                    prev_end[tid] = ends
        else:
            for tid in table_ids:
                if tid not in next_start or begins < next_start[tid]:
                    next_start[tid] = begins
    busy.intersection_update(known)
    return busy, prev_end, next_start


def _slack_minutes(window: Window, prev_end: dict[str, datetime], next_start: dict[str, datetime]):
    """Free minutes a table keeps around the window, bounded by bookings or service edges."""
    minute = timedelta(minutes=1)
    start, blocked_until = window.start, window.blocked_until
    # The service edges are the same for every table: measured once (this runs per table
    # of every candidate plan).
    edge_before = (start - window.service_start) / minute if window.service_start is not None \
        else None
    edge_after = (window.service_end - blocked_until) / minute if window.service_end is not None \
        else None

    def side(gap: float | None, edge: float | None) -> float:
        if gap is None:
            return _OPEN_SIDE_MINUTES if edge is None else max(edge, 0.0)
        return max(gap if edge is None else min(gap, edge), 0.0)

    def slack(tid: str) -> float:
        before = prev_end.get(tid)
        after = next_start.get(tid)
        return side(
            (start - before) / minute if before is not None else None, edge_before,
        ) + side(
            (after - blocked_until) / minute if after is not None else None, edge_after,
        )

    return slack


# ---------------------------------------------------------------------------------------
# Re-seating confirmed bookings so a new one fits (table re-shuffling)

# The move set of one decision: at most this many confirmed bookings get other tables.
# Why a bound: each move is a status event every consumer of booking-status applies, a row
# the allocation transaction locks and a changed floor plan; and the search grows
# exponentially with it. Why 3: within the work the search can afford (below), allowing
# 4, 5 or 8 moves seated no more guests on the generated days (bench/README.md); the
# re-seatings it misses need rotations of 3-11 bookings, which a search this cheap
# rarely finds.
REPACK_MAX_MOVES = 3
# How many of the longest windows away from a decision's window a booking may still matter
# (``reach``): the new booking's overlaps, and theirs, down a chain of REPACK_MAX_MOVES.
REACH_WINDOWS = REPACK_MAX_MOVES + 1
# The hard bound on a search's cost, whatever the restaurant or the day: steps of work
# (a rival or a plan looked at, each a few operations on ints, plus _STEP_OVERHEAD per
# question "which plans could this booking take"). A search that finds nothing spends all
# of it: about 2-3 ms of CPU on a 2020s core at 60 tables and 400 bookings
# (bench/allocation_cost.py). More buys little: 8,000 to 14,000 steps seat 0.1 % more
# guests on the generated days (bench/README.md).
REPACK_WORK_LIMIT = 8_000
# What one such question costs beyond its rivals and plans (calls, lists, the bookkeeping
# of trying a plan), in steps.
_STEP_OVERHEAD = 20


@dataclass(frozen=True, slots=True)
class Seated:
    """A confirmed booking where it sits now: what ``repack`` may move to other tables."""

    booking_id: str
    party: int
    window: Window
    table_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Repack:
    plan: Plan  # for the new booking
    # booking_id -> its new sorted table ids; each keeps its window, party and status.
    moves: dict[str, tuple[str, ...]]
    nodes: int = 0  # plans the search tried (0 when a free plan needed no move)


def _ranges(seated: Iterable[Seated]) -> Iterable[_Range]:
    return ((s.table_ids, s.window.start, s.window.blocked_until) for s in seated)


def _bits(mask: int) -> list[int]:
    """The positions of the set bits, lowest first (bookings in start order)."""
    found = []
    while mask:
        low = mask & -mask
        found.append(low.bit_length() - 1)
        mask ^= low
    return found


class _OutOfBudget(Exception):
    pass


def repack(
    layout: Layout,
    party: int,
    window: Window,
    confirmed: Sequence[Seated],
    *,
    max_moves: int = REPACK_MAX_MOVES,
    work_limit: int = REPACK_WORK_LIMIT,
    started_by: datetime | None = None,
) -> Repack | AllocationFailure:
    """A plan for a new booking, re-seating as few confirmed bookings as it takes.

    When ``allocate`` finds a free plan this is that plan with no moves. Otherwise, unless
    the bookings at some moment of the window need more tables or seats than there are,
    it looks for an ejection chain: the new booking takes a plan, the bookings holding its
    tables in the window move to other free-or-freed plans that fit them, and so on; a
    booking moves at most once and a placed one is never displaced again. Iterative
    deepening over the number of moved bookings (1..``max_moves``) returns a chain with the
    fewest moves. The whole search spends at most ``work_limit`` steps, so its cost is
    bounded whatever the day; it is exact up to ``max_moves`` only inside that budget. Only
    bookings whose windows overlap one being placed are looked at. Ties: fewest displaced
    at each step, then fewest wasted seats, fewest tables, table ids.

    ``confirmed`` is every other confirmed booking that could touch the window, as for
    ``allocate``. Plans for moved bookings obey the same fit rules; bookings on tables the
    layout does not know (or no longer activates) simply block those tables. A booking that
    started at or before ``started_by`` (local time: its guests may be at the table) is
    never moved.
    """
    direct = _allocate(layout, party, window, _ranges(confirmed))
    if not (isinstance(direct, AllocationFailure) and direct.reason == NO_CAPACITY):
        return direct if isinstance(direct, AllocationFailure) else Repack(direct, {})
    return _reseat(layout, party, window, confirmed, direct, max_moves=max_moves,
                   work_limit=work_limit, started_by=started_by)


def _reseat(
    layout: Layout,
    party: int,
    window: Window,
    confirmed: Sequence[Seated],
    direct: AllocationFailure,
    *,
    max_moves: int = REPACK_MAX_MOVES,
    work_limit: int = REPACK_WORK_LIMIT,
    started_by: datetime | None = None,
) -> Repack | AllocationFailure:
    """``repack`` once ``allocate`` has answered ``direct`` (no capacity)."""
    search = _RepackSearch(layout, party, window, confirmed, max_moves, work_limit, started_by)
    if search.hopeless():
        return AllocationFailure(
            NO_CAPACITY,
            f"{direct.detail}, and no re-seating can free one: the bookings at that time "
            "need more tables or seats than the restaurant has",
        )
    for moves_allowed in range(1, max_moves + 1):
        try:
            found = search.run(moves_allowed)
        except _OutOfBudget:
            break
        if found is not None:
            return found
    return AllocationFailure(
        NO_CAPACITY,
        f"{direct.detail}, and no re-seating of up to {max_moves} confirmed bookings frees "
        f"one (searched {search.nodes} plans{', budget used up' if search.out else ''})",
    )


def tidy(
    layout: Layout,
    party: int,
    window: Window,
    confirmed: Sequence[Seated],
    plan: Plan,
    *,
    started_by: datetime | None = None,
    work_limit: int = REPACK_WORK_LIMIT,
) -> Repack:
    """``plan`` (free, but with seats to spare), or a plan with fewer wasted seats that one
    move makes free: the booking holding it moves to a free plan, and the two together
    waste fewer seats than before (a three off a four-top onto two adjacent two-tops, so a
    four need not take a six-top). Re-seating that today's booking does not need, so
    that fewer seats are wasted for the requests still to come; one move at most, the
    largest gain wins (ties: the ranking of ``allocate``). A booking that started by
    ``started_by`` never moves."""
    search = _RepackSearch(layout, party, window, confirmed, 1, work_limit, started_by)
    try:
        found = search.swap(plan.seats - party)
    except _OutOfBudget:
        found = search.best_swap
    if found is None:
        return Repack(plan, {})
    cand, other, alternative = found
    return Repack(Plan(cand.table_ids, cand.seats), {search.ids[other]: alternative.table_ids},
                  search.nodes)


class _RepackSearch:
    """Depth-first ejection chains over who sits where, undone on backtrack.

    Tables are bits: ``seat[i]`` is the mask of the tables booking ``i`` holds now (0 while
    it waits for a new plan), and a plan is free for a booking when its mask misses every
    rival's. A booking's rivals (the bookings whose windows overlap its own) are found
    once, by bisection over the bookings sorted by start. Work per step is in proportion
    to the bookings around one window and the plans of one party, not to the day.
    """

    def __init__(
        self,
        layout: Layout,
        party: int,
        window: Window,
        confirmed: Sequence[Seated],
        max_moves: int,
        work_limit: int,
        started_by: datetime | None,
    ) -> None:
        self.layout = layout
        start, until = window.start, window.blocked_until
        longest = until - start
        for s in confirmed:
            longest = max(longest, s.window.blocked_until - s.window.start)
        self.longest = longest
        # A chain of k moves reaches bookings at most k + 1 overlaps away from the window,
        # each at most the longest window further: the rest of the day is left out.
        far = (max_moves + 1) * longest
        lo, hi = start - far, until + far
        near = sorted(
            (s for s in confirmed if s.window.start < hi and lo < s.window.blocked_until),
            key=lambda s: s.window.start,
        )
        # Indexes follow the start times; index len(near) is the new booking.
        self.ids = [s.booking_id for s in near]
        self.parties = [s.party for s in near] + [party]
        self.spans = [(s.window.start, s.window.blocked_until) for s in near]
        self.spans.append((start, until))
        self.starts = [s.window.start for s in near]
        mask_of = layout._mask_of
        self.seat = [mask_of(s.table_ids) for s in near] + [0]
        self.original = list(self.seat)  # where each sat before this search moved anyone
        self.tables = [s.table_ids for s in near] + [()]
        self.new = len(near)
        # Bookings that may not move: those whose guests may already be seated.
        self.fixed = [started_by is not None and s.window.start <= started_by for s in near]
        self.fixed.append(False)
        self.fixed_mask = sum(1 << i for i, fixed in enumerate(self.fixed) if fixed)
        self.work_limit = work_limit
        self.work = 0  # steps spent: rivals and plans looked at
        self.nodes = 0  # plans tried
        self.out = False
        self.pinned: dict[int, _Candidate] = {}  # placed in this chain: never displaced
        self.moved = 0  # bits of the bookings taken off their tables in this chain
        self._rivals: dict[int, tuple[int, ...]] = {}
        self._statics: dict[int, list[tuple[_Candidate, int]]] = {}
        self._frees: dict[int, tuple[int, int]] = {}

    def rivals(self, booking: int) -> tuple[int, ...]:
        """The bookings whose windows overlap this one's, in start order (by bisection:
        only those starting less than the longest window before it can)."""
        found = self._rivals.get(booking)
        if found is None:
            start, until = self.spans[booking]
            lo = bisect_right(self.starts, start - self.longest)
            hi = bisect_left(self.starts, until)
            spans = self.spans
            found = [i for i in range(lo, hi) if spans[i][1] > start and i != booking]
            new = self.new
            if booking != new and spans[new][0] < until and start < spans[new][1]:
                found.append(new)
            found = tuple(found)
            self._rivals[booking] = found
        return found

    def hopeless(self) -> bool:
        """Whether no re-seating at all can make room: at some moment of the new window the
        bookings there need more active tables, or more seats, than the restaurant has.
        (Each booking needs at least its party's smallest plan, or what it holds now if
        that is less or it may not move.) Settles most searches that would fail, at once."""
        layout = self.layout
        capacity = layout._active_capacity
        start, until = self.spans[self.new]
        # A sweep over the window: +need when a rival arrives, -need when it leaves (a
        # leaving one first at equal times: windows are half-open).
        events = []
        for other in self.rivals(self.new):
            tables = seats = 0
            mask = self.seat[other]
            while mask:
                low = mask & -mask
                if low in capacity:
                    tables += 1
                    seats += capacity[low]
                mask ^= low
            if not self.fixed[other]:
                least = layout._least(self.parties[other])
                tables, seats = min(tables, least[0]), min(seats, least[1])
            s, e = self.spans[other]
            events.append((max(s, start), 1, tables, seats))
            events.append((e, 0, -tables, -seats))
        events.sort()  # by time, a leaving one (0) before an arriving one (1)
        tables, seats = layout._least(self.parties[self.new])
        all_tables, all_seats = len(capacity), sum(capacity.values())
        if tables > all_tables or seats > all_seats:
            return True
        for when, arrives, more_tables, more_seats in events:
            if when >= until:
                break
            tables += more_tables
            seats += more_seats
            if arrives and (tables > all_tables or seats > all_seats):
                return True
        return False

    def swap(self, waste: int) -> tuple[_Candidate, int, _Candidate] | None:
        """For ``tidy``: the plan for the new booking, the booking it displaces and that
        one's new plan, where one move saves the most wasted seats (the new booking now
        wastes ``waste`` on a free plan); None when no move saves any."""
        party = self.parties[self.new]
        capacity = {self.layout._bit[t.table_id]: t.capacity for t in self.layout.tables}
        self.best_swap: tuple[_Candidate, int, _Candidate] | None = None
        best_gain = 0
        for displaced, cand, blockers in self._options(self.new, 1):
            if displaced != 1 or cand.seats - party >= waste:
                continue
            (other,) = _bits(blockers)
            held = self.seat[other]
            self.seat[other], self.seat[self.new] = 0, cand.mask
            self.moved |= blockers
            self.pinned[self.new] = cand
            free = self._options(other, 0)
            del self.pinned[self.new]
            self.moved = 0
            self.seat[other], self.seat[self.new] = held, 0
            if not free:
                continue
            alternative = free[0][1]  # fewest wasted seats first
            seats_held = sum(c for bit, c in capacity.items() if bit & held)
            gain = (waste + seats_held) - (cand.seats + alternative.seats - party)
            if gain > best_gain:
                best_gain, self.best_swap = gain, (cand, other, alternative)
        return self.best_swap

    def run(self, moves_allowed: int) -> Repack | None:
        self.pinned.clear()
        self.moved = 0
        if not self._place([self.new], moves_allowed):
            return None
        new_plan = self.pinned.pop(self.new)
        moves = {self.ids[i]: c.table_ids for i, c in sorted(self.pinned.items())}
        return Repack(Plan(new_plan.table_ids, new_plan.seats), moves, self.nodes)

    def _options(self, booking: int, moves_left: int) -> list[tuple[int, _Candidate, int]]:
        """Plans the booking could take now, displacing at most ``moves_left`` movable,
        unpinned bookings (a mask of booking bits: booking ``i`` is ``1 << i``); fewest
        displaced first, then fewest wasted seats, fewest tables, table ids (the order of
        ``Layout._minimal``)."""
        if moves_left == 0:
            return self._free(booking)
        static = self._static(booking)
        self._spend(len(static))
        taken = 0  # tables rivals placed in this chain hold now: nobody displaces them
        start, until = self.spans[booking]
        for other, cand in self.pinned.items():
            begins, ends = self.spans[other]
            if begins < until and start < ends:
                taken |= cand.mask
        # A moved booking no longer sits where it did: it waits, or is pinned elsewhere
        # (then its new tables are in taken).
        sitting = ~self.moved
        ranked = []
        for cand, blockers in static:
            if cand.mask & taken:
                continue
            blockers &= sitting
            count = blockers.bit_count()
            if count <= moves_left:
                ranked.append((count, cand, blockers))
        ranked.sort(key=lambda o: o[0])  # stable: ties keep the plans' rank order
        return ranked

    def _free(self, booking: int) -> list[tuple[int, _Candidate, int]]:
        """Plans that displace nobody now: the question asked most, at the end of every
        chain. What the booking's rivals hold before any move (``busy``; ``shared``: tables
        two of them hold) is found once; a step then only frees the tables of the moved
        rivals and adds those of the rivals placed in this chain."""
        minimal = self.layout._minimal(self.parties[booking])
        known = self._frees.get(booking)
        if known is None:
            rivals = self.rivals(booking)
            self._spend(len(rivals) + len(minimal))
            busy = shared = 0
            for other in rivals:
                held = self.original[other]
                shared |= busy & held
                busy |= held
            known = self._frees[booking] = (busy, shared)
        else:
            self._spend(0)
        busy, shared = known
        start, until = self.spans[booking]
        spans = self.spans
        freed = taken = 0
        for other in _bits(self.moved):
            begins, ends = spans[other]
            if begins < until and start < ends:
                freed |= self.original[other]
        for other, cand in self.pinned.items():
            begins, ends = spans[other]
            if begins < until and start < ends:
                taken |= cand.mask
        freed &= busy
        if freed & shared:
            # A freed table another rival may still hold: count it exactly.
            now = 0
            for other in self.rivals(booking):
                now |= self.seat[other]
        else:
            now = busy & ~freed | taken
        return [(0, cand, 0) for cand in minimal if not cand.mask & now]

    def _static(self, booking: int) -> list[tuple[_Candidate, int]]:
        """The booking's plans with the rivals on them before any move (a mask of booking
        bits), in rank order; plans a booking that may not move sits on are left out (never
        freed). Built once per booking; a step corrects it only for the bookings moved."""
        found = self._statics.get(booking)
        if found is None:
            rivals = self.rivals(booking)
            minimal = self.layout._minimal(self.parties[booking])
            self._spend(len(rivals) + len(minimal))
            holders: dict[str, int] = {}
            for other in rivals:
                for tid in self.tables[other]:
                    holders[tid] = holders.get(tid, 0) | 1 << other
            fixed = self.fixed_mask
            found = []
            for cand in minimal:
                blockers = 0
                for tid in cand.table_ids:
                    blockers |= holders.get(tid, 0)
                if not blockers & fixed:
                    found.append((cand, blockers))
            self._statics[booking] = found
        return found

    def _spend(self, steps: int) -> None:
        self.work += _STEP_OVERHEAD + steps
        if self.work > self.work_limit:
            self.out = True
            raise _OutOfBudget

    def _place(self, pending: list[int], moves_left: int) -> bool:
        if not pending:
            return True
        # Forward check: every waiting booking still needs some plan; branch on the one with
        # the fewest (a dead end shows at once instead of after every sibling is tried).
        booking, options = -1, []
        for waiting in pending:
            found = self._options(waiting, moves_left)
            if not found:
                return False
            if booking < 0 or len(found) < len(options):
                booking, options = waiting, found
        rest = [i for i in pending if i != booking]
        seat = self.seat
        for displaced_count, cand, displaced in options:
            self.nodes += 1
            blockers = _bits(displaced)
            lifted = [seat[i] for i in blockers]
            for i in blockers:
                seat[i] = 0
            self.moved |= displaced
            seat[booking] = cand.mask
            self.pinned[booking] = cand
            if self._place(rest + blockers, moves_left - displaced_count):
                return True
            del self.pinned[booking]
            seat[booking] = 0
            self.moved &= ~displaced
            for i, mask in zip(blockers, lifted, strict=True):
                seat[i] = mask
        return False
