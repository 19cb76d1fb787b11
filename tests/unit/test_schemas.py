"""The published message schemas (docs/schemas, `seatflow schema`): committed as generated
from the models, valid JSON Schema 2020-12, an AsyncAPI 3.0 document naming every topic,
and in agreement with the contract's examples and with what the models accept."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from config.topics import COMPACTED, INPUTS, Topic
from seatflow.cli import main
from seatflow.schemas import (
    ASYNCAPI_FILE,
    BOOKING_CHANGE,
    CHANNELS,
    EXAMPLES,
    MESSAGES,
    NOTIFICATION,
    RESTAURANT,
    STATUS,
    render,
)
from tests.support.schemas import SCHEMA_DIR, problems

REPO_ROOT = Path(__file__).resolve().parents[2]
BY_NAME = {m.name: m for m in MESSAGES}


def asyncapi() -> dict[str, Any]:
    return yaml.safe_load((SCHEMA_DIR / ASYNCAPI_FILE).read_text(encoding="utf-8"))


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


# --- generated and committed ------------------------------------------------------------------


def test_committed_schemas_are_what_the_models_generate() -> None:
    expected = render()
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.iterdir()}
    assert sorted(committed) == sorted(expected), "docs/schemas holds other files than generated"
    drifted = sorted(name for name, text in expected.items() if committed[name] != text)
    assert not drifted, f"{drifted} drifted from the models: run `seatflow schema` and commit"


def test_the_command_writes_the_same_files(tmp_path: Path) -> None:
    assert main(["schema", "--out", str(tmp_path / "out")]) == 0
    written = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir()}
    assert written == render()


def test_every_topic_has_one_channel_with_a_valid_2020_12_schema() -> None:
    assert sorted(c.topic for c in CHANNELS) == sorted(Topic)
    for message in MESSAGES:
        schema = json.loads((SCHEMA_DIR / message.file).read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert problems(message, EXAMPLES[message.name]) == []


# --- AsyncAPI ----------------------------------------------------------------------------------


def test_asyncapi_names_each_topic_its_key_messages_and_producing_side() -> None:
    doc = asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    by_address = {c["address"]: (cid, c) for cid, c in doc["channels"].items()}
    assert sorted(by_address) == sorted("{prefix}" + t.value for t in Topic)
    assert doc["components"]["parameters"]["prefix"]["default"] == "seatflow."
    operations = doc["operations"].values()
    for topic in Topic:
        cid, channel = by_address["{prefix}" + topic.value]
        [ref] = [m["$ref"] for m in channel["messages"].values()]
        message = resolve(doc, ref)
        schema_file = message["headers" if "headers" in message else "payload"]["schema"]["$ref"]
        assert (SCHEMA_DIR / schema_file).is_file(), schema_file
        assert message["bindings"]["kafka"]["key"]["description"], f"{topic}: no key named"
        policy = channel["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"]
        assert policy == (["compact"] if topic in COMPACTED else ["delete"]), topic
        actions = sorted(op["action"] for op in operations
                         if op["channel"]["$ref"] == f"#/channels/{cid}")
        # seatflow consumes its inputs; it produces every other topic (and its own
        # allocation requests, which it consumes too).
        expected = {Topic.ALLOCATION_REQUESTS: ["receive", "send"]}.get(
            topic, ["receive"] if topic in INPUTS else ["send"])
        assert actions == expected, f"{topic}: {actions}"
        assert ("Produced by seatflow" in channel["description"]) == ("send" in actions)


def test_every_local_reference_in_the_asyncapi_document_resolves() -> None:
    doc = asyncapi()
    text = json.dumps(doc)
    refs = set(re.findall(r'"\$ref": "(#/[^"]+)"', text))
    assert refs
    for ref in refs:
        resolve(doc, ref)  # KeyError names the broken one


def test_asyncapi_examples_are_valid_messages() -> None:
    for message in asyncapi()["components"]["messages"].values():
        for example in message["examples"]:
            instance = example.get("payload", example.get("headers"))
            assert problems(BY_NAME[message["name"]], instance) == []


# --- the contract's examples ---------------------------------------------------------------------


def contract_path() -> Path | None:
    """CONTRACT.md lives beside the repository (shared/), not in it."""
    for candidate in (os.environ.get("SEATFLOW_CONTRACT"),
                      REPO_ROOT.parent / "shared" / "CONTRACT.md", "/work/shared/CONTRACT.md"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def contract_blocks(text: str) -> list[dict[str, Any]]:
    """The ```json blocks, without their `// ...` annotations."""
    blocks = re.findall(r"```json\n(.*?)```", text, re.DOTALL)
    return [json.loads(re.sub(r"\s+//.*$", "", block, flags=re.MULTILINE)) for block in blocks]


def filled(contract: Any, example: Any) -> Any:
    """The contract's example with its elisions ("...", "<event_id of ...>") taken from ours."""
    if isinstance(contract, dict):
        return {k: filled(v, example.get(k)) for k, v in contract.items()}
    if isinstance(contract, str) and ("..." in contract or contract.startswith("<")):
        return example
    return contract


def message_of(block: dict[str, Any]) -> str:
    for key, message in (("schema_version", BOOKING_CHANGE), ("tables", RESTAURANT),
                         ("notification_id", NOTIFICATION), ("status", STATUS)):
        if key in block:
            return message.name
    raise AssertionError(f"no schema for the contract's example {sorted(block)}")


def test_the_contracts_examples_are_valid_messages() -> None:
    path = contract_path()
    if path is None:
        pytest.skip("CONTRACT.md not found beside the repository (set SEATFLOW_CONTRACT)")
    blocks = contract_blocks(path.read_text(encoding="utf-8"))
    seen = sorted(message_of(block) for block in blocks)
    assert seen == sorted([RESTAURANT.name, BOOKING_CHANGE.name, STATUS.name, NOTIFICATION.name])
    for block in blocks:
        name = message_of(block)
        ours = EXAMPLES[name]
        missing = sorted(set(block) - set(ours))
        assert not missing, f"EXAMPLES[{name}] lacks the contract's fields {missing}"
        instance = filled(block, ours)
        if name == STATUS.name:
            # Revision 2 puts booking_version on every status event (§5, in prose); the
            # example above that prose predates it.
            instance.setdefault("booking_version", ours["booking_version"])
        assert problems(BY_NAME[name], instance) == []


# --- the schemas accept what the models accept ---------------------------------------------------


def booking_change(**booking: Any) -> dict[str, Any]:
    event = copy.deepcopy(EXAMPLES[BOOKING_CHANGE.name])
    event["booking"].update(booking)
    return event


INPUT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("valid created", booking_change()),
    ("party of 0", booking_change(party_size=0)),
    ("7pm", booking_change(start_time="7pm")),
    ("24:00", booking_change(start_time="24:00")),
    ("seconds", booking_change(start_time="19:00:00")),
    ("date with slashes", booking_change(booking_date="2026/12/01")),
    ("created without date", booking_change(booking_date=None)),
    ("created without name", booking_change(customer_name=None)),
    ("past midnight", booking_change(start_time="23:00", end_time="01:00")),
    ("unknown type", {**booking_change(), "type": "booking.deleted"}),
    ("version 2", {**booking_change(), "schema_version": 2}),
    ("unknown source", {**booking_change(), "source": "robot"}),
    ("extra fields tolerated", {**booking_change(), "new_field": 1}),
    ("cancel with ids only", {**booking_change(), "type": "booking.cancelled",
                              "booking": {"booking_id": "b-1", "restaurant_id": "r-1"}}),
    ("cancel without restaurant", {**booking_change(), "type": "booking.cancelled",
                                   "booking": {"booking_id": "b-1"}}),
]


@pytest.mark.parametrize(("case", "event"), INPUT_CASES, ids=[c for c, _ in INPUT_CASES])
def test_booking_change_schema_agrees_with_the_model(case: str, event: dict[str, Any]) -> None:
    schema_accepts = not problems(BOOKING_CHANGE, event)
    model_accepts = not _refused(BOOKING_CHANGE.model, event)
    assert schema_accepts == model_accepts, f"{case}: {problems(BOOKING_CHANGE, event)}"


def _refused(model: type[BaseModel] | None, instance: dict[str, Any]) -> bool:
    assert model is not None
    try:
        model.model_validate_json(json.dumps(instance))
    except ValidationError:
        return True
    return False


@pytest.mark.parametrize("mutation", [
    {"services": [{"name": "x", "start": "1700", "end": "22:00"}]},
    {"tables": []},
    {"tables": [{"table_id": "t1", "capacity": 0}]},
    {"adjacency": [["t1"]]},
    {"buffer_after_minutes": -1},
])
def test_restaurant_schema_refuses_what_the_model_refuses(mutation: dict[str, Any]) -> None:
    config = {**EXAMPLES[RESTAURANT.name], **mutation}
    assert _refused(RESTAURANT.model, config)
    assert problems(RESTAURANT, config)


def test_published_examples_are_exactly_what_the_models_write() -> None:
    for message in MESSAGES:
        if message.model is None or message.mode != "serialization":
            continue
        example = EXAMPLES[message.name]
        assert message.model.model_validate(example).model_dump(mode="json") == example
