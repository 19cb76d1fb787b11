"""`seatflow schema`: the machine-readable contract for the teams on the other side of the
topics: a JSON Schema (draft 2020-12) per message seatflow consumes or produces, generated
from the pydantic models in models/, and an AsyncAPI 3.0 document naming each topic
(config/topics.py), its key, its messages and which side produces it.

The files are committed under docs/schemas/; tests/unit/test_schemas.py fails when they
drift from the models (regenerate with `seatflow schema`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from config.topics import COMPACTED, Topic
from models.events import (
    SCHEMA_VERSION,
    AllocationRequest,
    BookingChange,
    BookingStatusEvent,
    NotificationRecord,
    OpsEvent,
)
from models.restaurant import RestaurantConfig
from streams import deadletter as dl

DEFAULT_OUT = Path("docs/schemas")
ASYNCAPI_FILE = "asyncapi.yaml"
CONTRACT_REVISION = 2
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# How AsyncAPI 3.0 is told that a payload is JSON Schema 2020-12 rather than its own dialect.
SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
KAFKA_BINDING_VERSION = "0.5.0"
DEFAULT_PREFIX = "seatflow."

UPSTREAM = "upstream booking systems"
SEATFLOW = "seatflow"


@dataclass(frozen=True)
class Message:
    name: str
    file: str
    summary: str
    # Inputs are described as seatflow accepts them, outputs exactly as it writes them.
    model: type[BaseModel] | None = None
    mode: Literal["validation", "serialization"] = "serialization"

    def schema(self) -> dict[str, Any]:
        body = (self.model.model_json_schema(mode=self.mode) if self.model is not None
                else dead_letter_headers_schema())
        body.pop("title", None)
        return {"$schema": DRAFT_2020_12, "title": self.name, "description": self.summary,
                **body}


@dataclass(frozen=True)
class Channel:
    topic: Topic
    key: str
    message: Message
    producers: str
    consumers: str
    seatflow_sends: bool
    seatflow_receives: bool


RESTAURANT = Message(
    "RestaurantConfig", "restaurant-config.schema.json",
    "A restaurant's configuration (docs/interface.md §2); the newest record per restaurant wins.",
    RestaurantConfig, "validation",
)
BOOKING_CHANGE = Message(
    "BookingChange", "booking-change.schema.json",
    f"A booking change event, schema_version {SCHEMA_VERSION} (docs/interface.md §3). "
    "booking.cancelled needs only booking_id and restaurant_id inside booking; "
    "booking.created and booking.updated need booking_date, start_time, party_size and "
    "customer_name too.",
    BookingChange, "validation",
)
STATUS = Message(
    "BookingStatusEvent", "booking-status-event.schema.json",
    "A status transition (docs/interface.md §5). Dedupe by event_id; apply only a "
    "booking_version higher than the one held.",
    BookingStatusEvent,
)
NOTIFICATION = Message(
    "NotificationRecord", "notification-record.schema.json",
    "One notification decided (docs/interface.md §5). Dedupe by notification_id.",
    NotificationRecord,
)
OPS = Message(
    "OpsEvent", "ops-event.schema.json",
    "An observability event for ops triage (docs/interface.md §5).",
    OpsEvent,
)
ALLOCATION = Message(
    "AllocationRequest", "allocation-request.schema.json",
    "Internal: allocation work for one booking episode, or a sweep of a date's pending "
    "bookings. Not part of the contract; may change between versions.",
    AllocationRequest,
)
DEAD_LETTER = Message(
    "DeadLetterHeaders", "dead-letter-headers.schema.json",
    "The headers of a dead letter (docs/interface.md §5), as UTF-8 strings. The record's key "
    "and value are the original message's bytes, unchanged (the value may be cut, see "
    f"{dl.H_VALUE_TRUNCATED}); the original's own headers follow these.",
)

CHANNELS: tuple[Channel, ...] = (
    Channel(Topic.RESTAURANTS, "restaurant_id", RESTAURANT,
            f"{UPSTREAM} (or `seatflow restaurants load`)", SEATFLOW, False, True),
    Channel(Topic.BOOKING_CHANGES, "booking_id", BOOKING_CHANGE,
            f"{UPSTREAM} (and `seatflow dlq replay`)", SEATFLOW, False, True),
    Channel(Topic.BOOKING_STATUS, "booking_id", STATUS, SEATFLOW,
            "notifier consumers, upstream booking systems", True, False),
    Channel(Topic.NOTIFICATIONS, "booking_id", NOTIFICATION, SEATFLOW,
            "notifier consumers", True, False),
    Channel(Topic.OPS_EVENTS, "booking_id, else restaurant_id", OPS, SEATFLOW,
            "ops tooling", True, False),
    Channel(Topic.DEAD_LETTERS, "the original message's key", DEAD_LETTER, SEATFLOW,
            "ops (`seatflow dlq tail`, `seatflow dlq replay`)", True, False),
    Channel(Topic.ALLOCATION_REQUESTS, "restaurant_id", ALLOCATION, SEATFLOW,
            "seatflow (internal)", True, True),
)
MESSAGES: tuple[Message, ...] = tuple(channel.message for channel in CHANNELS)


def dead_letter_headers_schema() -> dict[str, Any]:
    integer = {"type": "string", "pattern": r"^\d+$"}
    properties: dict[str, Any] = {
        dl.H_ORIGINAL_TOPIC: {"type": "string", "minLength": 1},
        dl.H_ORIGINAL_PARTITION: integer,
        dl.H_ORIGINAL_OFFSET: integer,
        dl.H_ORIGINAL_TIMESTAMP: {"type": "string", "pattern": r"^\d*$",
                                  "description": "epoch milliseconds; empty when unknown"},
        dl.H_STAGE: {"type": "string", "enum": list(dl.DEAD_LETTER_STAGES)},
        dl.H_EXCEPTION_CLASS: {"type": "string"},
        dl.H_EXCEPTION_MESSAGE: {
            "type": "string", "maxLength": dl.MAX_EXCEPTION_MESSAGE_CHARS,
            "description": "one line",
        },
        dl.H_ATTEMPTS: {**integer, "description": "grows by one with each replay that fails again"},
        dl.H_FAILED_AT: {"type": "string", "format": "date-time"},
        dl.H_VALUE_TRUNCATED: {
            **integer,
            "description": "only when the value was cut to fit: the original size in bytes",
        },
    }
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name != dl.H_VALUE_TRUNCATED],
        "additionalProperties": {"type": "string"},
    }


# The contract's examples (CONTRACT.md §§2, 3, 5), with its elisions ("...") written out and
# revision 2's booking_version on the status event; tests/unit/test_schemas.py holds the
# contract's own text to the schemas too.
EXAMPLES: dict[str, dict[str, Any]] = {
    RESTAURANT.name: {
        "restaurant_id": "r-ember", "name": "Ember & Oak", "slug": "ember-oak",
        "timezone": "Europe/London", "contact_email": "hello@ember.example",
        "contact_phone": "+44 20 7946 0000",
        "tables": [{"table_id": "t1", "number": "1", "zone": "main", "capacity": 2,
                    "min_party": 1, "max_party": 2, "active": True},
                   {"table_id": "t2", "number": "2", "zone": "main", "capacity": 4,
                    "min_party": 1, "max_party": 4, "active": True}],
        "adjacency": [["t1", "t2"]],
        "services": [{"name": "lunch", "start": "12:00", "end": "15:00", "allow_overrun": True},
                     {"name": "dinner", "start": "17:00", "end": "22:00",
                      "allow_overrun": False}],
        "turn_minutes": {"2": 60, "4": 75, "6": 85, "8": 90},
        "buffer_after_minutes": 5, "max_tables_per_booking": 3,
    },
    BOOKING_CHANGE.name: {
        "schema_version": SCHEMA_VERSION, "event_id": "5b0d6f0e-3c1e-4d57-9a51-3f0c1b2d4e5f",
        "type": "booking.created", "occurred_at": "2026-11-21T18:00:00Z", "source": "guest",
        "channel": "web", "idempotency_key": "req-7f3a",
        "booking": {"booking_id": "b-1001", "restaurant_id": "r-ember",
                    "booking_date": "2026-12-01", "start_time": "19:00", "end_time": None,
                    "party_size": 4, "customer_name": "Ada Lovelace",
                    "customer_email": "ada@example.com", "customer_phone": None,
                    "seating_preference": "any", "notes": None},
    },
    STATUS.name: {
        "event_id": "0b7a4f8e-5d2c-5e1f-8a3b-9c4d2e1f0a6b", "type": "booking.confirmed",
        "occurred_at": "2026-11-21T18:00:01.250000Z", "booking_id": "b-1001",
        "restaurant_id": "r-ember", "status": "confirmed",
        "pending_ref": "c1f0e2d3-4b5a-4c6d-8e7f-9a0b1c2d3e4f", "reason": "created",
        "variant": "standard", "table_ids": ["t4", "t5"],
        "caused_by": "5b0d6f0e-3c1e-4d57-9a51-3f0c1b2d4e5f", "booking_version": 2,
        "failure_reason": None,
    },
    NOTIFICATION.name: {
        "notification_id": "7e6d5c4b-3a29-5180-9f8e-7d6c5b4a3928", "booking_id": "b-1001",
        "restaurant_id": "r-ember", "kind": "confirmed", "channel": "email",
        "to": "ada@example.com", "pending_ref": "c1f0e2d3-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
        "status": "queued", "reason": None, "due_at": "2026-11-21T18:00:01.250000Z",
        "occurred_at": "2026-11-21T18:00:01.300000Z",
    },
    OPS.name: {
        "event_type": "auto_assign.failed", "occurred_at": "2026-11-21T18:01:06Z",
        "severity": "warning", "booking_id": "b-1002", "restaurant_id": "r-ember",
        "context": {"modification": False, "attempts": 4},
    },
    ALLOCATION.name: {
        "restaurant_id": "r-ember", "reason": "retry", "booking_id": "b-1002",
        "pending_ref": "d2e3f4a5-b6c7-4d8e-9f0a-1b2c3d4e5f60", "attempt": 2,
        "booking_date": None, "request_id": "3c2b1a09-8f7e-5d6c-9b4a-392817161514",
        "requested_at": "2026-11-21T18:00:06Z",
    },
    DEAD_LETTER.name: {
        dl.H_ORIGINAL_TOPIC: "seatflow.booking-changes", dl.H_ORIGINAL_PARTITION: "3",
        dl.H_ORIGINAL_OFFSET: "1042", dl.H_ORIGINAL_TIMESTAMP: "1795284000000",
        dl.H_STAGE: "validate", dl.H_EXCEPTION_CLASS: "pydantic_core._pydantic_core.ValidationError",
        dl.H_EXCEPTION_MESSAGE: "booking.party_size: Input should be greater than or equal to 1",
        dl.H_ATTEMPTS: "1", dl.H_FAILED_AT: "2026-11-21T18:00:00.512Z",
    },
}


# --- AsyncAPI -------------------------------------------------------------------------------


def _camel(topic: Topic) -> str:
    head, *rest = topic.value.split("-")
    return head + "".join(part.title() for part in rest)


def _payload(ref: str) -> dict[str, Any]:
    return {"schemaFormat": SCHEMA_FORMAT, "schema": {"$ref": f"./{ref}"}}


def _message(channel: Channel) -> dict[str, Any]:
    m = channel.message
    out: dict[str, Any] = {"name": m.name, "title": m.name, "summary": m.summary}
    if m is DEAD_LETTER:
        out["contentType"] = "application/octet-stream"
        out["headers"] = _payload(m.file)
        out["payload"] = {"schemaFormat": SCHEMA_FORMAT, "schema": {
            "description": "the original message's value bytes, unchanged (may not be JSON)"}}
        out["examples"] = [{"name": "validation-failure", "headers": EXAMPLES[m.name]}]
    else:
        out["contentType"] = "application/json"
        out["payload"] = _payload(m.file)
        out["examples"] = [{"name": "contract", "payload": EXAMPLES[m.name]}]
    out["bindings"] = {"kafka": {"key": {"type": "string", "description": channel.key},
                                 "bindingVersion": KAFKA_BINDING_VERSION}}
    return out


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel in CHANNELS:
        cid = _camel(channel.topic)
        policy = "compact" if channel.topic in COMPACTED else "delete"
        channels[cid] = {
            "address": "{prefix}" + channel.topic.value,
            "title": channel.topic.value,
            "description": f"Key: {channel.key}. Produced by {channel.producers}; "
                           f"consumed by {channel.consumers}.",
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
            "messages": {channel.message.name: {
                "$ref": f"#/components/messages/{channel.message.name}"}},
            "bindings": {"kafka": {"topicConfiguration": {"cleanup.policy": [policy]},
                                   "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        messages[channel.message.name] = _message(channel)
        for action, does in (("send", channel.seatflow_sends),
                             ("receive", channel.seatflow_receives)):
            if does:
                verb = "publishes to" if action == "send" else "consumes"
                operations[f"{action}{cid[0].upper()}{cid[1:]}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{cid}"},
                    "summary": f"seatflow {verb} {channel.topic.value}",
                    "messages": [{"$ref": f"#/channels/{cid}/messages/{channel.message.name}"}],
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "seatflow",
            "version": f"{CONTRACT_REVISION}.0.0",
            "description": (
                f"seatflow's topics, contract revision {CONTRACT_REVISION} (docs/interface.md). "
                "Operations are seatflow's: `send` = seatflow produces, `receive` = seatflow "
                "consumes. Payload schemas are JSON Schema draft 2020-12, one file per message "
                "beside this document; generated by `seatflow schema`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "Any Kafka cluster: SEATFLOW_KAFKA_BOOTSTRAP, with "
                               "SEATFLOW_KAFKA_SECURITY_PROTOCOL and SEATFLOW_KAFKA_SASL_* "
                               "for TLS and SASL (docs/deployment.md, Managed Kafka).",
                "variables": {"bootstrap": {"default": "127.0.0.1:19092"}},
                "security": [{"$ref": f"#/components/securitySchemes/{name}"}
                             for name in ("plain", "scramSha256", "scramSha512", "mutualTls")],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {"prefix": {"default": DEFAULT_PREFIX,
                                      "description": "SEATFLOW_TOPIC_PREFIX"}},
            "messages": messages,
            "securitySchemes": {
                "plain": {"type": "plain", "description": "SASL PLAIN (use with TLS)"},
                "scramSha256": {"type": "scramSha256", "description": "SASL SCRAM-SHA-256"},
                "scramSha512": {"type": "scramSha512", "description": "SASL SCRAM-SHA-512"},
                "mutualTls": {"type": "X509", "description": "TLS client certificate"},
            },
        },
    }


# --- files ----------------------------------------------------------------------------------


def render() -> dict[str, str]:
    """File name -> content of every generated file (deterministic: the drift test compares)."""
    files = {m.file: json.dumps(m.schema(), indent=2, ensure_ascii=False) + "\n"
             for m in MESSAGES}
    files[ASYNCAPI_FILE] = (
        "# Generated by `seatflow schema` from models/ and config/topics.py: do not edit.\n"
        + yaml.safe_dump(asyncapi(), sort_keys=False, allow_unicode=True, width=100)
    )
    return files


def write_schemas(out: Path = DEFAULT_OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
