"""The embedded stack: a Tansu broker, a private PostgreSQL 16 and the SMTP mail sink, on free
ports under one folder; a fresh database on it per user; `Settings` pointed at it.

Tests start one per session (the `stack` fixture in tests/conftest.py), the benchmarks one
per run (`running_stack`), the chaos suite one in its run folder (`start_stack(root)`, and it
restarts PostgreSQL and the sink on its own).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from config.settings import Settings
from devstack import (
    EmbeddedBroker,
    EmbeddedPostgres,
    MailSink,
    free_port,
    start_broker,
    start_mail_sink,
    start_postgres,
)

# Short timings for behaviour tests (contract defaults: 2000 ms; 5000, 15000, 45000 ms).
TEST_INLINE_CONFIRM_WINDOW_MS = 300
TEST_RETRY_DELAYS_MS = [200, 400]


@dataclass
class Stack:
    broker: EmbeddedBroker
    postgres: EmbeddedPostgres
    mail_sink: MailSink
    root: Path

    @property
    def kafka_bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def smtp_host(self) -> str:
        return self.mail_sink.host

    @property
    def smtp_port(self) -> int:
        return self.mail_sink.port

    @property
    def mail_dir(self) -> Path:
        return self.mail_sink.mail_dir

    def database_url_for(self, name: str) -> str:
        """The server's URL with another database name (same socket, same user)."""
        parts = urlsplit(self.postgres.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def stop(self) -> None:
        """Stop the sink, PostgreSQL and the broker (the folder stays, with their logs)."""
        for stop in (self.mail_sink.stop, self.postgres.stop, self.broker.stop):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"stack: stopping failed: {exc!r}")


def start_stack(root: Path | None = None, *, prefix: str = "seatflow-stack-") -> Stack:
    """Start broker, PostgreSQL and sink under `root` (default: a fresh folder in /tmp named
    `prefix…`: short, so the PostgreSQL Unix socket path stays under the kernel's 107 bytes).
    What started is stopped again if a later part fails."""
    root = root if root is not None else Path(tempfile.mkdtemp(prefix=prefix))
    broker = start_broker(free_port(), log_path=root / "broker.log")
    postgres = None
    try:
        postgres = start_postgres(root / "pgdata")
        mail_sink = start_mail_sink("127.0.0.1", free_port(), root / "mail")
    except BaseException:
        if postgres is not None:
            postgres.stop()
        broker.stop()
        raise
    return Stack(broker=broker, postgres=postgres, mail_sink=mail_sink, root=root)


@contextmanager
def running_stack(*, prefix: str = "seatflow-stack-") -> Iterator[Stack]:
    """A stack in a fresh folder, stopped and removed (folder and all) afterwards."""
    stack = start_stack(prefix=prefix)
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)


async def create_database_async(stack: Stack, name: str, *, template: str | None = None) -> str:
    """Create a database on the stack's server (empty, or a copy of `template`); its URL."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return stack.database_url_for(name)


def create_database(stack: Stack, name: str, *, template: str | None = None) -> str:
    """`create_database_async` for sync callers (fixtures), whether or not a loop runs here."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(asyncio.run, create_database_async(stack, name, template=template))
        return future.result(timeout=30)


def stack_settings(stack: Stack, database_url: str, topic_prefix: str, **overrides: Any) -> Settings:
    """`Settings()` pointed at the stack: its broker, this database, its sink (no TLS, no
    login), a topic prefix and consumer group of its own, a free web port; then `overrides`."""
    return Settings().model_copy(
        update={
            "kafka_bootstrap": stack.kafka_bootstrap,
            "database_url": database_url,
            "smtp_host": stack.smtp_host,
            "smtp_port": stack.smtp_port,
            "smtp_tls": "none",
            "smtp_username": None,
            "smtp_password": None,
            "topic_prefix": topic_prefix,
            "app_id_override": None,  # the consumer group derives from the prefix
            "web_port": free_port(),
            "web_host": "127.0.0.1",
            **overrides,
        }
    )
