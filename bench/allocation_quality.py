"""Allocation quality: covers seated by the online allocator vs an offline optimum and first-fit.

For each generated day (bench.daygen) the dinner requests are decided in arrival order by
  * ours: ``domain.allocation.allocate`` (combinations allowed, fragmentation-aware);
  * ours+repack: ``allocate``, and on no_capacity ``domain.allocation.repack`` (re-seats
    confirmed bookings, each keeping its window, to make room; costs reported per call);
  * first-fit: the smallest free single table that fits, lowest table id first;
and compared with the exact offline optimum of the same day: an integer program
(scipy.optimize.milp / HiGHS) that sees every request at once and may turn any away.
The optimum is an upper bound no online allocator can always reach: it knows the future.

Run: ``.venv/bin/python -m bench.allocation_quality [--days N] [--sizes 10,30,60]``.
Writes bench/results/allocation_quality.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time as clock
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from bench.daygen import BENCH_DATE, Day, generate_day
from domain.allocation import (
    NO_CAPACITY,
    AllocationFailure,
    Layout,
    Occupied,
    Repack,
    Seated,
    Window,
    allocate,
    booking_window,
    plan_occupancy,
    repack,
)

RESULTS_DIR = Path(__file__).parent / "results"
TARGET_MEAN_RATIO = 0.97
MILP_TIME_LIMIT_S = 120.0


@dataclass(frozen=True, slots=True)
class DayResult:
    size: int
    seed: int
    demand: float
    requested_covers: int
    ours: int
    ours_repack: int
    first_fit: int
    optimum: int
    optimum_bound: float  # == optimum when the MILP proved optimality
    optimal: bool
    milp_seconds: float
    repack_calls: int  # allocate failed with no_capacity and repack was asked
    repack_successes: int
    repack_moves: list[int]  # bookings moved, per successful repack
    repack_ms: list[float]  # wall time per repack call


def _windows(day: Day) -> list[tuple[int, Window]]:
    """(party, window) per request in arrival order; requests outside service are dropped."""
    out = []
    for req in day.requests:
        window = booking_window(day.config, BENCH_DATE, req.start, None, req.party)
        if not isinstance(window, AllocationFailure):
            out.append((req.party, window))
    return out


def covers_ours(day: Day) -> int:
    layout = Layout.from_config(day.config)
    occupied: list[Occupied] = []
    covers = 0
    for party, window in _windows(day):
        result = allocate(layout, party, window, occupied)
        if not isinstance(result, AllocationFailure):
            occupied.extend(plan_occupancy(result, window))
            covers += party
    return covers


@dataclass
class RepackStats:
    calls: int = 0
    successes: int = 0
    moves: list[int] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)


def covers_ours_repack(day: Day, stats: RepackStats | None = None) -> int:
    """``allocate`` first; on no_capacity, ``repack`` re-seats confirmed bookings."""
    stats = stats if stats is not None else RepackStats()
    layout = Layout.from_config(day.config)
    seated: dict[str, Seated] = {}
    covers = 0
    for index, (party, window) in enumerate(_windows(day)):
        booking_id = f"r{index}"
        occupied = [
            Occupied(tid, s.window.start, s.window.blocked_until)
            for s in seated.values()
            for tid in s.table_ids
        ]
        result = allocate(layout, party, window, occupied)
        if isinstance(result, AllocationFailure) and result.reason == NO_CAPACITY:
            stats.calls += 1
            started = clock.perf_counter()
            outcome = repack(layout, party, window, list(seated.values()))
            stats.ms.append((clock.perf_counter() - started) * 1000)
            if isinstance(outcome, Repack):
                stats.successes += 1
                stats.moves.append(len(outcome.moves))
                for moved_id, tables in outcome.moves.items():
                    moved = seated[moved_id]
                    seated[moved_id] = Seated(moved_id, moved.party, moved.window, tables)
                result = outcome.plan
        if not isinstance(result, AllocationFailure):
            seated[booking_id] = Seated(booking_id, party, window, result.table_ids)
            covers += party
    return covers


def covers_first_fit(day: Day) -> int:
    tables = sorted(
        (t for t in day.config.tables if t.active), key=lambda t: (t.capacity, t.table_id)
    )
    held: dict[str, list[Window]] = {t.table_id: [] for t in tables}
    covers = 0
    for party, window in _windows(day):
        for table in tables:
            if not table.min_party <= party <= min(table.capacity, table.effective_max_party):
                continue
            if all(
                not (w.start < window.blocked_until and window.start < w.blocked_until)
                for w in held[table.table_id]
            ):
                held[table.table_id].append(window)
                covers += party
                break
    return covers


def optimum(day: Day) -> tuple[int, float, bool, float]:
    """Max covers over all assignments of requests to plans: (covers, bound, optimal, secs).

    Variables x[b, p] for each request b and each plan p that could seat it, dropping plans
    that strictly contain another plan fitting the same party (never needed: the smaller
    plan frees a superset's tables for nothing lost). Rows: each request takes at most one
    plan; for each table and each request start s, the requests whose blocked window holds
    s use that table at most once (overlap of intervals happens at some start point).
    """
    layout = Layout.from_config(day.config)
    requests = _windows(day)
    minimal_by_party: dict[int, list[tuple[str, ...]]] = {}
    for party in {p for p, _ in requests}:
        plans = [p.table_ids for p in layout.plans_for(party)]
        sets = [frozenset(p) for p in plans]
        minimal_by_party[party] = [
            plan for plan, s in zip(plans, sets, strict=True) if not any(o < s for o in sets)
        ]

    var_booking: list[int] = []
    var_plan: list[tuple[str, ...]] = []
    for b, (party, _) in enumerate(requests):
        for plan in minimal_by_party[party]:
            var_booking.append(b)
            var_plan.append(plan)
    n_vars = len(var_plan)
    if n_vars == 0:
        return 0, 0.0, True, 0.0
    weights = np.array([requests[b][0] for b in var_booking], dtype=float)

    vars_by_table_booking: dict[str, dict[int, list[int]]] = {}
    for v, (b, plan) in enumerate(zip(var_booking, var_plan, strict=True)):
        for tid in plan:
            vars_by_table_booking.setdefault(tid, {}).setdefault(b, []).append(v)

    rows, cols = [], []
    for v, b in enumerate(var_booking):  # each request at most one plan: row b
        rows.append(b)
        cols.append(v)
    n_rows = len(requests)
    for by_booking in vars_by_table_booking.values():
        seen_cliques: set[frozenset[int]] = set()
        bookings = sorted(by_booking)
        for b in bookings:
            point = requests[b][1].start
            clique = frozenset(
                o for o in bookings if requests[o][1].start <= point < requests[o][1].blocked_until
            )
            if len(clique) < 2 or clique in seen_cliques:
                continue
            seen_cliques.add(clique)
            for o in clique:
                for v in by_booking[o]:
                    rows.append(n_rows)
                    cols.append(v)
            n_rows += 1
    matrix = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_rows, n_vars)).tocsr()

    started = clock.perf_counter()
    res = milp(
        c=-weights,
        constraints=LinearConstraint(matrix, -np.inf, 1.0),
        integrality=np.ones(n_vars),
        bounds=Bounds(0, 1),
        options={"time_limit": MILP_TIME_LIMIT_S, "disp": False},
    )
    seconds = clock.perf_counter() - started
    if res.x is None:
        raise RuntimeError(f"MILP found no solution: {res.message}")
    covers = int(round(-res.fun))
    bound = -float(getattr(res, "mip_dual_bound", res.fun) or res.fun)
    return covers, max(bound, covers), res.status == 0, seconds


def run_day(size: int, seed: int, basis: str = "turns") -> DayResult:
    day = generate_day(size, seed, basis=basis)
    best, bound, optimal, seconds = optimum(day)
    stats = RepackStats()
    with_repack = covers_ours_repack(day, stats)
    return DayResult(
        size=size,
        seed=seed,
        demand=round(day.demand, 3),
        requested_covers=sum(p for p, _ in _windows(day)),
        ours=covers_ours(day),
        ours_repack=with_repack,
        first_fit=covers_first_fit(day),
        optimum=best,
        optimum_bound=round(bound, 2),
        optimal=optimal,
        milp_seconds=round(seconds, 2),
        repack_calls=stats.calls,
        repack_successes=stats.successes,
        repack_moves=stats.moves,
        repack_ms=[round(ms, 3) for ms in stats.ms],
    )


def summarise(results: list[DayResult]) -> dict[str, dict[str, float]]:
    summary = {}
    for size in sorted({r.size for r in results}):
        rows = [r for r in results if r.size == size]
        # Against the proven bound, so an unproven MILP never flatters us.
        ratios = [r.ours / r.optimum_bound for r in rows]
        repack_ratios = [r.ours_repack / r.optimum_bound for r in rows]
        ff_ratios = [r.first_fit / r.optimum_bound for r in rows]
        moves = [m for r in rows for m in r.repack_moves]
        repack_ms = [ms for r in rows for ms in r.repack_ms]
        summary[str(size)] = {
            "days": len(rows),
            "mean_ratio": round(statistics.fmean(ratios), 4),
            "min_ratio": round(min(ratios), 4),
            "repack_mean_ratio": round(statistics.fmean(repack_ratios), 4),
            "repack_min_ratio": round(min(repack_ratios), 4),
            "first_fit_mean_ratio": round(statistics.fmean(ff_ratios), 4),
            "days_below_first_fit": sum(r.ours < r.first_fit for r in rows),
            "repack_days_below_first_fit": sum(r.ours_repack < r.first_fit for r in rows),
            "days_milp_unproven": sum(not r.optimal for r in rows),
            "meets_target": statistics.fmean(ratios) >= TARGET_MEAN_RATIO
            and all(r.ours >= r.first_fit for r in rows),
            "repack_meets_target": statistics.fmean(repack_ratios) >= TARGET_MEAN_RATIO
            and all(r.ours_repack >= r.first_fit for r in rows),
            "repack_calls": sum(r.repack_calls for r in rows),
            "repack_successes": sum(r.repack_successes for r in rows),
            "repack_mean_moves": round(statistics.fmean(moves), 2) if moves else 0.0,
            "repack_p50_ms": round(_percentile(repack_ms, 0.50), 3) if repack_ms else 0.0,
            "repack_p99_ms": round(_percentile(repack_ms, 0.99), 3) if repack_ms else 0.0,
            "repack_max_ms": round(max(repack_ms), 3) if repack_ms else 0.0,
        }
    return summary


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _chart(results: list[DayResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r.size for r in results})
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), sharey=True)
    for ax, size in zip(np.atleast_1d(axes), sizes, strict=True):
        rows = sorted((r for r in results if r.size == size), key=lambda r: r.demand)
        x = [r.demand * 100 for r in rows]
        ax.plot(x, [r.ours / r.optimum_bound for r in rows], "o-", label="ours")
        ax.plot(x, [r.ours_repack / r.optimum_bound for r in rows], "^-", label="ours+repack")
        ax.plot(x, [r.first_fit / r.optimum_bound for r in rows], "s--", label="first-fit")
        ax.axhline(TARGET_MEAN_RATIO, color="grey", lw=0.8, ls=":", label="97% target")
        ax.set_title(f"{size} tables")
        ax.set_xlabel("demand, % of dinner seat-minutes")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("covers / offline optimum")
    np.atleast_1d(axes)[0].legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12, help="seeded days per size")
    parser.add_argument("--sizes", default="10,30,60")
    parser.add_argument(
        "--basis",
        choices=("turns", "seat_minutes"),
        default="turns",
        help="what 100%% demand means (see bench.daygen.generate_day); seat_minutes = stress",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    results = [run_day(size, seed, args.basis) for size in sizes for seed in range(args.days)]
    summary = summarise(results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "allocation_quality",
        "demand_basis": args.basis,
        "target": {"mean_ratio_to_optimum": TARGET_MEAN_RATIO, "days_below_first_fit": 0},
        "summary": summary,
        "days": [_as_dict(r) for r in results],
    }
    stem = "allocation_quality" + ("" if args.basis == "turns" else f"_{args.basis}")
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    _chart(results, RESULTS_DIR / f"{stem}.png")

    print(
        f"{'tables':>6} {'days':>4} {'ours mean':>9} {'min':>7} {'+repack':>8} {'min':>7} "
        f"{'ff mean':>8} {'<ff':>3} {'<ff+rp':>6} {'unproven':>8}  target ours / +repack"
    )
    for size, s in summary.items():
        print(
            f"{size:>6} {s['days']:>4} {s['mean_ratio']:>9.2%} {s['min_ratio']:>7.2%} "
            f"{s['repack_mean_ratio']:>8.2%} {s['repack_min_ratio']:>7.2%} "
            f"{s['first_fit_mean_ratio']:>8.2%} {s['days_below_first_fit']:>3} "
            f"{s['repack_days_below_first_fit']:>6} {s['days_milp_unproven']:>8}  "
            f"{'met' if s['meets_target'] else 'NOT met'} / "
            f"{'met' if s['repack_meets_target'] else 'NOT met'}"
        )
    print(
        f"\n{'tables':>6} {'repacks':>7} {'placed':>6} {'moves/rp':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7}"
    )
    for size, s in summary.items():
        print(
            f"{size:>6} {s['repack_calls']:>7} {s['repack_successes']:>6} "
            f"{s['repack_mean_moves']:>8.2f} {s['repack_p50_ms']:>7.2f} "
            f"{s['repack_p99_ms']:>7.2f} {s['repack_max_ms']:>7.2f}"
        )
    print(f"wrote {RESULTS_DIR / stem}.json and .png")
    return payload


def _as_dict(result: DayResult) -> dict:
    return {name: getattr(result, name) for name in DayResult.__slots__}


if __name__ == "__main__":
    main()
