"""`seatflow restaurants load FILE`: bad files name the bad field; good ones reach the topic."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from config.settings import Settings
from config.topics import TopicNames
from models.restaurant import RestaurantConfig
from producers.publisher import Publisher, make_change
from producers.restaurants import ConfigFileError, load_file
from seatflow.cli import SAMPLE_RESTAURANT, main
from streams.admin import ensure_topics
from tests.support.kafka import json_values, keys, read_topic

pytestmark = pytest.mark.integration


def _restaurant(rid: str = "r-test") -> dict[str, Any]:
    return {
        "restaurant_id": rid,
        "name": "Test Kitchen",
        "slug": "test-kitchen",
        "timezone": "Europe/London",
        "contact_email": "kitchen@example.com",
        "tables": [
            {"table_id": "a", "number": "1", "zone": "main", "capacity": 2},
            {"table_id": "b", "number": "2", "zone": "main", "capacity": 4, "min_party": 2},
        ],
        "adjacency": [["a", "b"]],
        "services": [{"name": "dinner", "start": "17:00", "end": "22:00"}],
    }


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATFLOW_")}
    env.update(
        SEATFLOW_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        SEATFLOW_TOPIC_PREFIX=settings.topic_prefix,
        SEATFLOW_TOPIC_PARTITIONS=str(settings.topic_partitions),
        SEATFLOW_HOME=str(settings.home),
    )
    return env


def _bad(mutate) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(_restaurant())
    mutate(doc)
    return doc


BAD_CONFIGS = [
    pytest.param(
        _bad(lambda d: d["adjacency"].append(["b", "zz"])),
        r"restaurant \[0\] \(r-test\): adjacency\[1\]: unknown table 'zz'",
        id="unknown-table-in-adjacency",
    ),
    pytest.param(
        _bad(lambda d: d["tables"][1].update(capacity=0)),
        r"restaurant \[0\] \(r-test\): tables\.1\.capacity: Input should be greater than 0",
        id="capacity-zero",
    ),
    pytest.param(
        _bad(lambda d: d["tables"][0].update(min_party=3, max_party=2)),
        r"restaurant \[0\] \(r-test\): tables\.0: min_party \(3\) must not exceed max_party \(2\)",
        id="min-party-above-max",
    ),
    pytest.param(
        _bad(lambda d: d["services"][0].update(start="7pm")),
        r"restaurant \[0\] \(r-test\): services\.0\.start: .*HH:MM.*'7pm'",
        id="malformed-service-time",
    ),
]


@pytest.mark.parametrize(("doc", "message"), BAD_CONFIGS)
def test_load_file_names_the_bad_field(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([_restaurant("r-fine"), doc]))
    with pytest.raises(ConfigFileError) as err:
        load_file(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ")
    # The good restaurant is [0]; the bad one is [1].
    assert_matches(message.replace(r"\[0\]", r"\[1\]"), text)


def assert_matches(pattern: str, text: str) -> None:
    assert re.search(pattern, text), f"{pattern!r} not found in {text!r}"


@pytest.mark.parametrize(("doc", "message"), BAD_CONFIGS)
def test_cli_rejects_bad_file_with_exit_2_and_publishes_nothing(
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    doc: dict[str, Any],
    message: str,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    for name, value in _env(settings).items():
        if name.startswith("SEATFLOW_"):
            monkeypatch.setenv(name, value)
    code = main(["restaurants", "load", str(path)])
    out = capsys.readouterr()
    assert code == 2
    assert out.out == ""
    assert_matches(message, out.err)
    assert "Traceback" not in out.err


def test_yaml_times_are_not_read_as_base_60_numbers(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    doc = yaml.safe_dump(_restaurant()).replace("'17:00'", "17:00").replace("'22:00'", "22:00")
    assert "start: 17:00" in doc  # unquoted, as people write it
    path.write_text(doc)
    [cfg] = load_file(path)
    assert cfg.services[0].start.strftime("%H:%M") == "17:00"


def test_unreadable_and_malformed_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"missing\.yaml: cannot read"):
        load_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text('{"restaurant_id": ')
    with pytest.raises(ConfigFileError, match=r"broken\.json: not valid JSON"):
        load_file(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(
        ConfigFileError, match=r"scalar\.yaml: restaurant \[0\]: expected an object"
    ):
        load_file(scalar)


def test_sample_restaurant_is_valid_and_realistic() -> None:
    [cfg] = load_file(SAMPLE_RESTAURANT)
    zones = {t.zone for t in cfg.tables}
    assert len(cfg.tables) >= 12 and len(zones) == 2
    by_id = {t.table_id: t for t in cfg.tables}
    assert all(by_id[a].zone == by_id[b].zone for a, b in cfg.adjacency)
    overrun = {s.name: s.allow_overrun for s in cfg.services}
    assert overrun == {"lunch": True, "dinner": False}
    assert cfg.contact_email and cfg.turn_minutes


async def test_good_file_is_published_and_read_back(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump([_restaurant("r-one"), _restaurant("r-two")]))
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "seatflow.cli", "restaurants", "load", str(path)],
        env=_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("published 2 restaurants to ")

    topic = TopicNames(settings.topic_prefix).restaurants
    records = await read_topic(settings.kafka_bootstrap, topic, min_count=2)
    assert sorted(keys(records)) == ["r-one", "r-two"]
    configs = [RestaurantConfig.model_validate(v) for v in json_values(records)]
    assert {c.restaurant_id: c for c in configs}["r-one"] == RestaurantConfig.model_validate(
        _restaurant("r-one")
    )


async def test_ensure_topics_creates_all_topics_once(settings: Settings) -> None:
    names = TopicNames(settings.topic_prefix)
    await ensure_topics(settings)
    await ensure_topics(settings)  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        assert set(names.all()) <= existing
        described = await admin.describe_topics([names.booking_changes])
        assert len(described[0]["partitions"]) == settings.topic_partitions
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, names.restaurants)]
        )
        entries = {e[0]: e[1] for e in response.resources[0][4]}
        assert entries.get("cleanup.policy") == "compact"
    finally:
        await admin.close()


async def test_publisher_writes_contract_json_keyed_by_booking(settings: Settings) -> None:
    change = make_change(
        "booking.created",
        "b-1001",
        "r-ember",
        booking_date="2026-12-01",
        start_time="19:00",
        party_size=4,
        customer_name="Ada Lovelace",
        customer_email="ada@example.com",
        channel="web",
    )
    async with Publisher(settings) as publisher:
        await publisher.publish_change(change)
        await publisher.publish_raw(
            TopicNames(settings.topic_prefix).booking_changes, b"b-bad", b"not json"
        )
        await publisher.flush()
        assert publisher.sent == 2
    records = await read_topic(
        settings.kafka_bootstrap, TopicNames(settings.topic_prefix).booking_changes, min_count=2
    )
    by_key = {r.key: r.value for r in records}
    assert by_key[b"b-bad"] == b"not json"
    event = json.loads(by_key[b"b-1001"])
    assert event["booking"]["start_time"] == "19:00"
    assert event["booking"]["booking_date"] == "2026-12-01"
    assert event["booking"]["end_time"] is None  # exclude_none=False: explicit nulls
    assert event["occurred_at"].endswith("Z")
    assert event["event_id"] == change.event_id and event["channel"] == "web"
