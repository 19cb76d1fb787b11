"""The pipeline benchmark's charts: throughput vs the relay, latency over time and its CDF,
and the flame chart of the profile."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.pipeline.config import TARGET_P99_MS, TARGET_RELAY_SHARE
from bench.pipeline.latency import LatencyRun
from bench.pipeline.profiler import library


def charts(result: dict[str, Any], latency_runs: list[LatencyRun], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tp, base = result["throughput"], result["baselines"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ours = [r["changes_per_s"] for r in tp["runs"]]
    faust = [r["per_s"] for r in base["faust_relay"]]
    relay = [r["per_s"] for r in base["raw_relay"]]
    series = (ours, faust, relay)
    ax.bar([0, 1, 2], [statistics.median(v) for v in series],
           color=["#e4572e", "#f3a712", "#29335c"], alpha=0.8)
    for x, values in enumerate(series):
        ax.scatter([x] * len(values), values, color="black", zorder=3, s=12,
                   label="single runs" if x == 0 else None)
    ax.axhline(TARGET_RELAY_SHARE * statistics.median(relay), color="grey", ls=":",
               label=f"target: {TARGET_RELAY_SHARE:.0%} of the raw relay")
    ax.set_xticks([0, 1, 2], ["seatflow worker\n(changes fully processed)",
                              "trivial Faust relay", "raw aiokafka relay"])
    ax.set_yscale("log")
    ax.set_ylabel("messages per second (log)")
    ax.set_title(f"Throughput, {tp['runs'][0]['events']} changes, median of {len(ours)}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pipeline_throughput.png", dpi=120)
    plt.close(fig)

    if not latency_runs:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for run in latency_runs:
        label = f"{run.offered_rate}/s"
        left.scatter([t for t, _ in run.samples], [v for _, v in run.samples], s=1, alpha=0.4,
                     label=label)
        ordered = sorted(v for _, v in run.samples)
        # Unconfirmed bookings keep the CDF below 1: they are part of the population.
        right.plot(ordered, [(k + 1) / run.counted for k in range(len(ordered))], label=label)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, markerscale=8)
    left.axhline(TARGET_P99_MS, color="grey", ls=":")
    left.set_xlabel("seconds into the load")
    left.set_ylabel("change sent -> booking.confirmed sent (ms)")
    left.set_yscale("log")
    right.axvline(TARGET_P99_MS, color="grey", ls=":")
    right.axhline(0.99, color="grey", ls=":")
    right.set_xscale("log")
    right.set_xlabel("latency (ms); dotted: the p99 <= 250 ms target")
    right.set_ylabel("share of bookings confirmed")
    right.set_title("Latency CDF by offered load (creates/s)")
    fig.tight_layout()
    fig.savefig(out / "pipeline_latency.png", dpi=120)
    plt.close(fig)


def flame_chart(stacks: list[tuple[list[str], int]], path: Path, max_depth: int = 70) -> None:
    """An icicle flame chart (root at the top) of the collapsed stacks, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tree: dict[str, Any] = {"n": 0, "kids": {}}
    for frames, count in stacks:
        node = tree
        node["n"] += count
        for f in frames[:max_depth]:
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += count
    total = tree["n"] or 1
    depth_seen = 0
    rects: list[tuple[float, int, float, str]] = []

    def walk(node: dict[str, Any], x: float, depth: int) -> None:
        nonlocal depth_seen
        for name, kid in sorted(node["kids"].items()):
            width = kid["n"] / total
            if width >= 0.002:
                rects.append((x, depth, width, name))
                depth_seen = max(depth_seen, depth)
                walk(kid, x, depth + 1)
            x += width

    walk(tree, 0.0, 0)
    fig, ax = plt.subplots(figsize=(18, max(6, 0.22 * (depth_seen + 2))))
    palette = {"seatflow (own code)": "#e4572e"}
    for x, depth, width, name in rects:
        lib = library(name)
        color = palette.get(lib, "#f3a712" if lib.startswith("stdlib") else "#76b041")
        ax.add_patch(plt.Rectangle((x, depth), width, 0.95, color=color, ec="white", lw=0.3))
        if width > 0.025:
            label = (name.split(": ", 1)[-1] if name.startswith("thread (")
                     else name[: name.rfind(" (")] if " (" in name else name)
            chars = int(width * 230)
            ax.text(x + 0.002, depth + 0.45, label[:chars], fontsize=6, va="center")
    ax.set_xlim(0, 1)
    ax.set_ylim(depth_seen + 1, 0)
    ax.set_xlabel("share of on-CPU samples (red: seatflow's own code, yellow: stdlib, "
                  "green: libraries)")
    ax.set_yticks([])
    ax.set_title(f"seatflow worker during the throughput run: {total} py-spy samples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
