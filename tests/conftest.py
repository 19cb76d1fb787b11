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

The stack itself, databases on it and settings for it are plain helpers in
`tests.support.stack` (the chaos suite and the benchmarks use them too).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from tests.support.stack import (
    TEST_INLINE_CONFIRM_WINDOW_MS,
    TEST_RETRY_DELAYS_MS,
    Stack,
    create_database,
    running_stack,
    stack_settings,
)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack(prefix="seatflow-stack-") as the_stack:
        yield the_stack


@pytest.fixture
def settings(stack: Stack, tmp_path: Path) -> Settings:
    tag = f"t{secrets.token_hex(4)}"
    return stack_settings(
        stack,
        create_database(stack, tag),
        f"{tag}.",
        home=tmp_path,
        inline_confirm_window_ms=TEST_INLINE_CONFIRM_WINDOW_MS,
        auto_assign_retry_delays_ms=list(TEST_RETRY_DELAYS_MS),
    )
