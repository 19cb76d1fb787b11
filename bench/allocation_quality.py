"""Allocation quality: covers seated by the online allocator vs two limits and two baselines.

For each generated day (bench.daygen, every kind in ``KINDS``) the requests are decided in
arrival order by
  * seatflow: ``domain.allocation.seat`` as the service calls it, re-seating on (its
    default); every decision is timed (allocation + re-seating), moves are counted. Times
    are the thread's CPU time, so other work on a shared machine does not count; wall
    time is kept beside them;
  * seatflow without re-seating (``SEATFLOW_ALLOCATION_REPACK=false``);
  * first-fit (the main baseline): the first free plan that fits, single tables before
    combinations of adjacent tables, smaller before larger, then table ids, the way
    TastyIgniter-style systems seat (a combination is one more bookable unit); no look at
    what comes later, no re-seating;
  * single-table first-fit (a second line): the smallest free single table that fits;
and compared with two limits:
  * the offline optimum: an integer program (scipy.optimize.milp / HiGHS) that sees every
    request at once and may turn any away; no online allocator can always reach it;
  * the arrival-order ceiling: first come, first served with perfect re-seating. Each
    request is accepted exactly when all accepted ones and it can be seated together
    (any number of moves; bookings already started stay where they are; after a layout
    change only active tables take moved bookings), which an integer program decides when
    a bounded search finds no seating. What an allocator that never turns away a guest it
    could seat reaches at best, whatever its search.

Run: ``.venv/bin/python -m bench.allocation_quality [--days N] [--sizes 10,30,60]
[--kinds standard,...] [--hard-days N]``. Writes bench/results/allocation_quality.{json,png}.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time as clock
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from bench.allocation_cost import calibration
from bench.daygen import KINDS, Day, Request, generate_day
from bench.pipeline.run import code_version
from domain.allocation import (
    NO_CAPACITY,
    AllocationFailure,
    Layout,
    Plan,
    Repack,
    Seated,
    Window,
    booking_window,
    repack,
    seat,
)

RESULTS_DIR = Path(__file__).parent / "results"
TARGET_MEAN_RATIO = 0.97  # of the optimum at 30 and 60 tables, of the ceiling at 10
CEILING_TARGET_SIZES = (10,)  # sizes measured against the ceiling (issue #14)
MILP_TIME_LIMIT_S = 120.0
FEASIBILITY_TIME_LIMIT_S = 30.0
# The ceiling's cheap first try: a re-seating search far wider than the service's.
CEILING_SEARCH = {"max_moves": 6, "work_limit": 200_000}


@dataclass(frozen=True, slots=True)
class Ask:
    """One request as the bench decides it: its window, and under which layout."""

    index: int  # arrival order
    request: Request
    window: Window
    config_index: int  # 0: the day's config; 1: config_after (layout change)

    @property
    def party(self) -> int:
        return self.request.party


@dataclass
class DayResult:
    size: int
    seed: int
    kind: str
    demand: float
    requested_covers: int
    seatflow: int  # re-seating on: the service's default
    no_reseat: int
    tidy_moves: int  # re-seating on and SEATFLOW_ALLOCATION_TIDY_MOVES (opt-in)
    first_fit: int  # single tables and combinations
    first_fit_single: int
    ceiling: int
    ceiling_undecided: int  # feasibility checks that hit their time limit (counted refused)
    optimum: int
    optimum_bound: float  # == optimum when the MILP proved optimality
    optimal: bool
    milp_seconds: float
    ceiling_seconds: float
    decisions: int
    decision_ms: list[float] = field(default_factory=list)  # seat(), re-seating on: CPU
    decision_wall_ms: list[float] = field(default_factory=list)
    reseat_ms: list[float] = field(default_factory=list)  # those that moved or searched
    moves: list[int] = field(default_factory=list)  # bookings moved, per re-seating


def asks(day: Day) -> list[Ask]:
    """The day's requests in arrival order; those outside every service are dropped."""
    out = []
    for index, req in enumerate(day.requests):
        window = booking_window(day.config, req.date, req.start, req.end, req.party)
        if not isinstance(window, AllocationFailure):
            config_index = 1 if day.config_for(index) is not day.config else 0
            out.append(Ask(index, req, window, config_index))
    return out


def _now(day: Day, ask: Ask) -> datetime:
    return day.decided_at(ask.request).replace(tzinfo=UTC)


def run_seatflow(day: Day, reseat: bool, result: DayResult | None = None, *,
                 tidy_moves: bool = False) -> int:
    """The service's decision, ``domain.allocation.seat``, for every request in order."""
    seated: dict[str, Seated] = {}
    covers = 0
    for ask in asks(day):
        req = ask.request
        cfg = day.config_for(ask.index)
        wall, cpu = clock.perf_counter(), clock.thread_time()
        outcome, window, moves = seat(
            cfg, req.party, req.date, req.start, req.end, seated, _now(day, ask), reseat=reseat,
            tidy_moves=tidy_moves,
        )
        ms = (clock.thread_time() - cpu) * 1000
        if result is not None:
            result.decision_ms.append(ms)
            result.decision_wall_ms.append((clock.perf_counter() - wall) * 1000)
            # Re-seating searched: it moved someone, or found nothing either.
            if moves or _no_capacity(outcome):
                result.reseat_ms.append(ms)
                if moves:
                    result.moves.append(len(moves))
        if isinstance(outcome, Plan) and window is not None:
            for moved_id, tables in moves.items():
                before = seated[moved_id]
                seated[moved_id] = Seated(moved_id, before.party, before.window, tables)
            seated[req.booking_id] = Seated(req.booking_id, req.party, window, outcome.table_ids)
            covers += req.party
    return covers


def _no_capacity(outcome: Plan | AllocationFailure) -> bool:
    return isinstance(outcome, AllocationFailure) and outcome.reason == NO_CAPACITY


def _first_fit_order(cfg, combinations: bool) -> list[tuple[tuple[str, ...], int, int]]:
    """(tables, smallest party, largest party) in first-fit order."""
    layout = Layout.from_config(cfg)
    tables = {t.table_id: t for t in cfg.tables}
    plans = [p for p in layout.plans() if combinations or len(p.table_ids) == 1]
    plans.sort(key=lambda p: (len(p.table_ids), p.seats, p.table_ids))
    out = []
    for plan in plans:
        used = [tables[t] for t in plan.table_ids]
        largest = min(plan.seats, sum(t.effective_max_party for t in used))
        out.append((plan.table_ids, min(t.min_party for t in used), largest))
    return out


def run_first_fit(day: Day, combinations: bool) -> int:
    orders = {id(c): _first_fit_order(c, combinations) for c in (day.config, day.config_after)
              if c is not None}
    held: dict[str, list[Window]] = {}
    covers = 0
    for ask in asks(day):
        window = ask.window
        for tables, smallest, largest in orders[id(day.config_for(ask.index))]:
            if not smallest <= ask.party <= largest:
                continue
            if all(
                not (w.start < window.blocked_until and window.start < w.blocked_until)
                for tid in tables
                for w in held.get(tid, ())
            ):
                for tid in tables:
                    held.setdefault(tid, []).append(window)
                covers += ask.party
                break
    return covers


# ---------------------------------------------------------------------------------------
# The two limits: integer programs over (request, minimal plan) pairs


def _minimal_plans(layout: Layout, party: int) -> list[tuple[str, ...]]:
    """Plans that fit ``party`` with no fitting strict subset: a superset never seats a
    party its subset could not, and only takes more tables."""
    return [p.table_ids for p in layout.minimal_plans_for(party)]


def _solve(
    items: list[tuple[int, Window, list[tuple[str, ...]]]],
    must: list[bool],
    time_limit: float,
) -> tuple[list[tuple[str, ...] | None] | None, float, bool, float]:
    """Max covers of the optional items with every ``must`` item seated.

    ``items``: (party, window, allowed plans). Variables x[i, p]; rows: each item at most
    (``must``: exactly) one plan; for each table and each item start s, the items whose
    blocked window holds s use that table at most once (intervals that overlap share some
    start point). Returns (plan per item or None, bound, proved, seconds); the plans are
    None when no solution was found (infeasible, or out of time).
    """
    var_item: list[int] = []
    var_plan: list[tuple[str, ...]] = []
    for i, (_, _, plans) in enumerate(items):
        for plan in plans:
            var_item.append(i)
            var_plan.append(plan)
    n_vars = len(var_plan)
    if n_vars == 0:
        feasible = not any(must)
        return ([None] * len(items) if feasible else None), 0.0, True, 0.0
    weights = np.array([0.0 if must[i] else -items[i][0] for i in var_item])

    vars_by_table_item: dict[str, dict[int, list[int]]] = {}
    for v, (i, plan) in enumerate(zip(var_item, var_plan, strict=True)):
        for tid in plan:
            vars_by_table_item.setdefault(tid, {}).setdefault(i, []).append(v)
    rows, cols = list(var_item), list(range(n_vars))
    lower = [1.0 if m else 0.0 for m in must]
    n_rows = len(items)
    for by_item in vars_by_table_item.values():
        seen: set[frozenset[int]] = set()
        members = sorted(by_item)
        for i in members:
            point = items[i][1].start
            clique = frozenset(
                o for o in members if items[o][1].start <= point < items[o][1].blocked_until
            )
            if len(clique) < 2 or clique in seen:
                continue
            seen.add(clique)
            for o in clique:
                for v in by_item[o]:
                    rows.append(n_rows)
                    cols.append(v)
            lower.append(0.0)
            n_rows += 1
    matrix = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_rows, n_vars)).tocsr()
    started = clock.perf_counter()
    res = milp(
        c=weights,
        constraints=LinearConstraint(matrix, np.array(lower), 1.0),
        integrality=np.ones(n_vars),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit, "disp": False},
    )
    seconds = clock.perf_counter() - started
    if res.x is None:
        return None, 0.0, res.status == 2, seconds  # status 2: proven infeasible
    chosen: list[tuple[str, ...] | None] = [None] * len(items)
    for v in np.flatnonzero(res.x > 0.5):
        chosen[var_item[v]] = var_plan[v]
    bound = -float(getattr(res, "mip_dual_bound", res.fun) or res.fun)
    return chosen, max(bound, -res.fun), res.status == 0, seconds


def optimum(day: Day) -> tuple[int, float, bool, float]:
    """Max covers over all assignments of requests to plans: (covers, bound, optimal, secs).
    Each request may use the plans of the layout in force when it was made."""
    items = [
        (a.party, a.window, _minimal_plans(Layout.from_config(day.config_for(a.index)), a.party))
        for a in asks(day)
    ]
    chosen, bound, proved, seconds = _solve(items, [False] * len(items), MILP_TIME_LIMIT_S)
    if chosen is None:
        raise RuntimeError("the optimum's MILP found no solution")
    covers = sum(items[i][0] for i, plan in enumerate(chosen) if plan is not None)
    return covers, max(bound, covers), proved, seconds


def ceiling(day: Day) -> tuple[int, int, float]:
    """First come, first served with perfect re-seating: (covers, undecided, seconds).

    A wide re-seating search answers most requests; when it finds nothing, an integer
    program decides whether the accepted bookings and this one fit together. Bookings that
    started by the decision keep their tables; the others may take any plan of the layout
    in force (or stay where they are, on a table since deactivated)."""
    accepted: dict[int, tuple[str, ...]] = {}  # position in asks -> tables
    todo = asks(day)
    covers = undecided = 0
    seconds = 0.0
    for pos, ask in enumerate(todo):
        layout = Layout.from_config(day.config_for(ask.index))
        now = day.decided_at(ask.request)
        seated = [Seated(str(p), todo[p].party, todo[p].window, tables)
                  for p, tables in accepted.items()]
        found = repack(layout, ask.party, ask.window, seated, started_by=now, **CEILING_SEARCH)
        if isinstance(found, Repack):
            for moved, tables in found.moves.items():
                accepted[int(moved)] = tables
            accepted[pos] = found.plan.table_ids
            covers += ask.party
            continue
        if found.reason != NO_CAPACITY:
            continue
        members = [*accepted, pos]
        items = []
        for p in members:
            current = accepted.get(p)
            if current is not None and todo[p].window.start <= now:
                plans = [current]
            else:
                plans = _minimal_plans(layout, todo[p].party)
                if current is not None and current not in plans:
                    plans.append(current)
            items.append((todo[p].party, todo[p].window, plans))
        chosen, _, proved, secs = _solve(items, [True] * len(items), FEASIBILITY_TIME_LIMIT_S)
        seconds += secs
        if chosen is None:
            undecided += not proved
            continue
        accepted = {p: plan for p, plan in zip(members, chosen, strict=True) if plan is not None}
        covers += ask.party
    return covers, undecided, seconds


# ---------------------------------------------------------------------------------------


def run_day(size: int, seed: int, kind: str = "standard", basis: str = "turns") -> DayResult:
    day = generate_day(size, seed, basis=basis, kind=kind)
    best, bound, optimal, seconds = optimum(day)
    started = clock.perf_counter()
    top, undecided, _ = ceiling(day)
    ceiling_seconds = clock.perf_counter() - started
    result = DayResult(
        size=size, seed=seed, kind=kind, demand=round(day.demand, 3),
        requested_covers=sum(a.party for a in asks(day)),
        seatflow=0, no_reseat=run_seatflow(day, reseat=False),
        tidy_moves=run_seatflow(day, reseat=True, tidy_moves=True),
        first_fit=run_first_fit(day, combinations=True),
        first_fit_single=run_first_fit(day, combinations=False),
        ceiling=top, ceiling_undecided=undecided,
        optimum=best, optimum_bound=round(bound, 2), optimal=optimal,
        milp_seconds=round(seconds, 2), ceiling_seconds=round(ceiling_seconds, 2),
        decisions=len(asks(day)),
    )
    gc.collect()
    gc.disable()  # as timeit does: a pause depends on the process's heap, not the decision
    try:
        result.seatflow = run_seatflow(day, reseat=True, result=result)
    finally:
        gc.enable()
    return result


def _percentile(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(results: list[DayResult]) -> dict[str, dict[str, dict]]:
    """Per kind, per size. Ratios are to the proven bound, so an unproven MILP never
    flatters us."""
    summary: dict[str, dict[str, dict]] = {}
    for kind in [k for k in KINDS if any(r.kind == k for r in results)]:
        summary[kind] = {}
        for size in sorted({r.size for r in results if r.kind == kind}):
            rows = [r for r in results if r.kind == kind and r.size == size]

            def mean(values: list[float]) -> float:
                return round(statistics.fmean(values), 4)

            to_opt = [r.seatflow / r.optimum_bound for r in rows]
            to_ceiling = [r.seatflow / r.ceiling if r.ceiling else 1.0 for r in rows]
            decision_ms = [ms for r in rows for ms in r.decision_ms]
            wall_ms = [ms for r in rows for ms in r.decision_wall_ms]
            reseat_ms = [ms for r in rows for ms in r.reseat_ms]
            moves = [m for r in rows for m in r.moves]
            s = {
                "days": len(rows),
                "mean_ratio": mean(to_opt),
                "min_ratio": round(min(to_opt), 4),
                "mean_ratio_to_ceiling": mean(to_ceiling),
                "min_ratio_to_ceiling": round(min(to_ceiling), 4),
                "no_reseat_mean_ratio": mean([r.no_reseat / r.optimum_bound for r in rows]),
                "tidy_moves_mean_ratio": mean([r.tidy_moves / r.optimum_bound for r in rows]),
                "ceiling_mean_ratio": mean([r.ceiling / r.optimum_bound for r in rows]),
                "first_fit_mean_ratio": mean([r.first_fit / r.optimum_bound for r in rows]),
                "first_fit_single_mean_ratio": mean(
                    [r.first_fit_single / r.optimum_bound for r in rows]
                ),
                "days_below_first_fit": sum(r.seatflow < r.first_fit for r in rows),
                "days_below_first_fit_single": sum(r.seatflow < r.first_fit_single for r in rows),
                "days_milp_unproven": sum(not r.optimal for r in rows),
                "ceiling_undecided": sum(r.ceiling_undecided for r in rows),
                "decisions": len(decision_ms),
                "decision_p50_ms": round(_percentile(decision_ms, 0.50), 3),
                "decision_p99_ms": round(_percentile(decision_ms, 0.99), 3),
                "decision_max_ms": round(max(decision_ms, default=0.0), 3),
                "decision_wall_p99_ms": round(_percentile(wall_ms, 0.99), 3),
                "reseat_searches": len(reseat_ms),
                "reseat_p99_ms": round(_percentile(reseat_ms, 0.99), 3),
                "reseat_successes": len(moves),
                "mean_moves": round(statistics.fmean(moves), 2) if moves else 0.0,
                "max_moves": max(moves, default=0),
            }
            if kind == "standard":
                against_ceiling = size in CEILING_TARGET_SIZES
                s["target"] = (
                    f"mean >= {TARGET_MEAN_RATIO:.0%} of the "
                    + ("arrival-order ceiling" if against_ceiling else "optimum")
                    + ", no day below first-fit"
                )
                s["meets_target"] = (
                    (s["mean_ratio_to_ceiling"] if against_ceiling else s["mean_ratio"])
                    >= TARGET_MEAN_RATIO
                    and s["days_below_first_fit"] == 0
                )
            summary[kind][str(size)] = s
    return summary


def _chart(results: list[DayResult], summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r.size for r in results if r.kind == "standard"})
    kinds = list(summary)
    all_sizes = sorted({int(s) for k in summary.values() for s in k})
    fig = plt.figure(figsize=(5 * max(len(sizes), 3), 9))
    grid = fig.add_gridspec(2, max(len(sizes), 3) * 2)
    lines = (
        ("seatflow", "o-", "seatflow (re-seating)"),
        ("no_reseat", ".:", "without re-seating"),
        ("tidy_moves", "+-", "with tidy moves (opt-in)"),
        ("ceiling", "k_", "arrival-order ceiling"),
        ("first_fit", "s--", "first-fit (tables + combinations)"),
        ("first_fit_single", "x--", "first-fit, single tables"),
    )
    first = None
    for col, size in enumerate(sizes):
        ax = fig.add_subplot(grid[0, 2 * col:2 * col + 2], sharey=first)
        first = first or ax
        rows = sorted((r for r in results if r.size == size and r.kind == "standard"),
                      key=lambda r: r.demand)
        x = [r.demand * 100 for r in rows]
        for name, style, label in lines:
            ax.plot(x, [getattr(r, name) / r.optimum_bound for r in rows], style, label=label)
        ax.axhline(TARGET_MEAN_RATIO, color="grey", lw=0.8, ls=":", label="97 %")
        ax.set_title(f"standard days, {size} tables")
        ax.set_xlabel("demand, % of two dinner turns")
        ax.grid(alpha=0.3)
    if first is not None:
        first.set_ylabel("covers / offline optimum")
        first.legend(loc="lower left", fontsize=7)

    half = max(len(sizes), 3)
    ax_q = fig.add_subplot(grid[1, :half])
    ax_c = fig.add_subplot(grid[1, half:])
    width = 0.8 / max(len(all_sizes), 1)
    for j, size in enumerate(all_sizes):
        xs = [i + (j - (len(all_sizes) - 1) / 2) * width for i in range(len(kinds))]
        cells = [summary[k].get(str(size)) for k in kinds]
        ax_q.bar(xs, [c["mean_ratio"] if c else 0 for c in cells], width,
                 label=f"{size} tables: seatflow")
        ax_q.scatter(xs, [c["ceiling_mean_ratio"] if c else np.nan for c in cells],
                     marker="_", s=200, color="k", zorder=3,
                     label="arrival-order ceiling" if j == 0 else None)
        ax_q.scatter(xs, [c["first_fit_mean_ratio"] if c else np.nan for c in cells],
                     marker="v", color="red", zorder=3,
                     label="first-fit (combinations)" if j == 0 else None)
        ax_c.bar(xs, [c["decision_p99_ms"] if c else 0 for c in cells], width,
                 label=f"{size} tables: p99")
        ax_c.scatter(xs, [c["decision_p50_ms"] if c else np.nan for c in cells],
                     marker="o", color="k", s=12, zorder=3, label="p50" if j == 0 else None)
    for ax in (ax_q, ax_c):
        ax.set_xticks(range(len(kinds)), [k.replace("_", " ") for k in kinds])
        ax.grid(alpha=0.3, axis="y")
    ax_q.set_ylim(0.6, 1.01)
    ax_q.set_ylabel("mean covers / offline optimum")
    ax_q.set_title("quality by kind of day")
    ax_q.legend(fontsize=7, loc="lower left")
    ax_c.axhline(5.0, color="red", lw=0.8, ls=":", label="5 ms")
    ax_c.set_ylabel("CPU ms per decision (allocation + re-seating)")
    ax_c.set_title("cost by kind of day")
    ax_c.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12, help="seeded standard days per size")
    parser.add_argument("--hard-days", type=int, default=6,
                        help="seeded days per size of every other kind")
    parser.add_argument("--sizes", default="10,30,60")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--basis",
        choices=("turns", "seat_minutes"),
        default="turns",
        help="what 100%% demand means (see bench.daygen.generate_day); seat_minutes = stress",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [k for k in args.kinds.split(",") if k]
    for kind in kinds:
        if kind not in KINDS:
            parser.error(f"--kinds: unknown kind {kind!r}; one of {', '.join(KINDS)}")

    before = calibration()
    results = []
    for kind in kinds:
        days = args.days if kind == "standard" else args.hard_days
        for size in sizes:
            for seed in range(days):
                results.append(run_day(size, seed, kind, args.basis))
    summary = summarise(results)
    after = calibration()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "allocation_quality",
        "code": code_version(),
        "demand_basis": args.basis,
        "target": {
            "mean_ratio": TARGET_MEAN_RATIO,
            "against_ceiling_at_sizes": list(CEILING_TARGET_SIZES),
            "days_below_first_fit": 0,
            "kind": "standard",
        },
        "calibration_s": {"before": before, "after": after},
        "load_average": list(os.getloadavg()),
        "summary": summary,
        "days": [_as_dict(r) for r in results],
    }
    stem = "allocation_quality" + ("" if args.basis == "turns" else f"_{args.basis}")
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    _chart(results, summary, RESULTS_DIR / f"{stem}.png")
    print_summary(summary)
    print(f"calibration loop: {before} s before, {after} s after (about 0.15 s on an idle core)")
    print(f"wrote {RESULTS_DIR / stem}.json and .png")
    return payload


def print_summary(summary: dict) -> None:
    print(
        f"{'kind':<14} {'tables':>6} {'days':>4} {'seatflow':>8} {'min':>6} {'/ceil':>6} "
        f"{'ceiling':>7} {'no-rs':>6} {'tidy':>6} {'ff':>6} {'ff-1':>6} {'<ff':>3} {'p50ms':>6} "
        f"{'p99ms':>6} {'maxms':>6} {'moves':>5}  target"
    )
    for kind, by_size in summary.items():
        for size, s in by_size.items():
            target = ""
            if "meets_target" in s:
                target = ("met" if s["meets_target"] else "NOT met") + f" ({s['target']})"
            print(
                f"{kind:<14} {size:>6} {s['days']:>4} {s['mean_ratio']:>8.2%} "
                f"{s['min_ratio']:>6.1%} {s['mean_ratio_to_ceiling']:>6.1%} "
                f"{s['ceiling_mean_ratio']:>7.2%} {s['no_reseat_mean_ratio']:>6.1%} "
                f"{s['tidy_moves_mean_ratio']:>6.1%} "
                f"{s['first_fit_mean_ratio']:>6.1%} {s['first_fit_single_mean_ratio']:>6.1%} "
                f"{s['days_below_first_fit']:>3} {s['decision_p50_ms']:>6.2f} "
                f"{s['decision_p99_ms']:>6.2f} {s['decision_max_ms']:>6.2f} "
                f"{s['max_moves']:>5}  {target}"
            )


def _as_dict(result: DayResult) -> dict:
    out = {name: getattr(result, name) for name in DayResult.__dataclass_fields__}
    for name in ("decision_ms", "decision_wall_ms", "reseat_ms"):
        samples = out.pop(name)
        out[name.replace("_ms", "_p50_ms")] = round(_percentile(samples, 0.5), 3)
        out[name.replace("_ms", "_p99_ms")] = round(_percentile(samples, 0.99), 3)
        out[name.replace("_ms", "_max_ms")] = round(max(samples, default=0.0), 3)
    return out


if __name__ == "__main__":
    main()
