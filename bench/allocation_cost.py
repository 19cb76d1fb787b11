"""Allocation cost: time per decision as tables and the day's bookings grow.

For each (tables, bookings that day) cell: a generated restaurant (bench.daygen), that many
confirmed ranges on its tables across 12:00-24:00, and DECISIONS timed ``allocate`` calls
for random dinner requests. Each call is handed the whole list of ranges, as the service
does (it loads the day's confirmed bookings and asks once). The layout (candidate plans)
is built once per restaurant and reported separately.

Run: ``.venv/bin/python -m bench.allocation_cost``.
Writes bench/results/allocation_cost.{json,png}. Target: p99 <= 5 ms at 60 tables x 400.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time as clock
from datetime import datetime, time, timedelta
from pathlib import Path

from bench.daygen import BENCH_DATE, generate_restaurant
from domain.allocation import AllocationFailure, Layout, Occupied, allocate, booking_window

RESULTS_DIR = Path(__file__).parent / "results"
TABLES = (10, 30, 60, 100, 200)
BOOKINGS = (50, 100, 200, 400, 1000, 2000)
DECISIONS = 400
TARGET = {"tables": 60, "bookings": 400, "p99_ms": 5.0}


def _ranges(table_ids: list[str], count: int, rng: random.Random) -> list[Occupied]:
    day_start = datetime.combine(BENCH_DATE, time(12, 0))
    out = []
    for _ in range(count):
        start = day_start + timedelta(minutes=15 * rng.randrange(0, 44))
        out.append(
            Occupied(rng.choice(table_ids), start, start + timedelta(minutes=rng.choice((65, 80, 90))))
        )
    return out


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(n_tables: int, n_bookings: int, decisions: int, seed: int = 0) -> dict:
    rng = random.Random(f"cost:{n_tables}:{n_bookings}:{seed}")
    cfg = generate_restaurant(n_tables, rng)
    built = clock.perf_counter()
    layout = Layout.from_config(cfg)
    build_ms = (clock.perf_counter() - built) * 1000
    ranges = _ranges([t.table_id for t in cfg.tables], n_bookings, rng)

    samples, confirmed = [], 0
    for _ in range(decisions):
        party = rng.choice((1, 2, 2, 2, 3, 4, 4, 5, 6, 8))
        start = time(17 + rng.randrange(0, 4), 15 * rng.randrange(0, 4))
        window = booking_window(cfg, BENCH_DATE, start, None, party)
        assert not isinstance(window, AllocationFailure)
        t0 = clock.perf_counter()
        result = allocate(layout, party, window, ranges)
        samples.append((clock.perf_counter() - t0) * 1000)
        confirmed += not isinstance(result, AllocationFailure)
    return {
        "tables": n_tables,
        "bookings": n_bookings,
        "plans": len(layout.plans()),
        "layout_build_ms": round(build_ms, 2),
        "median_ms": round(statistics.median(samples), 4),
        "p99_ms": round(_percentile(samples, 0.99), 4),
        "max_ms": round(max(samples), 4),
        "confirmed_share": round(confirmed / decisions, 3),
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
        ax.set_xlabel("confirmed bookings that day")
        ax.set_title(f"allocate(): {title} ms per decision")
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
    args = parser.parse_args(argv)

    cells = [measure(t, b, args.decisions) for t in TABLES for b in BOOKINGS]
    target_cell = next(
        c for c in cells if c["tables"] == TARGET["tables"] and c["bookings"] == TARGET["bookings"]
    )
    payload = {
        "benchmark": "allocation_cost",
        "target": TARGET,
        "target_met": target_cell["p99_ms"] <= TARGET["p99_ms"],
        "cells": cells,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "allocation_cost.json").write_text(json.dumps(payload, indent=2))
    _chart(cells, RESULTS_DIR / "allocation_cost.png")

    print(f"{'tables':>6} {'plans':>6} {'build ms':>8} " + " ".join(f"{b:>11}" for b in BOOKINGS))
    print(f"{'':>22} " + " ".join(f"{'med/p99 ms':>11}" for _ in BOOKINGS))
    for n_tables in TABLES:
        row = [c for c in cells if c["tables"] == n_tables]
        print(
            f"{n_tables:>6} {row[0]['plans']:>6} {row[0]['layout_build_ms']:>8.1f} "
            + " ".join(f"{c['median_ms']:>5.2f}/{c['p99_ms']:<5.2f}" for c in row)
        )
    print(
        f"target p99 <= {TARGET['p99_ms']} ms at {TARGET['tables']} tables x "
        f"{TARGET['bookings']} bookings: {target_cell['p99_ms']:.3f} ms -> "
        f"{'met' if payload['target_met'] else 'NOT met'}"
    )
    print(f"wrote {RESULTS_DIR / 'allocation_cost.json'} and .png")
    return payload


if __name__ == "__main__":
    main()
