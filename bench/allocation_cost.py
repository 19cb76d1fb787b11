"""Allocation cost: time per decision (allocation + re-seating) as tables and bookings grow.

For each (tables, bookings) cell: a generated restaurant (bench.daygen's tables, open all
day, 11:00-23:00, so that two dates can hold ten bookings per table) whose confirmed
bookings fill the benchmark date and then the next (the service hands the allocator a
date's bookings and its neighbours'), until the allocator holds that many; then DECISIONS
timed calls of ``domain.allocation.seat`` exactly as the service makes them (re-seating
on), for evening requests on the benchmark date. Times are the thread's CPU time (other
work on a shared machine does not count), wall time beside them; the garbage collector
is paused while they run, as ``timeit`` does (its pauses depend on the whole process's
heap, not on the decision). ``calibration_s`` is the CPU time of a fixed pure-Python loop
at the start and the end of the run: how fast this machine was then. The decisions are not
kept, so each meets the same full day: most of them find no free table and go on to
re-seating, the expensive path. The layout (candidate plans) is built once per restaurant
and reported separately.

Run: ``.venv/bin/python -m bench.allocation_cost``. Writes
bench/results/allocation_cost.{json,png}. Target: p99 <= 5 ms at 60 tables x 400 bookings;
200 x 2,000 reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import time as clock
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from bench.daygen import _PARTY_MIX, BENCH_DATE, generate_restaurant
from bench.pipeline.run import code_version
from domain.allocation import (
    NO_CAPACITY,
    REPACK_MAX_MOVES,
    REPACK_WORK_LIMIT,
    AllocationFailure,
    Layout,
    Occupied,
    Plan,
    Seated,
    allocate,
    booking_window,
    plan_occupancy,
    seat,
)
from models.restaurant import RestaurantConfig

RESULTS_DIR = Path(__file__).parent / "results"
TABLES = (10, 30, 60, 100, 200)
BOOKINGS = (50, 100, 200, 400, 1000, 2000)
# Open 12 hours, a table turns about 7 times a day: two dates hold about 12 bookings per
# table; cells asking more than 10 are skipped.
MAX_BOOKINGS_PER_TABLE = 10
ALL_DAY = {"name": "all day", "start": "11:00", "end": "23:00", "allow_overrun": False}
DECISIONS = 400
TARGET = {"tables": 60, "bookings": 400, "p99_ms": 5.0}
REPORTED = {"tables": 200, "bookings": 2000}
DECIDED_AT = datetime.combine(BENCH_DATE - timedelta(days=1), time(12, 0), tzinfo=UTC)


def restaurant(n_tables: int, rng: random.Random) -> RestaurantConfig:
    base = generate_restaurant(n_tables, rng)
    return RestaurantConfig.model_validate({**base.model_dump(), "services": [ALL_DAY]})


def fill(cfg: RestaurantConfig, n_bookings: int, rng: random.Random) -> dict[str, Seated]:
    """Confirmed bookings as the allocator (without re-seating) leaves them, at any quarter
    hour 11:00-21:45, the benchmark date first, then the next; stops at n_bookings, or when
    400 requests in a row find no table."""
    layout = Layout.from_config(cfg)
    sizes, size_weights = zip(*_PARTY_MIX, strict=True)
    seated: dict[str, Seated] = {}
    occupied: list[Occupied] = []
    for day in (BENCH_DATE, BENCH_DATE + timedelta(days=1)):
        misses = 0
        while len(seated) < n_bookings and misses < 400:
            party = rng.choices(sizes, size_weights)[0]
            quarter = rng.randrange(11 * 4, 22 * 4)
            window = booking_window(cfg, day, time(quarter // 4, quarter % 4 * 15), None, party)
            assert not isinstance(window, AllocationFailure), window
            plan = allocate(layout, party, window, occupied)
            if isinstance(plan, Plan):
                booking_id = f"f{len(seated):05d}"
                seated[booking_id] = Seated(booking_id, party, window, plan.table_ids)
                occupied += plan_occupancy(plan, window)
                misses = 0
            else:
                misses += 1
    return seated


def _decide(cfg: RestaurantConfig, seated: dict[str, Seated], rng: random.Random):
    """One timed decision: (CPU ms, wall ms, outcome, moves)."""
    party = rng.choice((1, 2, 2, 2, 3, 4, 4, 5, 6, 8))
    start = time(17 + rng.randrange(0, 4), 15 * rng.randrange(0, 4))
    wall, cpu = clock.perf_counter(), clock.thread_time()
    outcome, _, moved = seat(cfg, party, BENCH_DATE, start, None, seated, DECIDED_AT,
                             reseat=True)
    return ((clock.thread_time() - cpu) * 1000, (clock.perf_counter() - wall) * 1000,
            outcome, moved)


def calibration() -> float:
    """CPU seconds of a fixed pure-Python loop (about 0.15 s on an idle 2020s core)."""
    started = clock.thread_time()
    total = 0
    for i in range(3_000_000):
        total += i & 7
    return round(clock.thread_time() - started, 3)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(n_tables: int, n_bookings: int, decisions: int, seed: int = 0) -> dict:
    rng = random.Random(f"cost:{n_tables}:{n_bookings}:{seed}")
    cfg = restaurant(n_tables, rng)
    built = clock.perf_counter()
    layout = Layout.from_config(cfg)
    build_ms = (clock.perf_counter() - built) * 1000
    seated = fill(cfg, n_bookings, rng)

    samples, reseat_samples, wall = [], [], []
    confirmed = moved = 0
    moves: list[int] = []
    gc.collect()
    gc.disable()
    try:
        timed = [_decide(cfg, seated, rng) for _ in range(decisions)]
    finally:
        gc.enable()
    for ms, wall_ms, outcome, moved_now in timed:
        wall.append(wall_ms)
        samples.append(ms)
        if moved_now or (isinstance(outcome, AllocationFailure) and outcome.reason == NO_CAPACITY):
            reseat_samples.append(ms)
        confirmed += isinstance(outcome, Plan)
        moved += bool(moved_now)
        if moved_now:
            moves.append(len(moved_now))
    return {
        "tables": n_tables,
        "bookings": len(seated),
        "bookings_asked": n_bookings,
        "plans": len(layout.plans()),
        "layout_build_ms": round(build_ms, 2),
        "median_ms": round(statistics.median(samples), 4),
        "p99_ms": round(_percentile(samples, 0.99), 4),
        "max_ms": round(max(samples), 4),
        "wall_p99_ms": round(_percentile(wall, 0.99), 4),
        "reseat_share": round(len(reseat_samples) / decisions, 3),
        "reseat_p99_ms": round(_percentile(reseat_samples, 0.99), 4) if reseat_samples else 0.0,
        "confirmed_share": round(confirmed / decisions, 3),
        "reseated_share": round(moved / decisions, 3),
        "max_moves": max(moves, default=0),
    }


def _chart(cells: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_med, ax_p99) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for n_tables in sorted({c["tables"] for c in cells}):
        row = sorted((c for c in cells if c["tables"] == n_tables), key=lambda c: c["bookings"])
        xs = [c["bookings"] for c in row]
        ax_med.plot(xs, [c["median_ms"] for c in row], "o-", label=f"{n_tables} tables")
        ax_p99.plot(xs, [c["p99_ms"] for c in row], "o-", label=f"{n_tables} tables")
    for ax, title in ((ax_med, "median"), (ax_p99, "p99")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("confirmed bookings handed to the allocator")
        ax.set_title(f"seat(), re-seating on: {title} CPU ms per decision")
        ax.grid(alpha=0.3, which="both")
    ax_p99.axhline(TARGET["p99_ms"], color="red", lw=0.8, ls=":", label="5 ms target")
    ax_med.set_ylabel("ms")
    ax_p99.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=DECISIONS)
    parser.add_argument("--tables", default=",".join(map(str, TABLES)))
    args = parser.parse_args(argv)
    tables = [int(t) for t in args.tables.split(",")]

    before = calibration()
    cells = [measure(t, b, args.decisions) for t in tables for b in BOOKINGS
             if b <= MAX_BOOKINGS_PER_TABLE * t]
    after = calibration()

    def cell(spec: dict) -> dict | None:
        return next((c for c in cells if c["tables"] == spec["tables"]
                     and c["bookings_asked"] == spec["bookings"]), None)

    target_cell = cell(TARGET)
    payload = {
        "benchmark": "allocation_cost",
        "code": code_version(),
        "target": TARGET,
        "target_met": target_cell is not None and target_cell["p99_ms"] <= TARGET["p99_ms"],
        "reseat_bounds": {"max_moves": REPACK_MAX_MOVES, "work_limit": REPACK_WORK_LIMIT},
        "calibration_s": {"before": before, "after": after},
        "load_average": list(os.getloadavg()),
        "cells": cells,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "allocation_cost.json").write_text(json.dumps(payload, indent=2))
    _chart(cells, RESULTS_DIR / "allocation_cost.png")

    print(f"{'tables':>6} {'bookings':>8} {'plans':>6} {'build ms':>8} {'median':>7} "
          f"{'p99':>7} {'max':>7} {'reseat':>6} {'rs p99':>7} {'seated':>6} {'moved':>5}")
    for c in cells:
        print(f"{c['tables']:>6} {c['bookings']:>8} {c['plans']:>6} {c['layout_build_ms']:>8.1f} "
              f"{c['median_ms']:>7.3f} {c['p99_ms']:>7.3f} {c['max_ms']:>7.3f} "
              f"{c['reseat_share']:>6.0%} {c['reseat_p99_ms']:>7.3f} "
              f"{c['confirmed_share']:>6.0%} {c['reseated_share']:>5.0%}")
    if target_cell is not None:
        print(
            f"target p99 <= {TARGET['p99_ms']} ms at {TARGET['tables']} tables x "
            f"{TARGET['bookings']} bookings: {target_cell['p99_ms']:.3f} ms -> "
            f"{'met' if payload['target_met'] else 'NOT met'}"
        )
    reported = cell(REPORTED)
    if reported is not None:
        print(f"{REPORTED['tables']} tables x {reported['bookings']} bookings: p99 "
              f"{reported['p99_ms']:.3f} ms")
    print(f"calibration loop: {before} s before, {after} s after (about 0.15 s on an idle core)")
    print(f"wrote {RESULTS_DIR / 'allocation_cost.json'} and .png")
    return payload


if __name__ == "__main__":
    main()
