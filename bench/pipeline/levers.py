"""Measure one performance lever: throughput runs of two worker variants, alternated A B B A
on one stack, so the machine's drift hits both alike; optionally a latency run each.

    python -m bench.pipeline.levers --name uvloop \\
        --a-env SEATFLOW_EVENT_LOOP=asyncio --b-env SEATFLOW_EVENT_LOOP=uvloop
    python -m bench.pipeline.levers --name orjson --a-code /path/to/tree-without-it

A variant is the worker's environment (`--a-env/--b-env NAME=VALUE`, repeatable) and the
code it runs (`--a-code/--b-code DIR`: put first on the worker's PYTHONPATH; default: this
tree). The result (per pair: changes/s and worker CPU ms per change; the median ratio B/A)
is appended to bench/results/levers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import replace
from typing import Any

from bench.pipeline.config import FULL, RESULTS_DIR
from bench.pipeline.latency import latency_run
from bench.pipeline.profiler import load_stacks, summarise_profile
from bench.pipeline.run import code_version
from bench.pipeline.throughput import throughput_run
from bench.pipeline.workload import build_template, make_restaurants
from tests.support.stack import running_stack

LEVERS_FILE = RESULTS_DIR / "levers.json"


class _Variant:
    """Sets the worker's environment (and PYTHONPATH) while one side runs."""

    def __init__(self, env: list[str], code: str | None) -> None:
        self.env = dict(item.split("=", 1) for item in env)
        if code:
            self.env["PYTHONPATH"] = os.pathsep.join(
                [code, *filter(None, [os.environ.get("PYTHONPATH")])])
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for name, value in self.env.items():
            self._saved[name] = os.environ.get(name)
            os.environ[name] = value

    def __exit__(self, *exc: object) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    cfg = replace(FULL, events=args.events, profile=False)
    sides = {"A": _Variant(args.a_env, args.a_code), "B": _Variant(args.b_env, args.b_code)}
    pairs: list[dict[str, Any]] = []
    with running_stack(prefix="sflever-") as stack:
        restaurants = make_restaurants(cfg)
        template = await build_template(stack, restaurants, cfg)
        for i in range(args.pairs):
            pair: dict[str, Any] = {}
            # A B, then B A, ...: the side run second in a pair ran slower in both series of
            # the gc lever (the machine warms up within a pair), so the order alternates.
            order = list(sides.items())
            if i % 2:
                order.reverse()
            pair["first"] = order[0][0]
            for name, side in order:
                # --profile: py-spy samples side B's last run.
                spy = (RESULTS_DIR / f"levers_{args.name}_profile.txt"
                       if args.profile and name == "B" and i == args.pairs - 1 else None)
                with side:
                    run = await throughput_run(stack, template, restaurants, cfg, i, cfg.events,
                                               profile_to=spy)
                    pair[name] = {"changes_per_s": run.changes_per_s,
                                  "worker_cpu_ms_per_change": run.cpu_ms_per_change["worker"],
                                  "load_average": run.load_average}
                    if args.latency_rate:
                        lat = await latency_run(stack, template, restaurants,
                                                replace(cfg, latency_seconds=10.0),
                                                args.latency_rate, i)
                        pair[name].update(latency_p50_ms=lat.p50_ms, latency_p99_ms=lat.p99_ms,
                                          latency_worker=lat.worker)
                print(f"  pair {i + 1}/{args.pairs} {name}: {pair[name]}", flush=True)
            pairs.append(pair)

    profile = None
    raw = RESULTS_DIR / f"levers_{args.name}_profile.txt"
    if args.profile and raw.exists():
        profile = {"side": "B", "collapsed_stacks": raw.name,
                   **summarise_profile(load_stacks(raw))}

    def ratio(field: str) -> float:
        return round(statistics.median(p["B"][field] / p["A"][field] for p in pairs), 3)

    return {
        "lever": args.name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code": code_version(),
        "A": {"env": args.a_env, "code": args.a_code or "this tree"},
        "B": {"env": args.b_env, "code": args.b_code or "this tree"},
        "events_per_run": cfg.events,
        "pairs": pairs,
        "median_ratio_b_over_a": {"changes_per_s": ratio("changes_per_s"),
                                  "worker_cpu_ms_per_change": ratio("worker_cpu_ms_per_change")},
        "note": args.note,
        "profile": profile,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline.levers",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--a-code", help="a tree to run side A's worker from")
    parser.add_argument("--b-code", help="a tree to run side B's worker from")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--latency-rate", type=int, default=0,
                        help="also a 10 s latency run per side at this rate")
    parser.add_argument("--note", default="")
    parser.add_argument("--profile", action="store_true", help="py-spy on side B's last run")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args))
    history = json.loads(LEVERS_FILE.read_text()) if LEVERS_FILE.exists() else []
    history.append(result)
    LEVERS_FILE.write_text(json.dumps(history, indent=2))
    print(json.dumps({k: result[k] for k in ("lever", "median_ratio_b_over_a")}))
    if result["profile"]:
        for key in ("self_by_package", "own_self", "innermost_own_frame"):
            print(key)
            for row in result["profile"][key][:18]:
                print(f"  {row['share']:>6.1%}  {row['function']}")
    return result


if __name__ == "__main__":
    main()

