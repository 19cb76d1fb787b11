"""4. Profile: py-spy samples the worker during the last throughput run (`--nonblocking`, so
the run still counts); the collapsed stacks are summarised (self time by package, seatflow's
own functions, and who pays: the innermost own frame of each sample)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.pipeline.config import OWN_PACKAGES

PY_SPY_BIN = Path(sys.executable).with_name("py-spy")


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    if not PY_SPY_BIN.exists():
        raise RuntimeError(f"py-spy not installed ({PY_SPY_BIN}); `pip install py-spy`")
    out.parent.mkdir(parents=True, exist_ok=True)
    # On-CPU samples only (idle event-loop waits are left out), aggregated per function.
    return subprocess.Popen(
        [str(PY_SPY_BIN), "record", "--pid", str(pid), "--rate", "100", "--function", "--threads",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def stop_profiler(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(5)


def _frame_file(frame: str) -> str:
    # py-spy raw frames read "function (package/module.py:line)", paths shortened.
    return frame[frame.rfind("(") + 1 : frame.rfind(":")] if frame.endswith(")") else ""


def _package(frame: str) -> str:
    path = _frame_file(frame)
    top = path.split("/", 1)[0].removesuffix(".py")
    return top if path.endswith(".py") else "<script>"


def _is_own(frame: str) -> bool:
    return _package(frame) in OWN_PACKAGES


def library(frame: str) -> str:
    """Whose code a frame is: seatflow's own, a stdlib module, or a library (the flame
    chart's colours and the self-time-by-package table)."""
    pkg = _package(frame)
    if pkg in OWN_PACKAGES:
        return "seatflow (own code)"
    if pkg in sys.stdlib_module_names:
        return f"stdlib {pkg}"
    return pkg


def _label(frame: str) -> str:
    name = frame[: frame.rfind(" (")] if " (" in frame else frame
    return f"{_frame_file(frame)}:{name}" if _is_own(frame) else f"{name} [{_package(frame)}]"


def _task_entry(frames: list[str]) -> str:
    """The coroutine the event loop was running: the frame after the last Handle._run."""
    for i in range(len(frames) - 1, -1, -1):
        if frames[i].startswith("Handle._run ") and i + 1 < len(frames):
            return _label(frames[i + 1])
    return "none, in " + _label(frames[-1])  # the loop itself: polling, scheduling


def load_stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        body, _, count = line.rpartition(" ")
        if body and count.isdigit():
            stacks.append((body.split(";"), int(count)))
    return stacks


def summarise_profile(stacks: list[tuple[list[str], int]], top: int = 25) -> dict[str, Any]:
    """Shares of on-CPU samples: self time by package, seatflow's own functions inclusive
    and self, and who pays: the innermost own frame of each sample (else the task it ran)."""
    total = sum(c for _, c in stacks) or 1
    inclusive: Counter[str] = Counter()
    self_own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    payer: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    for frames, count in stacks:
        if frames[0].startswith("thread ("):  # py-spy --threads: "thread (tid): name"
            by_thread[frames[0].split(": ", 1)[-1]] += count
            frames = frames[1:] or frames
        for label in {_label(f) for f in frames if _is_own(f)}:
            inclusive[label] += count
        leaf = frames[-1]
        by_package[library(leaf)] += count
        if _is_own(leaf):
            self_own[_label(leaf)] += count
        own = [f for f in frames if _is_own(f)]
        payer[_label(own[-1]) if own else "no own frame, task: " + _task_entry(frames)] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": k, "samples": v, "share": round(v / total, 4)}
                for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "by_thread": share(by_thread),
        "self_by_package": share(by_package),
        "own_inclusive": share(inclusive),
        "own_self": share(self_own),
        "innermost_own_frame": share(payer),
    }
