"""Settings built from a clean environment, for tests of the settings object itself: no
SEATFLOW_* (or contract) variable leaks in from the shell running the tests."""

from __future__ import annotations

import os

import pytest

from config.settings import Settings

# The contract's settings without the SEATFLOW_ prefix (CONTRACT §7).
UNPREFIXED_ENV = ("SUPPRESS_EMAILS", "FEATURE_AUTO_ASSIGN_ON_BOOKING")


def clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SEATFLOW_") or name in UNPREFIXED_ENV:
            monkeypatch.delenv(name)


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()
