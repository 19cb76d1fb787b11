"""CPU seconds of the worker, PostgreSQL (postmaster and backends) and the broker: on a shared
machine the rate moves with whatever else runs, CPU per change much less."""

from __future__ import annotations

import psutil

from tests.support.stack import Stack


def _cpu_seconds(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


class CpuMeter:
    """CPU seconds used by the worker, PostgreSQL (postmaster and backends) and the broker."""

    def __init__(self, stack: Stack, worker_pid: int) -> None:
        self.stack = stack
        self.worker_pid = worker_pid
        self.start = self.sample()

    def _postgres(self) -> float:
        pid = self.stack.postgres.postmaster_pid
        if pid is None:
            return 0.0
        try:
            main = psutil.Process(pid)
            # Backends and autovacuum workers come and go: those the postmaster has reaped
            # are in its children_* times, the live ones are counted one by one.
            own = main.cpu_times()
            return (own.user + own.system + own.children_user + own.children_system
                    + sum(_cpu_seconds(c) for c in main.children()))
        except psutil.Error:
            return 0.0

    def sample(self) -> dict[str, float]:
        return {
            "worker": _cpu_seconds(psutil.Process(self.worker_pid)),
            "postgres": self._postgres(),
            "broker": _cpu_seconds(psutil.Process(self.stack.broker.process.pid)),
        }

    def used(self) -> dict[str, float]:
        now = self.sample()
        return {k: round(max(0.0, now[k] - self.start.get(k, 0.0)), 2) for k in now}
