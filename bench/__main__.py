"""`make bench` / `python -m bench [--quick]`: every benchmark, then one combined table.

Runs, in order: the end-to-end pipeline (bench.pipeline), allocation quality
(bench.allocation_quality) and allocation cost (bench.allocation_cost), each if importable.
A benchmark that fails is reported and the others still run; the exit code is 1 then.

--quick is a smoke run (about a minute or two): smaller sizes, and every result goes to
bench/results/quick/ so the committed full results are not overwritten.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import pipeline

# Arguments for each benchmark's main(argv); always explicit, so none of them parses our
# own command line. Quick sizes keep a smoke run short.
FULL_ARGS: dict[str, list[str]] = {
    "bench.allocation_quality": [],
    "bench.allocation_cost": [],
}
QUICK_ARGS: dict[str, list[str]] = {
    "bench.allocation_quality": ["--days", "2", "--hard-days", "1", "--sizes", "10,30"],
    "bench.allocation_cost": ["--decisions", "40", "--tables", "10,30,60"],
}


def _run(name: str, fn: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any] | None, float]:
    print(f"\n=== {name} ===", flush=True)
    t0 = time.monotonic()
    try:
        return fn(), time.monotonic() - t0
    except Exception:  # noqa: BLE001 - report and go on with the other benchmarks
        traceback.print_exc()
        return None, time.monotonic() - t0


def _other(module_name: str, argv: list[str], out: Path | None) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        module = importlib.import_module(module_name)
        if out is not None and hasattr(module, "RESULTS_DIR"):
            module.RESULTS_DIR = out  # a smoke run must not overwrite the full results
        return module.main(argv)

    return run


def _pipeline_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    tp, base = r["throughput"], r["baselines"]
    rows = [
        ("pipeline: changes fully processed /s", f"{tp['median_changes_per_s']:,.0f}", ""),
        ("pipeline: raw aiokafka relay records/s", f"{base['median_raw_relay_per_s']:,.0f}", ""),
        ("pipeline: trivial Faust relay records/s", f"{base['median_faust_relay_per_s']:,.0f}",
         ""),
        ("pipeline: worker CPU per change, in Faust relay records",
         f"{base['worker_cpu_per_change_in_faust_relay_records']:.1f}", ""),
    ]
    for t in r["targets"]:
        rows.append((f"pipeline: {t['target']}", f"{t['value']}",
                     f"{t['goal']} " + ("met" if t["met"] else "NOT met")))
    return rows


def _quality_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Headline: the service as it runs by default (re-seating on), against the offline
    optimum, with the arrival-order ceiling and first-fit beside it; then each harder
    kind of day, with the cost of a decision."""
    rows = []
    for kind, by_size in r.get("summary", {}).items():
        for size, s in by_size.items():
            label = (f"allocation quality: {kind.replace('_', ' ')} days, {size} tables, "
                     f"mean/optimum (ceiling {s['ceiling_mean_ratio']:.1%}, first-fit "
                     f"{s['first_fit_mean_ratio']:.1%}, p99 {s['decision_p99_ms']:.1f} ms)")
            target = ""
            if "meets_target" in s:
                target = ("met" if s["meets_target"] else "NOT met") + f": {s['target']}"
                if size in {str(n) for n in r.get("target", {}).get("against_ceiling_at_sizes", [])}:
                    target += f" ({s['mean_ratio_to_ceiling']:.1%} of it)"
            elif s.get("days_below_first_fit"):
                target = f"{s['days_below_first_fit']} day(s) below first-fit"
            rows.append((label, f"{s['mean_ratio']:.1%}", target))
    return rows


def _cost_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    target = r.get("target", {})
    rows = []
    for c in r.get("cells", []):
        is_target = (c.get("tables"), c.get("bookings_asked")) == (target.get("tables"),
                                                                   target.get("bookings"))
        if is_target or (c.get("tables"), c.get("bookings_asked")) == (200, 2000):
            rows.append((
                f"allocation cost: p99 ms per decision (re-seating on), {c['tables']} tables "
                f"x {c['bookings']} bookings",
                f"{c['p99_ms']:.2f}",
                (f"<= {target.get('p99_ms')} " + ("met" if r.get("target_met") else "NOT met"))
                if is_target else "reported",
            ))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every seatflow benchmark.")
    parser.add_argument("--quick", action="store_true", help="smoke run, results in results/quick")
    args = parser.parse_args(argv)
    out = pipeline.QUICK_RESULTS_DIR if args.quick else None
    other_args = QUICK_ARGS if args.quick else FULL_ARGS

    benchmarks: list[tuple[str, Callable[[], dict[str, Any]], Callable[..., list]]] = [
        ("pipeline", lambda: pipeline.main(["--quick"] if args.quick else []), _pipeline_rows),
    ]
    for module_name, rows in (("bench.allocation_quality", _quality_rows),
                              ("bench.allocation_cost", _cost_rows)):
        if importlib.util.find_spec(module_name) is None:
            print(f"{module_name}: not present, skipped")
            continue
        benchmarks.append((module_name.split(".")[-1],
                           _other(module_name, other_args[module_name], out), rows))

    table: list[tuple[str, str, str]] = []
    failed = []
    for name, run, rows in benchmarks:
        result, seconds = _run(name, run)
        if result is None:
            failed.append(name)
            table.append((f"{name}: FAILED (see above)", "", ""))
            continue
        try:
            table += rows(result)
        except (KeyError, TypeError) as exc:  # another benchmark changed its result shape
            table.append((f"{name}: finished, summary unreadable ({exc!r})", "", ""))
        table.append((f"{name}: took", f"{seconds:.0f} s", ""))

    print("\n=== summary" + (" (quick smoke run)" if args.quick else "") + " ===")
    width = max(len(r[0]) for r in table)
    for label, value, target in table:
        print(f"{label:<{width}}  {value:>10}  {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
