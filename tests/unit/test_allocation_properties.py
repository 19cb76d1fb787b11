"""Property tests: whatever the restaurant and request sequence, allocation stays sound."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.allocation import (
    NO_CAPACITY,
    REPACK_MAX_MOVES,
    AllocationFailure,
    Layout,
    Occupied,
    Plan,
    Repack,
    Seated,
    Window,
    _RepackSearch,
    allocate,
    booking_window,
    plan_occupancy,
    reach,
    repack,
    seat,
)
from models.restaurant import RestaurantConfig

DAY = date(2026, 12, 1)


@st.composite
def restaurants(draw, crowded: bool = False) -> RestaurantConfig:
    """``crowded``: 3-9 tables, one zone, min_party 1 mostly, so bookings can swap tables."""
    n = draw(st.integers(3 if crowded else 1, 9))
    zone_names = ["main"] if crowded else ["main", "terrace", "bar"]
    zones = draw(st.lists(st.sampled_from(zone_names), min_size=n, max_size=n))
    tables = []
    for i in range(n):
        capacity = draw(st.integers(1, 8))
        min_party = draw(
            st.sampled_from([1, 1, 1, capacity]) if crowded else st.integers(1, capacity)
        )
        max_party = draw(st.one_of(st.none(), st.integers(min_party, capacity + 2)))
        tables.append(
            {
                "table_id": f"t{i}",
                "zone": zones[i],
                "capacity": capacity,
                "min_party": min_party,
                "max_party": max_party,
                "active": draw(st.sampled_from([True, True, True, False])),
            }
        )
    pairs = [(f"t{a}", f"t{b}") for a in range(n) for b in range(a + 1, n)]
    adjacency = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    services = draw(
        st.sampled_from(
            [
                [],
                [{"name": "dinner", "start": "17:00", "end": "22:00", "allow_overrun": False}],
                [{"name": "all", "start": "11:00", "end": "23:00", "allow_overrun": True}],
            ]
        )
    )
    return RestaurantConfig.model_validate(
        {
            "restaurant_id": "r-prop",
            "name": "Prop",
            "slug": "prop",
            "tables": tables,
            "adjacency": adjacency,
            "services": services,
            "buffer_after_minutes": draw(st.integers(0, 20)),
            "max_tables_per_booking": draw(st.integers(1, 4)),
        }
    )


requests = st.lists(
    st.tuples(
        st.integers(16 * 4, 23 * 4 - 1).map(lambda q: time(q // 4, (q % 4) * 15)),
        st.one_of(st.none(), st.integers(15, 240)),  # explicit duration in minutes, or turn
        st.integers(1, 14),
    ),
    max_size=30,
)


def _connected(plan: Plan, adjacency: set[frozenset[str]]) -> bool:
    reached, todo = {plan.table_ids[0]}, [plan.table_ids[0]]
    while todo:
        here = todo.pop()
        for other in plan.table_ids:
            if other not in reached and frozenset((here, other)) in adjacency:
                reached.add(other)
                todo.append(other)
    return reached == set(plan.table_ids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=restaurants(), sequence=requests)
def test_sequential_allocation_never_double_books_and_respects_the_rules(cfg, sequence):
    layout = Layout.from_config(cfg)
    tables = {t.table_id: t for t in cfg.tables}
    adjacency = {frozenset(pair) for pair in cfg.adjacency}
    held: list[Occupied] = []
    for start, minutes, party in sequence:
        end = None
        if minutes is not None:
            end_minute = (start.hour * 60 + start.minute + minutes) % (24 * 60)
            end = time(end_minute // 60, end_minute % 60)
        window = booking_window(cfg, DAY, start, end, party)
        if isinstance(window, AllocationFailure):
            continue
        plan = allocate(layout, party, window, held)
        if isinstance(plan, AllocationFailure):
            continue

        used = [tables[tid] for tid in plan.table_ids]
        assert all(t.active for t in used)
        assert plan.seats == sum(t.capacity for t in used) >= party
        assert party <= sum(t.effective_max_party for t in used)
        assert party >= min(t.min_party for t in used)
        assert len(used) <= cfg.max_tables_per_booking
        assert len({t.zone for t in used}) == 1
        assert list(plan.table_ids) == sorted(set(plan.table_ids))
        assert _connected(plan, adjacency)
        held.extend(plan_occupancy(plan, window))

    by_table: dict[str, list[Occupied]] = {}
    for occ in held:
        by_table.setdefault(occ.table_id, []).append(occ)
    for ranges in by_table.values():
        ranges.sort(key=lambda o: o.start)
        for earlier, later in zip(ranges, ranges[1:], strict=False):
            assert earlier.end <= later.start, (earlier, later)


@settings(max_examples=100, deadline=None)
@given(cfg=restaurants(), party=st.integers(1, 14))
def test_failure_reasons_match_the_layout(cfg, party):
    """With nothing booked, a failure is never no_capacity, and every plan it could offer fits."""
    layout = Layout.from_config(cfg)
    window = booking_window(cfg, DAY, time(19, 0), None, party)
    if isinstance(window, AllocationFailure):
        return
    result = allocate(layout, party, window, [])
    fitting = layout.plans_for(party)
    if isinstance(result, AllocationFailure):
        assert not fitting
        assert result.reason in {"party_too_large", "party_too_small", "no_active_tables"}
    else:
        assert result in fitting
        # Nothing else fits with less waste, or equal waste and fewer tables.
        best = min((p.seats - party, len(p.table_ids)) for p in fitting)
        assert (result.seats - party, len(result.table_ids)) == best


def _assert_day_is_sound(cfg: RestaurantConfig, seated: dict[str, Seated]) -> None:
    """No table held twice at once; every booking fits its plan under the layout's rules."""
    plans = {p.table_ids for p in Layout.from_config(cfg).plans()}
    tables = {t.table_id: t for t in cfg.tables}
    by_table: dict[str, list[Window]] = {}
    for booking in seated.values():
        assert booking.table_ids in plans, booking
        used = [tables[tid] for tid in booking.table_ids]
        assert min(t.min_party for t in used) <= booking.party
        assert booking.party <= min(
            sum(t.capacity for t in used), sum(t.effective_max_party for t in used)
        )
        for tid in booking.table_ids:
            by_table.setdefault(tid, []).append(booking.window)
    for windows in by_table.values():
        windows.sort(key=lambda w: w.start)
        for earlier, later in zip(windows, windows[1:], strict=False):
            assert earlier.blocked_until <= later.start, (earlier, later)


# Many overlapping evening requests, so that tables run out and repack has to move people.
crowded_requests = st.lists(
    st.tuples(
        st.integers(17 * 4, 20 * 4).map(lambda q: time(q // 4, (q % 4) * 15)),
        st.one_of(st.none(), st.none(), st.integers(45, 180)),
        st.integers(1, 8),
    ),
    min_size=4,
    max_size=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=restaurants(crowded=True),
    sequence=crowded_requests,
    max_moves=st.integers(1, 4),
    started_by=st.one_of(
        st.none(), st.integers(17 * 4, 20 * 4).map(lambda q: time(q // 4, (q % 4) * 15))
    ),
)
def test_repack_keeps_the_day_sound_and_only_moves_tables(cfg, sequence, max_moves, started_by):
    """allocate, then repack on no_capacity: the day stays overlap-free after every step,
    moved bookings keep their id, party and window, none that started by ``started_by``
    moves, and repack never seats fewer than allocate alone would at that step."""
    layout = Layout.from_config(cfg)
    started = None if started_by is None else datetime.combine(DAY, started_by)
    seated: dict[str, Seated] = {}
    for index, (start, minutes, party) in enumerate(sequence):
        end = None
        if minutes is not None:
            end_minute = (start.hour * 60 + start.minute + minutes) % (24 * 60)
            end = time(end_minute // 60, end_minute % 60)
        window = booking_window(cfg, DAY, start, end, party)
        if isinstance(window, AllocationFailure):
            continue
        occupied = [
            Occupied(tid, s.window.start, s.window.blocked_until)
            for s in seated.values()
            for tid in s.table_ids
        ]
        direct = allocate(layout, party, window, occupied)
        result = repack(layout, party, window, list(seated.values()), max_moves=max_moves,
                        started_by=started)
        if isinstance(direct, Plan):
            assert result == Repack(direct, {})  # a free plan never moves anyone
        elif direct.reason != NO_CAPACITY:
            assert result == direct
        if isinstance(result, AllocationFailure):
            continue
        assert len(result.moves) <= max_moves
        assert set(result.moves) <= set(seated)
        for booking_id, tables in result.moves.items():
            before = seated[booking_id]
            assert tables != before.table_ids
            assert started is None or before.window.start > started
            seated[booking_id] = Seated(booking_id, before.party, before.window, tables)
        seated[f"b{index}"] = Seated(f"b{index}", party, window, result.plan.table_ids)
        _assert_day_is_sound(cfg, seated)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=restaurants(crowded=True), sequence=crowded_requests)
def test_giving_up_at_once_is_never_wrong(cfg, sequence):
    """When repack gives up without searching (the bookings at some moment need more tables
    or seats than there are), a search with no bound on moves or work finds nothing either.
    That search is complete: any re-seating that seats everyone is an ejection chain in
    which each moved booking goes straight to its final plan."""
    layout = Layout.from_config(cfg)
    seated: dict[str, Seated] = {}
    for index, (start, minutes, party) in enumerate(sequence):
        end = None
        if minutes is not None:
            end_minute = (start.hour * 60 + start.minute + minutes) % (24 * 60)
            end = time(end_minute // 60, end_minute % 60)
        window = booking_window(cfg, DAY, start, end, party)
        if isinstance(window, AllocationFailure):
            continue
        confirmed = list(seated.values())
        result = repack(layout, party, window, confirmed)
        if isinstance(result, AllocationFailure) and "need more tables" in result.detail:
            event("gave up at once")
            moves = len(confirmed) + 1
            search = _RepackSearch(layout, party, window, confirmed, moves, 10**9, None)
            assert search.hopeless()
            assert search.run(moves) is None
        if isinstance(result, Repack):
            for booking_id, tables in result.moves.items():
                before = seated[booking_id]
                seated[booking_id] = Seated(booking_id, before.party, before.window, tables)
            seated[f"b{index}"] = Seated(f"b{index}", party, window, result.plan.table_ids)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=restaurants(crowded=True),
    sequence=crowded_requests,
    now=st.integers(16 * 4, 20 * 4).map(lambda q: time(q // 4, (q % 4) * 15)),
)
def test_seat_keeps_the_day_sound_whatever_it_moves(cfg, sequence, now):
    """The service's decision (seat, re-seating on: making room, and moving one booking
    when that wastes fewer seats) keeps every booking fitting and the day overlap-free,
    moves at most REPACK_MAX_MOVES bookings at a time, each keeping its window, and never
    one that has started."""
    at = datetime.combine(DAY, now, tzinfo=UTC)
    seated: dict[str, Seated] = {}
    for index, (start, minutes, party) in enumerate(sequence):
        end = None
        if minutes is not None:
            end_minute = (start.hour * 60 + start.minute + minutes) % (24 * 60)
            end = time(end_minute // 60, end_minute % 60)
        outcome, window, moves = seat(cfg, party, DAY, start, end, seated, at, reseat=True)
        if not isinstance(outcome, Plan):
            assert moves == {}
            continue
        assert window is not None and window.start > at.replace(tzinfo=None)
        assert len(moves) <= REPACK_MAX_MOVES
        for booking_id, tables in moves.items():
            before = seated[booking_id]
            assert tables != before.table_ids
            assert before.window.start > at.replace(tzinfo=None)
            seated[booking_id] = Seated(booking_id, before.party, before.window, tables)
        seated[f"b{index}"] = Seated(f"b{index}", party, window, outcome.table_ids)
        _assert_day_is_sound(cfg, seated)


# Services with bookings on either side of them: the day's other service, and one past
# midnight whose early hours belong to the next date.
SPLIT_SERVICES = [
    [{"name": "lunch", "start": "12:00", "end": "15:00", "allow_overrun": True},
     {"name": "dinner", "start": "17:00", "end": "22:00", "allow_overrun": False}],
    [{"name": "late", "start": "20:00", "end": "02:00", "allow_overrun": True}],
    [{"name": "dinner", "start": "17:00", "end": "22:00", "allow_overrun": True}],
]
# Requests at any hour of three dates, some far longer than a turn.
spread_requests = st.lists(
    st.tuples(
        st.integers(-1, 1),
        st.integers(0, 24 * 4 - 1).map(lambda q: time(q // 4, (q % 4) * 15)),
        st.one_of(st.none(), st.none(), st.integers(30, 600)),
        st.integers(1, 8),
    ),
    min_size=10,
    max_size=60,
)


def _end(start: time, minutes: int | None) -> time | None:
    if minutes is None:
        return None
    end_minute = (start.hour * 60 + start.minute + minutes) % (24 * 60)
    return time(end_minute // 60, end_minute % 60)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=restaurants(crowded=True),
    services=st.sampled_from(SPLIT_SERVICES),
    day=spread_requests,
    asks=spread_requests,
    extra=st.randoms(use_true_random=False),
    tidy_moves=st.booleans(),
)
def test_bookings_beyond_the_reach_never_change_a_decision(
    base, services, day, asks, extra, tidy_moves
):
    """``seat`` answers the same (plan, window, moves, and why not) when it is shown only
    the bookings that meet ``reach`` of its window, or those and any others, as when it is
    shown every booking of the date and its neighbours: what lets the allocator read less
    than whole days (storage.bookings.seated)."""
    cfg = RestaurantConfig.model_validate({**base.model_dump(), "services": services})
    now = datetime.combine(DAY - timedelta(days=3), time(12), tzinfo=UTC)
    seated: dict[str, Seated] = {}
    for index, (offset, start, minutes, party) in enumerate(day):
        on = DAY + timedelta(days=offset)
        outcome, window, moves = seat(cfg, party, on, start, _end(start, minutes), seated,
                                      now, reseat=True)
        if isinstance(outcome, Plan) and window is not None:
            for booking_id, tables in moves.items():
                before = seated[booking_id]
                seated[booking_id] = Seated(booking_id, before.party, before.window, tables)
            seated[f"b{index}"] = Seated(f"b{index}", party, window, outcome.table_ids)
    longest = max((s.window.blocked_until - s.window.start for s in seated.values()),
                  default=timedelta(0))
    excluded = 0
    for _, start, minutes, party in asks:
        end = _end(start, minutes)
        window = booking_window(cfg, DAY, start, end, party)
        if isinstance(window, AllocationFailure):
            continue
        span = reach(window, longest)
        assert span is not None  # every config here has services
        lo, hi = span
        inside = {b: s for b, s in seated.items()
                  if s.window.blocked_until > lo and s.window.start < hi}
        excluded += len(seated) - len(inside)
        some_more = {**inside, **{b: s for b, s in seated.items() if extra.random() < 0.5}}
        some_more = {b: some_more[b] for b in seated if b in some_more}  # the day's order
        full = seat(cfg, party, DAY, start, end, seated, now, reseat=True,
                    tidy_moves=tidy_moves)
        assert seat(cfg, party, DAY, start, end, inside, now, reseat=True,
                    tidy_moves=tidy_moves) == full
        assert seat(cfg, party, DAY, start, end, some_more, now, reseat=True,
                    tidy_moves=tidy_moves) == full
    event("some bookings beyond the reach" if excluded else "every booking within the reach")


def test_reach_has_no_bound_without_services() -> None:
    window = Window(datetime(2026, 12, 1, 19), datetime(2026, 12, 1, 21),
                    datetime(2026, 12, 1, 21, 15))
    assert reach(window, timedelta(hours=2)) is None


def test_reach_covers_the_service_and_a_chain_of_longest_windows() -> None:
    window = Window(datetime(2026, 12, 1, 19), datetime(2026, 12, 1, 19, 15),
                    datetime(2026, 12, 1, 19, 15), service="dinner",
                    service_start=datetime(2026, 12, 1, 17),
                    service_end=datetime(2026, 12, 1, 22))
    # Short windows: the service's edges bound it.
    assert reach(window, timedelta(minutes=15)) == (datetime(2026, 12, 1, 17),
                                                     datetime(2026, 12, 1, 22))
    # Two-hour windows: REPACK_MAX_MOVES + 1 of them either side.
    assert reach(window, timedelta(hours=2)) == (datetime(2026, 12, 1, 11),
                                                  datetime(2026, 12, 2, 3, 15))


def test_a_move_sees_the_neighbours_of_the_booking_it_moves() -> None:
    """Found by the property above with a bound of the service alone: a long lunch could
    move to the 1-top only if the dinner booking on it, beyond lunch's edge, were ignored."""
    cfg = RestaurantConfig.model_validate({
        "restaurant_id": "r-reach", "name": "Reach", "slug": "reach",
        "tables": [{"table_id": "t0", "zone": "main", "capacity": 1},
                   {"table_id": "t1", "zone": "main", "capacity": 2},
                   {"table_id": "t2", "zone": "main", "capacity": 3}],
        "services": SPLIT_SERVICES[0], "max_tables_per_booking": 1,
    })
    now = datetime.combine(DAY - timedelta(days=3), time(12), tzinfo=UTC)
    seated: dict[str, Seated] = {}
    for booking_id, start, minutes in (("dinner", time(17), None), ("lunch", time(12, 30), 271)):
        outcome, window, _ = seat(cfg, 1, DAY, start, _end(start, minutes), seated, now,
                                  reseat=True)
        assert isinstance(outcome, Plan) and window is not None
        seated[booking_id] = Seated(booking_id, 1, window, outcome.table_ids)
    assert seated["dinner"].table_ids == ("t0",) and seated["lunch"].table_ids == ("t1",)
    window = booking_window(cfg, DAY, time(12), None, 2)
    assert isinstance(window, Window) and window.service_end is not None
    longest = max(s.window.blocked_until - s.window.start for s in seated.values())
    lo, hi = reach(window, longest) or (None, None)
    assert seated["dinner"].window.start >= window.service_end  # beyond the service...
    assert seated["dinner"].window.start < hi  # ...but within the reach

    def decide(shown: dict[str, Seated]):
        return seat(cfg, 2, DAY, time(12), None, shown, now, reseat=True, tidy_moves=True)

    assert decide(seated)[0] == Plan(("t2",), 3)
    assert decide(seated)[2] == {}
    without_dinner = decide({"lunch": seated["lunch"]})
    assert without_dinner[2] == {"lunch": ("t0",)}  # what a bound of the service would do
