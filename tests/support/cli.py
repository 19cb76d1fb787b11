"""Running the `seatflow` command as a person would: a subprocess configured through its
environment (`settings_env`), its exit code, stdout and stderr."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass

from config.settings import Settings
from tests.support.workers import REPO_ROOT, SEATFLOW_BIN, settings_env


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def last_line(self) -> str:
        lines = self.out.strip().splitlines()
        return lines[-1] if lines else ""

    def __str__(self) -> str:  # what an assertion shows
        return f"exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    return {**settings_env(settings), **extra}


def seatflow(settings: Settings, *args: str, timeout: float = 60.0, **env: str) -> Run:
    """`seatflow ARGS…` to completion (TimeoutExpired after `timeout`)."""
    done = subprocess.run(
        [str(SEATFLOW_BIN), *args], env=env_for(settings, **env), capture_output=True,
        text=True, timeout=timeout, cwd=REPO_ROOT, check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


async def seatflow_async(settings: Settings, *args: str, timeout: float = 60.0,
                         **env: str) -> Run:
    """`seatflow` from a test's event loop, without blocking it."""
    return await asyncio.to_thread(seatflow, settings, *args, timeout=timeout, **env)
