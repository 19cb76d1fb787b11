"""Shared fixtures: one real embedded stack per test session, isolated settings per test.

`stack` (session) starts a Tansu broker, a private PostgreSQL 16 and the SMTP mail sink
once, on free ports under a temporary folder, and stops them at the end of the session.
It is only started by tests that ask for it (unit tests never do).

`settings` (function) is `Settings()` pointed at the stack, with per-test isolation:
  - `topic_prefix` `t<8 hex>.` — unique topics AND a unique consumer group (app_id derives
    from the prefix), so tests sharing the broker never see each other's records;
  - `database_url` — a fresh, empty PostgreSQL database `t<8 hex>` on the shared server
    (~50 ms), so schema and rows never leak between tests;
  - `home` — the test's tmp_path; `web_port` — a free port (workers in tests never clash);
  - short timings so behaviour tests run in well under a second per step:
      inline_confirm_window_ms = 300      (contract default 2000)
      auto_assign_retry_delays_ms = [200, 400]  (contract default 5000,15000,45000)
Mail from every test lands in the one sink (`stack.mail_sink`); filter its messages by the
test's booking ids or recipients rather than counting all of them.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from config.settings import Settings
from devstack import (
    EmbeddedBroker,
    EmbeddedPostgres,
    free_port,
    start_broker,
    start_mail_sink,
    start_postgres,
)
from devstack.mailsink import MailSink

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
        """The shared server's URL with another database name (same socket, same user)."""
        parts = urlsplit(self.postgres.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def stop(self) -> None:
        for stop in (self.mail_sink.stop, self.postgres.stop, self.broker.stop):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                print(f"stack: stopping failed: {exc!r}")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # A short root keeps the PostgreSQL Unix socket path under the kernel's 107-byte limit.
    root = Path(tempfile.mkdtemp(prefix="seatflow-stack-"))
    broker = start_broker(free_port(), log_path=root / "broker.log")
    postgres = mail_sink = None
    try:
        postgres = start_postgres(root / "pgdata")
        mail_sink = start_mail_sink("127.0.0.1", free_port(), root / "mail")
        the_stack = Stack(broker=broker, postgres=postgres, mail_sink=mail_sink, root=root)
    except BaseException:
        if postgres is not None:
            postgres.stop()
        broker.stop()
        raise
    try:
        yield the_stack
    finally:
        the_stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def create_database(stack: Stack, name: str) -> str:
    """Create an empty database on the shared server; return its URL."""
    import asyncio
    import concurrent.futures

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(stack.database_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    # Sync fixture; run in a thread so it works whether or not a loop is running here.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, create()).result(timeout=30)
    return stack.database_url_for(name)


_create_database = create_database  # older name, still imported by tests/integration


@pytest.fixture
def settings(stack: Stack, tmp_path: Path) -> Settings:
    tag = f"t{secrets.token_hex(4)}"
    return Settings().model_copy(
        update={
            "kafka_bootstrap": stack.kafka_bootstrap,
            "database_url": create_database(stack, tag),
            "smtp_host": stack.smtp_host,
            "smtp_port": stack.smtp_port,
            "smtp_tls": "none",
            "smtp_username": None,
            "smtp_password": None,
            "topic_prefix": f"{tag}.",
            "app_id_override": None,
            "web_port": free_port(),
            "web_host": "127.0.0.1",
            "home": tmp_path,
            "inline_confirm_window_ms": TEST_INLINE_CONFIRM_WINDOW_MS,
            "auto_assign_retry_delays_ms": list(TEST_RETRY_DELAYS_MS),
        }
    )
