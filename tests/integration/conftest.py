"""Real `seatflow worker` processes for behaviour tests, and a harness to drive them.

`worker` (session) is one worker subprocess on its own prefix and database, shared by the
behaviour tests; each test uses its own restaurant and booking ids (`harness.ids`).
`start_worker(settings)` starts more (other settings, or several in one group).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from models.restaurant import RestaurantConfig
from producers.publisher import Publisher
from seatflow.embedded import free_port
from seatflow.settings import Settings
from streams.topics import TopicNames
from tests.conftest import TEST_INLINE_CONFIRM_WINDOW_MS, TEST_RETRY_DELAYS_MS, _create_database
from tests.kafkautil import json_values, read_topic

SEATFLOW_BIN = Path(sys.executable).with_name("seatflow")


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
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[str(env_name)] = str(value)
    return env


@dataclass
class WorkerProcess:
    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.settings.topic_prefix)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def start(self, *, timeout: float = 30.0) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(SEATFLOW_BIN), "worker"],
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early; log: {self.log_tail()}")
            if self.health()[0] == 200:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not healthy after {timeout}s; log: {self.log_tail()}")

    def health(self) -> tuple[int, dict[str, Any]]:
        return self.get("/health")

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError):
            return 0, {}

    def stop(self, *, timeout: float = 20.0) -> int | None:
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


def worker_settings(stack: Any, root: Path, **overrides: Any) -> Settings:
    tag = f"w{secrets.token_hex(4)}"
    return Settings().model_copy(
        update={
            "kafka_bootstrap": stack.kafka_bootstrap,
            "database_url": _create_database(stack, tag),
            "smtp_host": stack.smtp_host,
            "smtp_port": stack.smtp_port,
            "smtp_tls": "none",
            "topic_prefix": f"{tag}.",
            "web_port": free_port(),
            "web_host": "127.0.0.1",
            "home": root / tag,
            "inline_confirm_window_ms": TEST_INLINE_CONFIRM_WINDOW_MS,
            "auto_assign_retry_delays_ms": list(TEST_RETRY_DELAYS_MS),
            "topic_partitions": 4,
            **overrides,
        }
    )


@pytest.fixture(scope="session")
def start_worker(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []
    root = tmp_path_factory.mktemp("workers")

    def start(settings: Settings | None = None, **overrides: Any) -> WorkerProcess:
        s = settings or worker_settings(stack, root, **overrides)
        w = WorkerProcess(s, root / f"{s.topic_prefix}{len(started)}.log")
        started.append(w)
        return w.start()

    yield start
    # SIGTERM all first, then wait: shutdowns overlap instead of adding up.
    for w in started:
        if w.process is not None and w.process.poll() is None:
            w.process.send_signal(signal.SIGTERM)
    for w in started:
        w.stop(timeout=15)


@pytest.fixture(scope="session")
def worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker()


def restaurant(restaurant_id: str, *, contact_email: str | None = "host@resto.example",
               tables: int = 4, **extra: Any) -> RestaurantConfig:
    """A small restaurant: `tables` two-tops in a row (adjacent), dinner 17:00-23:00."""
    cfg = {
        "restaurant_id": restaurant_id,
        "name": f"Resto {restaurant_id}",
        "slug": restaurant_id,
        "timezone": "Europe/London",
        "contact_email": contact_email,
        "tables": [
            {"table_id": f"t{i}", "number": str(i), "zone": "main", "capacity": 2,
             "min_party": 1, "max_party": 2}
            for i in range(1, tables + 1)
        ],
        "adjacency": [[f"t{i}", f"t{i + 1}"] for i in range(1, tables)],
        "services": [{"name": "dinner", "start": "17:00", "end": "23:00", "allow_overrun": True}],
        **extra,
    }
    return RestaurantConfig.model_validate(cfg)


@dataclass
class Harness:
    """Drives one worker: publish inputs, then wait for what PostgreSQL/topics/SMTP show."""

    worker: WorkerProcess
    stack: Any
    tag: str = field(default_factory=lambda: secrets.token_hex(3))

    def ids(self, name: str) -> str:
        return f"{name}-{self.tag}"

    @property
    def settings(self) -> Settings:
        return self.worker.settings

    async def publish(self, *items: Any) -> None:
        async with Publisher(self.settings) as pub:
            for item in items:
                if isinstance(item, RestaurantConfig):
                    await pub.publish_restaurant(item)
                else:
                    await pub.publish_change(item)
            await pub.flush()

    def booking(self, booking_id: str) -> dict[str, Any] | None:
        status, body = self.worker.get(f"/bookings/{booking_id}")
        return body if status == 200 else None

    async def wait_booking(
        self, booking_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await asyncio.to_thread(self.booking, booking_id)
            if last is not None and predicate(last):
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"booking {booking_id} never matched; last seen: {last}")

    def mails(self, booking_id: str) -> list[EmailMessage]:
        return [
            m for m in self.stack.mail_sink.messages() if m["X-Seatflow-Booking"] == booking_id
        ]

    async def topic_values(self, name: str, *, key: str | None = None,
                           min_count: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        topic = getattr(self.worker.topics, name)
        records = await read_topic(self.settings.kafka_bootstrap, topic, min_count=min_count,
                                   timeout=timeout)
        if key is not None:
            records = [r for r in records if r.key == key.encode()]
        return json_values(records)


@pytest.fixture
def harness(worker: WorkerProcess, stack: Any) -> Harness:
    return Harness(worker, stack)
