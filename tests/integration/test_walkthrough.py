"""The README's "Try it" walkthrough, command for command, against the embedded stack: a worker
with the contract's default timings and the sample restaurant, as `make run` has them. The
commands run in a shell in a folder whose `.seatflow/mail` is the stack's mail sink; each
must print what the README shows (tests/support/walkthrough.py says what may differ), so the
walkthrough cannot rot."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from producers.restaurants import load_file, publish_configs
from seatflow.cli import SAMPLE_RESTAURANT
from tests.support.cli import env_for
from tests.support.walkthrough import Matcher, Step, readme_steps
from tests.support.workers import REPO_ROOT, SEATFLOW_BIN, WorkerProcess

pytestmark = pytest.mark.integration

README = REPO_ROOT / "README.md"
# How long a read-only command is repeated until it shows what the README shows.
SETTLE_S = 30.0


class Background:
    """`seatflow watch` in its own terminal: output collected as it comes."""

    def __init__(self, command: str, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(["bash", "-c", f"exec {command}"], env=env, cwd=cwd,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(s, into), daemon=True)
                         for s, into in ((self.process.stdout, self.out),
                                         (self.process.stderr, self.err))]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, expected: list[str], matcher: Matcher,
                 timeout: float = SETTLE_S) -> None:
        """Until every line of `expected` has been shown (lines of different topics may
        arrive in either order)."""
        deadline = time.monotonic() + timeout
        while missing := matcher.missing(expected, self.text(), in_order=False):
            if self.process.poll() is not None:
                raise AssertionError(f"watch exited before showing {missing}\n{self.text()}"
                                     f"\n{self.err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"watch never showed {missing} in {timeout} s; it "
                                     f"showed:\n{self.text()}")
            time.sleep(0.1)

    def text(self) -> str:
        """What the person sees in that terminal: stderr (the "watching" line) and stdout."""
        return "\n".join([*self.err, *self.out])

    def interrupt(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout=15)
        for thread in self._threads:
            thread.join(timeout=5)
        return code


def shell(command: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def walkthrough_worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    """The contract's default timings, like `make run`, and the sample restaurant."""
    import asyncio

    worker = start_worker(inline_confirm_window_ms=2000,
                          auto_assign_retry_delays_ms=[5000, 15000, 45000],
                          topic_partitions=8)
    asyncio.run(publish_configs(worker.settings, load_file(SAMPLE_RESTAURANT)))
    return worker


def test_the_readme_walkthrough_works_command_for_command(
    walkthrough_worker: WorkerProcess, stack: Any, tmp_path: Path
) -> None:
    worker = walkthrough_worker
    (tmp_path / ".seatflow").mkdir()
    (tmp_path / ".seatflow" / "mail").symlink_to(stack.mail_dir, target_is_directory=True)
    env = env_for(worker.settings)
    env["PATH"] = f"{SEATFLOW_BIN.parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SEATFLOW_HOME", None)  # commands run where `make run` would: .seatflow here
    matcher = Matcher(port=worker.settings.web_port, prefix=worker.settings.topic_prefix)
    watch: Background | None = None
    steps: list[Step] = readme_steps(README)
    assert steps, "no walkthrough in the README"
    try:
        for step in steps:
            if step.command is None:  # more output in the watch terminal
                assert watch is not None, "watch output before `seatflow watch` was started"
                watch.wait_for(step.expected, matcher)
                continue
            command = matcher.substitute(step.command)
            if step.is_watch:
                watch = Background(command, env, tmp_path)
                watch.wait_for(step.expected, matcher)
                continue
            if step.publishes:
                code, out, err = shell(command, env, tmp_path)
                assert code == 0, f"`{command}` exited {code}\n{out}\n{err}"
                missing = matcher.missing(step.expected, out)
                assert not missing, f"`{command}` did not print {missing}; it printed:\n{out}"
                matcher.learn(step.expected, out)
                continue
            deadline = time.monotonic() + SETTLE_S
            while True:
                code, out, err = shell(command, env, tmp_path)
                missing = matcher.missing(step.expected, out)
                if code == 0 and not missing:
                    break
                assert time.monotonic() < deadline, \
                    f"`{command}` (exit {code}) never printed {missing}; last:\n{out}\n{err}"
                time.sleep(0.5)
            matcher.learn(step.expected, out)
    finally:
        code = watch.interrupt() if watch is not None else 0
    assert code == 0, watch.err if watch else ""  # Ctrl-C ends watch cleanly
