"""faust-streaming, aiokafka and mode-streaming break each other across versions: the
installed ones must be exactly the pins in pyproject.toml, and must import together."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
PINNED_TOGETHER = {"faust-streaming": "faust", "aiokafka": "aiokafka", "mode-streaming": "mode"}


def _pins() -> dict[str, str]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+)\s*", dep)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


@pytest.mark.parametrize("distribution", sorted(PINNED_TOGETHER))
def test_stream_stack_is_pinned_exactly_and_installed_at_the_pin(distribution: str) -> None:
    pins = _pins()
    assert distribution in pins, f"{distribution} must be pinned with == in pyproject.toml"
    assert importlib.metadata.version(distribution) == pins[distribution]


def test_stream_stack_imports_together() -> None:
    modules = {name: importlib.import_module(mod) for name, mod in PINNED_TOGETHER.items()}
    import faust

    # faust builds on mode's services and aiokafka's consumer: both must be the ones it loads.
    app = faust.App("pins-check", broker="kafka://127.0.0.1:1", autodiscover=False)
    assert isinstance(app, modules["mode-streaming"].Service)
    from faust.transport.drivers import aiokafka as faust_aiokafka

    assert faust_aiokafka.aiokafka is modules["aiokafka"]
