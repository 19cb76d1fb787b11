"""Focused examples for domain.allocation: fit rules, combinations, windows, failures."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from domain.allocation import (
    INVALID_WINDOW,
    NO_ACTIVE_TABLES,
    NO_CAPACITY,
    OUTSIDE_SERVICE_HOURS,
    PARTY_TOO_LARGE,
    PARTY_TOO_SMALL,
    REPACK_MAX_MOVES,
    AllocationFailure,
    Layout,
    Occupied,
    Plan,
    Repack,
    Seated,
    Window,
    allocate,
    booking_window,
    plan_occupancy,
    repack,
    seat,
    tidy,
)
from models.restaurant import RestaurantConfig

DAY = date(2026, 12, 1)


def config(tables, adjacency=(), services=(), **extra) -> RestaurantConfig:
    return RestaurantConfig.model_validate(
        {
            "restaurant_id": "r-test",
            "name": "Test",
            "slug": "test",
            "tables": [
                {"table_id": tid, "zone": zone, "capacity": cap, **more}
                for tid, zone, cap, *rest in tables
                for more in [rest[0] if rest else {}]
            ],
            "adjacency": [list(p) for p in adjacency],
            "services": list(services),
            **extra,
        }
    )


def window(cfg, start="19:00", end=None, party=2) -> Window:
    hh, mm = map(int, start.split(":"))
    end_t = None if end is None else time(*map(int, end.split(":")))
    result = booking_window(cfg, DAY, time(hh, mm), end_t, party)
    assert isinstance(result, Window), result
    return result


def at(hhmm: str) -> datetime:
    hh, mm = map(int, hhmm.split(":"))
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm)


def busy(table_id: str, start: str, end: str) -> Occupied:
    return Occupied(table_id, at(start), at(end))


def test_single_table_smallest_that_fits():
    cfg = config([("t6", "main", 6), ("t2", "main", 2), ("t4", "main", 4)])
    plan = allocate(Layout.from_config(cfg), 3, window(cfg, party=3), [])
    assert plan == Plan(("t4",), 4)


def test_min_party_keeps_a_couple_off_a_big_table():
    cfg = config([("t6", "main", 6, {"min_party": 3})])
    result = allocate(Layout.from_config(cfg), 2, window(cfg), [])
    assert isinstance(result, AllocationFailure)
    assert result.reason == PARTY_TOO_SMALL


def test_max_party_below_capacity_is_respected():
    cfg = config([("t4", "main", 4, {"max_party": 3}), ("t6", "main", 6)])
    plan = allocate(Layout.from_config(cfg), 4, window(cfg, party=4), [])
    assert plan == Plan(("t6",), 6)


def test_max_party_above_capacity_does_not_add_seats():
    cfg = config([("t2", "main", 2, {"max_party": 3})])
    result = allocate(Layout.from_config(cfg), 3, window(cfg, party=3), [])
    assert isinstance(result, AllocationFailure) and result.reason == PARTY_TOO_LARGE


def test_inactive_table_is_never_used():
    cfg = config([("t4a", "main", 4, {"active": False}), ("t4b", "main", 4)])
    plan = allocate(Layout.from_config(cfg), 4, window(cfg, party=4), [])
    assert plan == Plan(("t4b",), 4)


def test_no_active_tables():
    cfg = config([("t4", "main", 4, {"active": False})])
    result = allocate(Layout.from_config(cfg), 2, window(cfg), [])
    assert isinstance(result, AllocationFailure) and result.reason == NO_ACTIVE_TABLES


def test_inactive_table_does_not_bridge_a_combination():
    cfg = config(
        [("a", "main", 2), ("b", "main", 2, {"active": False}), ("c", "main", 2)],
        adjacency=[("a", "b"), ("b", "c")],
    )
    result = allocate(Layout.from_config(cfg), 4, window(cfg, party=4), [])
    assert isinstance(result, AllocationFailure) and result.reason == PARTY_TOO_LARGE


def test_combination_needs_adjacency():
    tables = [("a", "main", 2), ("b", "main", 2)]
    apart = config(tables)
    result = allocate(Layout.from_config(apart), 4, window(apart, party=4), [])
    assert isinstance(result, AllocationFailure) and result.reason == PARTY_TOO_LARGE

    joined = config(tables, adjacency=[("a", "b")])
    assert allocate(Layout.from_config(joined), 4, window(joined, party=4), []) == Plan(
        ("a", "b"), 4
    )


def test_combination_needs_one_zone():
    cfg = config([("a", "main", 2), ("b", "terrace", 2)], adjacency=[("a", "b")])
    result = allocate(Layout.from_config(cfg), 4, window(cfg, party=4), [])
    assert isinstance(result, AllocationFailure) and result.reason == PARTY_TOO_LARGE


def test_max_tables_limits_combinations():
    tables = [("a", "main", 2), ("b", "main", 2), ("c", "main", 2)]
    chain = [("a", "b"), ("b", "c")]
    two = config(tables, adjacency=chain, max_tables_per_booking=2)
    result = allocate(Layout.from_config(two), 6, window(two, party=6), [])
    assert isinstance(result, AllocationFailure) and result.reason == PARTY_TOO_LARGE

    three = config(tables, adjacency=chain, max_tables_per_booking=3)
    assert allocate(Layout.from_config(three), 6, window(three, party=6), []) == Plan(
        ("a", "b", "c"), 6
    )


def test_combination_fits_through_a_middle_table_only_when_connected():
    # a-b-c chain: {a, c} is not connected, so a party of 4 must take a pair through b.
    cfg = config(
        [("a", "main", 2), ("b", "main", 2), ("c", "main", 2)], adjacency=[("a", "b"), ("b", "c")]
    )
    layout = Layout.from_config(cfg)
    assert {p.table_ids for p in layout.plans_for(4)} >= {("a", "b"), ("b", "c")}
    assert ("a", "c") not in {p.table_ids for p in layout.plans()}


def test_waste_beats_table_count_and_table_count_breaks_equal_waste():
    cfg = config([("a", "main", 2), ("b", "main", 2), ("t6", "main", 6)], adjacency=[("a", "b")])
    layout = Layout.from_config(cfg)
    # 4 guests: two 2-tops waste nothing, the 6-top wastes two.
    assert allocate(layout, 4, window(cfg, party=4), []) == Plan(("a", "b"), 4)
    cfg5 = config([("a", "main", 2), ("b", "main", 4), ("t6", "main", 6)], adjacency=[("a", "b")])
    # 5 guests: 2+4 and the 6-top both waste one; one table wins.
    assert allocate(Layout.from_config(cfg5), 5, window(cfg5, party=5), []) == Plan(("t6",), 6)


def test_buffer_makes_back_to_back_conflict_or_not():
    cfg = config([("t2", "main", 2)], buffer_after_minutes=5)  # turn for 2: 60 minutes
    layout = Layout.from_config(cfg)
    first = window(cfg, "18:00")
    assert first.end == at("19:00") and first.blocked_until == at("19:05")
    held = plan_occupancy(Plan(("t2",), 2), first)
    assert held == (Occupied("t2", at("18:00"), at("19:05")),)

    too_soon = allocate(layout, 2, window(cfg, "19:00"), held)
    assert isinstance(too_soon, AllocationFailure) and too_soon.reason == NO_CAPACITY
    assert allocate(layout, 2, window(cfg, "19:05"), held) == Plan(("t2",), 2)
    # The later booking's own buffer also blocks an earlier one ending inside it.
    before = allocate(layout, 2, window(cfg, "16:56"), held)
    assert isinstance(before, AllocationFailure) and before.reason == NO_CAPACITY
    assert allocate(layout, 2, window(cfg, "16:55"), held) == Plan(("t2",), 2)


def test_zero_buffer_allows_exact_back_to_back():
    cfg = config([("t2", "main", 2)], buffer_after_minutes=0)
    held = [busy("t2", "18:00", "19:00")]
    assert allocate(Layout.from_config(cfg), 2, window(cfg, "19:00"), held) == Plan(("t2",), 2)


def test_given_end_time_is_used_and_turn_otherwise():
    cfg = config([("t4", "main", 4)], turn_minutes={"2": 60, "4": 90})
    assert window(cfg, "18:00", party=3).end == at("19:30")
    assert window(cfg, "18:00", end="18:45", party=3).end == at("18:45")


def test_end_before_start_runs_past_midnight_and_equal_is_invalid():
    cfg = config([("t4", "main", 4)])
    late = window(cfg, "23:30", end="00:30")
    assert late.end == datetime(2026, 12, 2, 0, 30)
    same = booking_window(cfg, DAY, time(19, 0), time(19, 0), 2)
    assert isinstance(same, AllocationFailure) and same.reason == INVALID_WINDOW


SERVICES = [
    {"name": "lunch", "start": "12:00", "end": "15:00", "allow_overrun": True},
    {"name": "dinner", "start": "17:00", "end": "22:00", "allow_overrun": False},
]


def test_service_without_overrun_clamps_the_end():
    cfg = config([("t4", "main", 4)], services=SERVICES)
    w = window(cfg, "21:30", party=4)  # 75-minute turn would end 22:45
    assert (w.end, w.blocked_until, w.service) == (at("22:00"), at("22:05"), "dinner")


def test_service_with_overrun_lets_the_end_run_past():
    cfg = config([("t4", "main", 4)], services=SERVICES)
    w = window(cfg, "14:30", party=4)
    assert (w.end, w.service) == (at("15:45"), "lunch")


@pytest.mark.parametrize("start", ["11:59", "15:00", "16:30", "22:00"])
def test_outside_service_hours(start):
    cfg = config([("t4", "main", 4)], services=SERVICES)
    hh, mm = map(int, start.split(":"))
    result = booking_window(cfg, DAY, time(hh, mm), None, 2)
    assert isinstance(result, AllocationFailure) and result.reason == OUTSIDE_SERVICE_HOURS


def test_no_services_means_any_time():
    cfg = config([("t4", "main", 4)])
    assert window(cfg, "03:00").start == at("03:00")


def test_party_too_large_vs_no_capacity():
    cfg = config([("a", "main", 2), ("b", "main", 4)], adjacency=[("a", "b")])
    layout = Layout.from_config(cfg)
    too_big = allocate(layout, 7, window(cfg, party=7), [])
    assert isinstance(too_big, AllocationFailure) and too_big.reason == PARTY_TOO_LARGE

    held = [busy("a", "18:30", "20:00")]
    full = allocate(layout, 6, window(cfg, party=6), held)
    assert isinstance(full, AllocationFailure) and full.reason == NO_CAPACITY
    # Ranges on tables the layout does not know are ignored, not an error.
    assert allocate(layout, 6, window(cfg, party=6), [busy("zz", "18:00", "23:00")]) == Plan(
        ("a", "b"), 6
    )


def test_party_below_one_is_a_programming_error():
    cfg = config([("t4", "main", 4)])
    with pytest.raises(ValueError):
        allocate(Layout.from_config(cfg), 0, window(cfg), [])


def test_prefers_the_table_with_the_tightest_free_time():
    cfg = config([("t2a", "main", 2), ("t2b", "main", 2)])
    layout = Layout.from_config(cfg)
    # t2b is free until 20:05 only: wedging 19:00-20:05 there keeps t2a free all evening.
    held = [busy("t2b", "20:05", "21:10")]
    assert allocate(layout, 2, window(cfg, "19:00"), held) == Plan(("t2b",), 2)


def test_prefers_a_table_few_combinations_need():
    # b links a and c into combinations; with equal free time, a 2 goes to the loner d.
    cfg = config(
        [("a", "main", 2), ("b", "main", 2), ("c", "main", 2), ("d", "main", 2)],
        adjacency=[("a", "b"), ("b", "c")],
    )
    layout = Layout.from_config(cfg)
    assert allocate(layout, 2, window(cfg), []) == Plan(("d",), 2)
    assert layout.combo_weight("b") > layout.combo_weight("a") > layout.combo_weight("d") == 0


def test_deterministic_whatever_the_input_order():
    cfg = config([(f"t{i}", "main", 2) for i in range(6)])
    held = [busy("t0", "17:00", "18:00"), busy("t3", "21:00", "22:00")]
    layout = Layout.from_config(cfg)
    results = {
        allocate(layout, 2, window(cfg), order)
        for order in (held, list(reversed(held)), tuple(held))
    }
    fresh = allocate(
        Layout.from_config(config([(f"t{i}", "main", 2) for i in range(6)])), 2, window(cfg), held
    )
    assert len(results) == 1 and results == {fresh}


def test_layout_is_memoised_per_config_object():
    cfg = config([("t4", "main", 4)])
    assert Layout.from_config(cfg) is Layout.from_config(cfg)


# --- repack: re-seating confirmed bookings so a new one fits


def seated(cfg, booking_id, tables, start="19:00", end=None, party=2) -> Seated:
    return Seated(booking_id, party, window(cfg, start, end, party), tuple(tables))


def test_repack_with_a_free_plan_moves_nobody():
    cfg = config([("a", "main", 2), ("b", "main", 4)])
    layout = Layout.from_config(cfg)
    result = repack(layout, 2, window(cfg), [seated(cfg, "x", ["b"], party=4)])
    assert result == Repack(Plan(("a",), 2), {})


def test_repack_moves_a_couple_off_the_four_top():
    cfg = config([("a", "main", 2), ("b", "main", 4)])
    layout = Layout.from_config(cfg)
    couple = seated(cfg, "x", ["b"])
    occupied = [Occupied("b", couple.window.start, couple.window.blocked_until)]
    assert allocate(layout, 4, window(cfg, party=4), occupied).reason == NO_CAPACITY

    result = repack(layout, 4, window(cfg, party=4), [couple])
    assert isinstance(result, Repack)
    assert result.plan == Plan(("b",), 4) and result.moves == {"x": ("a",)}


def test_repack_follows_a_chain_within_the_move_limit():
    # The 6 needs c, whose 4 can only go to b, whose couple can only go to a.
    cfg = config([("a", "main", 2), ("b", "main", 4), ("c", "main", 6, {"min_party": 3})])
    layout = Layout.from_config(cfg)
    day = [seated(cfg, "four", ["c"], party=4), seated(cfg, "two", ["b"], start="18:30")]
    result = repack(layout, 6, window(cfg, party=6), day)
    assert isinstance(result, Repack)
    assert result.plan == Plan(("c",), 6)
    assert result.moves == {"four": ("b",), "two": ("a",)}

    one_move = repack(layout, 6, window(cfg, party=6), day, max_moves=1)
    assert isinstance(one_move, AllocationFailure) and one_move.reason == NO_CAPACITY


def test_repack_prefers_the_fewest_moves():
    # p: its couple could go to a only if a's couple goes to b (2 moves);
    # q: its three can go straight to s (1 move). p sorts first, so depth-first alone
    # would take the longer chain.
    cfg = config(
        [
            ("p", "main", 4),
            ("q", "main", 4),
            ("a", "main", 2),
            ("b", "main", 2),
            ("s", "main", 3, {"min_party": 3}),
        ]
    )
    layout = Layout.from_config(cfg)
    day = [
        seated(cfg, "y1", ["p"], start="19:00", end="21:00"),
        seated(cfg, "y2", ["a"], start="17:30", end="19:30"),
        seated(cfg, "w", ["b"], start="20:00", end="21:00"),
        seated(cfg, "y3", ["q"], start="19:00", end="21:00", party=3),
        seated(cfg, "z", ["s"], start="17:00", end="18:00", party=3),
    ]
    result = repack(layout, 4, window(cfg, start="19:00", end="21:00", party=4), day)
    assert isinstance(result, Repack)
    assert result.plan == Plan(("q",), 4) and result.moves == {"y3": ("s",)}


def test_repack_never_moves_a_booking_onto_a_busy_table_or_out_of_its_window():
    cfg = config([("a", "main", 2), ("b", "main", 4)])
    layout = Layout.from_config(cfg)
    # a is held when the couple on b sits: moving it would double-book a.
    day = [seated(cfg, "x", ["b"]), seated(cfg, "y", ["a"], start="18:30")]
    result = repack(layout, 4, window(cfg, party=4), day)
    assert isinstance(result, AllocationFailure) and result.reason == NO_CAPACITY
    assert "re-seating" in result.detail


def test_repack_passes_on_failures_no_move_can_fix():
    cfg = config([("a", "main", 2)])
    result = repack(Layout.from_config(cfg), 5, window(cfg, party=5), [])
    assert isinstance(result, AllocationFailure) and result.reason == PARTY_TOO_LARGE


def test_repack_bounded_by_its_work_limit():
    cfg = config([("a", "main", 2), ("b", "main", 4)])
    layout = Layout.from_config(cfg)
    result = repack(layout, 4, window(cfg, party=4), [seated(cfg, "x", ["b"])], work_limit=0)
    assert isinstance(result, AllocationFailure) and "budget used up" in result.detail


def test_repack_keeps_bookings_on_unknown_tables_where_they_are():
    # "gone" is no longer in the layout: its booking still holds it, and is never moved.
    cfg = config([("a", "main", 2), ("b", "main", 4)])
    layout = Layout.from_config(cfg)
    day = [seated(cfg, "x", ["b"]), seated(cfg, "old", ["gone"])]
    result = repack(layout, 4, window(cfg, party=4), day)
    assert isinstance(result, Repack) and result.moves == {"x": ("a",)}


def test_repack_never_moves_a_booking_that_has_started():
    # The couple on b started at 18:30: its guests are at the table. Moving it would seat
    # the four, but a started booking stays where it is.
    cfg = config([("a", "main", 2), ("b", "main", 4)])
    layout = Layout.from_config(cfg)
    day = [seated(cfg, "x", ["b"], start="18:30")]
    four = window(cfg, party=4)
    before = repack(layout, 4, four, day, started_by=at("18:00"))
    assert isinstance(before, Repack) and before.moves == {"x": ("a",)}
    after = repack(layout, 4, four, day, started_by=at("18:30"))
    assert isinstance(after, AllocationFailure) and after.reason == NO_CAPACITY


def test_seat_does_not_move_a_booking_already_at_its_table():
    # A walk-in decided at 18:45 for 19:00: the couple seated since 18:30 keeps the four-top.
    cfg = config([("a", "main", 2), ("b", "main", 4)])
    couple = seated(cfg, "x", ["b"], start="18:30")
    at_the_door = datetime(2026, 12, 1, 18, 45, tzinfo=UTC)
    outcome, _, moves = seat(cfg, 4, DAY, time(19, 0), None, {"x": couple}, at_the_door,
                             reseat=True)
    assert isinstance(outcome, AllocationFailure) and outcome.reason == NO_CAPACITY
    assert moves == {}
    day_before = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    outcome, _, moves = seat(cfg, 4, DAY, time(19, 0), None, {"x": couple}, day_before,
                             reseat=True)
    assert outcome == Plan(("b",), 4) and moves == {"x": ("a",)}


def test_seat_says_how_far_re_seating_looked_when_it_fails():
    cfg = config([("a", "main", 2), ("b", "main", 4)])
    day = {"x": seated(cfg, "x", ["b"]), "y": seated(cfg, "y", ["a"], start="18:30")}
    day_before = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    outcome, _, _ = seat(cfg, 4, DAY, time(19, 0), None, day, day_before, reseat=True)
    assert isinstance(outcome, AllocationFailure) and "re-seating" in outcome.detail


def test_repack_gives_up_at_once_when_the_room_is_full_at_that_time():
    # Two tables, two bookings at 19:00 and a third asks: no re-seating can make room,
    # and the answer says so without searching.
    cfg = config([("a", "main", 4), ("b", "main", 4)])
    layout = Layout.from_config(cfg)
    day = [seated(cfg, "x", ["a"]), seated(cfg, "y", ["b"], start="19:30")]
    result = repack(layout, 2, window(cfg, start="19:45"), day)
    assert isinstance(result, AllocationFailure) and result.reason == NO_CAPACITY
    assert "need more tables or seats" in result.detail


def test_repack_follows_a_rotation_only_as_long_as_its_move_bound():
    # Each table takes its own size or one less. Only t6 takes the six, so everyone moves
    # down a table: four moves, one more than the default bound.
    cfg = config([("t2", "main", 2)] + [
        (f"t{n}", "main", n, {"min_party": n - 1}) for n in (3, 4, 5, 6)
    ])
    layout = Layout.from_config(cfg)
    day = [seated(cfg, f"p{n}", [f"t{n + 1}"], party=n) for n in (2, 3, 4, 5)]
    assert REPACK_MAX_MOVES == 3
    assert isinstance(repack(layout, 6, window(cfg, party=6), day), AllocationFailure)
    result = repack(layout, 6, window(cfg, party=6), day, max_moves=4)
    assert isinstance(result, Repack) and result.plan == Plan(("t6",), 6)
    assert result.moves == {"p2": ("t2",), "p3": ("t3",), "p4": ("t4",), "p5": ("t5",)}


def test_minimal_plans_leave_out_supersets_of_a_plan_that_fits():
    cfg = config([("a", "main", 2), ("b", "main", 2), ("c", "main", 4)],
                 adjacency=[("a", "b"), ("b", "c")])
    layout = Layout.from_config(cfg)
    assert {p.table_ids for p in layout.minimal_plans_for(4)} == {("a", "b"), ("c",)}
    assert ("b", "c") in {p.table_ids for p in layout.plans_for(4)}


def test_a_booking_that_can_be_seated_moves_nobody_by_default():
    # Contract §4: moves only when a booking cannot otherwise be seated. The four fits the
    # free six-top, so the three stays on the four-top although a move would waste less.
    cfg = config([("t3", "main", 3), ("t4", "main", 4), ("t6", "main", 6)])
    three = seated(cfg, "x", ["t4"], party=3)
    day_before = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    outcome, _, moves = seat(cfg, 4, DAY, time(19, 0), None, {"x": three}, day_before,
                             reseat=True)
    assert outcome == Plan(("t6",), 6) and moves == {}


def test_seat_with_tidy_moves_moves_one_booking_when_both_then_waste_fewer_seats():
    # Opt-in: a four arrives with only the six-top free; the three on the four-top could sit
    # at the free three-top. Moving it seats both without a wasted seat (3 wasted before).
    cfg = config([("t3", "main", 3), ("t4", "main", 4), ("t6", "main", 6)])
    three = seated(cfg, "x", ["t4"], party=3)
    day_before = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    outcome, _, moves = seat(cfg, 4, DAY, time(19, 0), None, {"x": three}, day_before,
                             reseat=True, tidy_moves=True)
    assert outcome == Plan(("t4",), 4) and moves == {"x": ("t3",)}
    # Without re-seating, or once the three has started, nobody moves.
    outcome, _, moves = seat(cfg, 4, DAY, time(19, 0), None, {"x": three}, day_before,
                             reseat=False, tidy_moves=True)
    assert outcome == Plan(("t6",), 6) and moves == {}
    early = seated(cfg, "x", ["t4"], start="18:30", party=3)
    at_the_door = datetime(2026, 12, 1, 18, 45, tzinfo=UTC)
    outcome, _, moves = seat(cfg, 4, DAY, time(19, 0), None, {"x": early}, at_the_door,
                             reseat=True, tidy_moves=True)
    assert outcome == Plan(("t6",), 6) and moves == {}


def test_tidy_moves_nobody_for_no_gain():
    # The couple on the two-top could only go to the free four-top: as many seats wasted
    # as the new couple wastes there now.
    cfg = config([("t2", "main", 2), ("t4", "main", 4)])
    layout = Layout.from_config(cfg)
    couple = seated(cfg, "x", ["t2"])
    result = tidy(layout, 2, window(cfg), [couple], Plan(("t4",), 4))
    assert result == Repack(Plan(("t4",), 4), {})
