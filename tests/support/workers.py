"""Real `seatflow worker` subprocesses, configured through their environment like production.

`WorkerProcess(settings, log_path).start()` returns once /health answers 200 (and, with
`until_consuming`, once Faust has its partitions); `check_alive` raises `WorkerDied` when
the process exited meanwhile. `worker_settings` gives a worker of the test stack its own
database, prefix (topics and consumer group), home and web port.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from config.settings import Settings
from config.topics import TopicNames
from tests.support.stack import (
    TEST_INLINE_CONFIRM_WINDOW_MS,
    TEST_RETRY_DELAYS_MS,
    Stack,
    create_database,
    stack_settings,
)

SEATFLOW_BIN = Path(sys.executable).with_name("seatflow")
REPO_ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a worker process read exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATFLOW_")}
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        env_name = getattr(alias, "choices", [alias])[0] if alias is not None else None
        value = getattr(settings, name)
        if env_name is None or value is None:
            env.pop(str(env_name), None)
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[str(env_name)] = str(value)
    return env


class WorkerDied(RuntimeError):
    """The worker exited while it was being used (a crash, or a signal from outside)."""


@dataclass
class WorkerProcess:
    """One `seatflow worker` subprocess in a session of its own, logging to `log_path`."""

    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # wall clock, just before the process was started

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.settings.topic_prefix)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    def start(self, *, timeout: float = 30.0, until_consuming: bool = False) -> WorkerProcess:
        """Start the worker; return once /health answers 200 and, with `until_consuming`,
        once it has its partitions and fetches (healthy comes seconds before that: the
        group join; a test's first event would otherwise spend its wait on the join).
        RuntimeError (the worker killed) if it exits or is not ready in `timeout`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log_from = log.tell()
            self.started_at = time.time()
            self.process = subprocess.Popen(
                [str(SEATFLOW_BIN), "worker"],
                env=settings_env(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO_ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early; log: {self.log_tail()}")
            if self.health()[0] == 200 and (not until_consuming or self._consuming(log_from)):
                return self
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"worker not ready after {timeout}s; log: {self.log_tail()}")

    def _consuming(self, log_from: int) -> bool:
        """Faust logs "Worker ready" once partitions are assigned and the fetcher runs."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(log_from)
                return b"Worker ready" in fh.read()
        except OSError:
            return False

    def check_alive(self, during: str) -> None:
        """WorkerDied (with the log's tail) if the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise WorkerDied(f"worker died during {during}:\n{self.log_tail()}")

    def health(self) -> tuple[int, dict[str, Any]]:
        return self.get("/health")

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """GET with the worker's API token, if it has one."""
        headers = {}
        if self.settings.api_token is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_token.get_secret_value()}"
        request = urllib.request.Request(self.base_url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError):
            return 0, {}

    def stop(self, *, timeout: float = 20.0) -> int | None:
        """SIGTERM, and SIGKILL (whole session) if it has not exited in `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


def worker_settings(stack: Stack, root: Path, **overrides: Any) -> Settings:
    """A test worker's settings: a fresh database and prefix `w<8 hex>`, home under `root`,
    the short test timings, 4 partitions; then `overrides`."""
    tag = f"w{secrets.token_hex(4)}"
    defaults: dict[str, Any] = {
        "home": root / tag,
        "inline_confirm_window_ms": TEST_INLINE_CONFIRM_WINDOW_MS,
        "auto_assign_retry_delays_ms": list(TEST_RETRY_DELAYS_MS),
        "topic_partitions": 4,
    }
    return stack_settings(stack, create_database(stack, tag), f"{tag}.",
                          **{**defaults, **overrides})
