"""Contract input schemas (docs/interface.md §§2-3): what is accepted, and errors that name the field."""

from __future__ import annotations

import copy
import json
from datetime import date, time
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from models.common import format_error
from models.events import BookingChange
from models.restaurant import RestaurantConfig

EVENT: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "5b0d6f0e-0000-4000-8000-000000000001",
    "type": "booking.created",
    "occurred_at": "2026-11-21T18:00:00Z",
    "source": "guest",
    "channel": "web",
    "idempotency_key": "req-7f3a",
    "booking": {
        "booking_id": "b-1001",
        "restaurant_id": "r-ember",
        "booking_date": "2026-12-01",
        "start_time": "19:00",
        "end_time": None,
        "party_size": 4,
        "customer_name": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "customer_phone": None,
        "seating_preference": "any",
        "notes": None,
    },
}

RESTAURANT: dict[str, Any] = {
    "restaurant_id": "r-ember",
    "name": "Ember & Oak",
    "slug": "ember-oak",
    "timezone": "Europe/London",
    "contact_email": "hello@ember.example",
    "contact_phone": "+44 20 7946 0000",
    "tables": [
        {"table_id": "t1", "number": "1", "zone": "main", "capacity": 2,
         "min_party": 1, "max_party": 2, "active": True},
        {"table_id": "t2", "number": "2", "zone": "main", "capacity": 4,
         "min_party": 1, "max_party": 4, "active": True},
    ],
    "adjacency": [["t1", "t2"]],
    "services": [
        {"name": "lunch", "start": "12:00", "end": "15:00", "allow_overrun": True},
        {"name": "dinner", "start": "17:00", "end": "22:00", "allow_overrun": False},
    ],
    "turn_minutes": {"2": 60, "4": 75, "6": 85, "8": 90},
    "buffer_after_minutes": 5,
    "max_tables_per_booking": 3,
}

_MISSING = object()


def edited(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with `path` ("booking.party_size", "tables.0.capacity") set,
    or removed when `value` is _MISSING."""
    doc = copy.deepcopy(base)
    *parents, last = path.split(".")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is _MISSING:
        del target[last]
    else:
        target[last] = value
    return doc


def rejection(model: type[BaseModel], doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(doc)
    return format_error(caught.value)


# --- booking changes: accepted -----------------------------------------------------------------


def test_contract_example_is_accepted() -> None:
    change = BookingChange.model_validate(EVENT)
    assert change.type == "booking.created"
    assert change.booking.booking_date == date(2026, 12, 1)
    assert change.booking.start_time == time(19, 0)
    assert change.booking.end_time is None
    assert change.booking.party_size == 4


def test_change_parses_from_json_bytes() -> None:
    change = BookingChange.model_validate_json(json.dumps(EVENT).encode())
    assert change.booking.booking_id == "b-1001"


def test_cancel_needs_only_the_ids() -> None:
    doc = {**EVENT, "type": "booking.cancelled",
           "booking": {"booking_id": "b-1001", "restaurant_id": "r-ember"}}
    change = BookingChange.model_validate(doc)
    assert (change.booking.booking_id, change.booking.restaurant_id) == ("b-1001", "r-ember")
    assert change.booking.party_size is None


@pytest.mark.parametrize("field", ["channel", "idempotency_key"])
def test_optional_event_fields_may_be_missing(field: str) -> None:
    assert getattr(BookingChange.model_validate(edited(EVENT, field, _MISSING)), field) is None


@pytest.mark.parametrize(
    "field", ["end_time", "customer_email", "customer_phone", "seating_preference", "notes"]
)
def test_optional_booking_fields_may_be_missing(field: str) -> None:
    change = BookingChange.model_validate(edited(EVENT, f"booking.{field}", _MISSING))
    assert getattr(change.booking, field) is None


def test_unknown_fields_are_tolerated() -> None:
    doc = {**EVENT, "trace_id": "abc", "booking": {**EVENT["booking"], "vip": True}}
    assert BookingChange.model_validate(doc).event_id == EVENT["event_id"]


def test_walkin_blank_email_is_accepted() -> None:
    doc = edited(edited(EVENT, "source", "ops"), "booking.customer_email", "")
    assert BookingChange.model_validate(doc).booking.customer_email == ""


# --- booking changes: rejected, naming the field -----------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("type", "booking.deleted"),
        ("type", "created"),
        ("schema_version", 2),
        ("schema_version", 0),
        ("source", "partner"),
        ("occurred_at", "yesterday"),
        ("booking.party_size", 0),
        ("booking.party_size", -2),
        ("booking.party_size", "four"),
        ("booking.booking_date", "2026-13-01"),
        ("booking.booking_date", "2026-02-30"),
        ("booking.booking_date", "01/12/2026"),
        ("booking.booking_date", "2026-12-1"),
        ("booking.start_time", "25:00"),
        ("booking.start_time", "7pm"),
        ("booking.start_time", "19:60"),
        ("booking.start_time", "1900"),
        ("booking.start_time", "19:00:00"),
        ("booking.start_time", "7:00"),
        ("booking.end_time", "24:00"),
        ("booking.booking_id", ""),
    ],
)
def test_bad_value_is_rejected_naming_the_field(path: str, value: Any) -> None:
    assert rejection(BookingChange, edited(EVENT, path, value)).startswith(f"{path}:")


@pytest.mark.parametrize(
    "path",
    [
        "schema_version",
        "event_id",
        "type",
        "occurred_at",
        "source",
        "booking",
        "booking.booking_id",
        "booking.restaurant_id",
    ],
)
def test_missing_field_is_rejected_naming_it(path: str) -> None:
    text = rejection(BookingChange, edited(EVENT, path, _MISSING))
    assert text.startswith(f"{path}:"), text
    assert "required" in text.lower()


@pytest.mark.parametrize("type_", ["booking.created", "booking.updated"])
@pytest.mark.parametrize("field", ["booking_date", "start_time", "party_size", "customer_name"])
def test_full_booking_required_unless_cancelled(type_: str, field: str) -> None:
    doc = edited(edited(EVENT, "type", type_), f"booking.{field}", _MISSING)
    assert f"booking.{field}" in rejection(BookingChange, doc)


def test_cancel_still_needs_the_restaurant() -> None:
    doc = {**EVENT, "type": "booking.cancelled", "booking": {"booking_id": "b-1001"}}
    assert rejection(BookingChange, doc).startswith("booking.restaurant_id:")


def test_end_equal_to_start_is_rejected_naming_end_time() -> None:
    # Contract rev. 2: an end earlier than the start ends the next day; equal is no length.
    doc = edited(edited(EVENT, "booking.start_time", "19:00"), "booking.end_time", "19:00")
    assert "booking.end_time" in rejection(BookingChange, doc)


def test_every_problem_is_reported() -> None:
    doc = edited(edited(EVENT, "booking.party_size", 0), "booking.start_time", "7pm")
    text = rejection(BookingChange, doc)
    assert "booking.party_size" in text and "booking.start_time" in text


def test_not_json_is_rejected() -> None:
    with pytest.raises(ValidationError):
        BookingChange.model_validate_json(b"{not json")


# --- restaurant configuration ------------------------------------------------------------------


def test_restaurant_contract_example_is_accepted() -> None:
    cfg = RestaurantConfig.model_validate(RESTAURANT)
    assert [t.table_id for t in cfg.tables] == ["t1", "t2"]
    assert cfg.services[1].start == time(17, 0)
    assert cfg.turn_for(3) == 75


def test_restaurant_optional_fields_default() -> None:
    doc = {k: v for k, v in RESTAURANT.items()
           if k not in ("turn_minutes", "buffer_after_minutes", "max_tables_per_booking",
                        "contact_email", "contact_phone")}
    cfg = RestaurantConfig.model_validate(doc)
    assert (cfg.buffer_after_minutes, cfg.max_tables_per_booking) == (5, 3)
    assert cfg.contact_email is None


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("tables.0.capacity", 0, "tables.0.capacity"),
        ("tables.1.capacity", -4, "tables.1.capacity"),
        ("services.0.start", "7pm", "services.0.start"),
        ("services.1.end", "22:75", "services.1.end"),
        ("services.1.start", "24:00", "services.1.start"),
        ("timezone", "Mars/Olympus", "timezone"),
        ("buffer_after_minutes", -1, "buffer_after_minutes"),
        ("max_tables_per_booking", 0, "max_tables_per_booking"),
        ("tables", [], "tables"),
    ],
)
def test_bad_restaurant_value_is_rejected_naming_the_field(
    path: str, value: Any, named: str
) -> None:
    assert rejection(RestaurantConfig, edited(RESTAURANT, path, value)).startswith(f"{named}:")


def test_adjacency_to_unknown_table_is_rejected() -> None:
    doc = edited(RESTAURANT, "adjacency", [["t1", "t2"], ["t2", "t9"]])
    text = rejection(RestaurantConfig, doc)
    assert "adjacency[1]" in text and "'t9'" in text


def test_min_party_above_max_party_is_rejected() -> None:
    doc = edited(edited(RESTAURANT, "tables.1.min_party", 5), "tables.1.max_party", 4)
    text = rejection(RestaurantConfig, doc)
    assert text.startswith("tables.1:") and "min_party" in text


def test_min_party_above_capacity_without_max_party_is_rejected() -> None:
    table = {"table_id": "t3", "zone": "main", "capacity": 2, "min_party": 3}
    text = rejection(RestaurantConfig, {**RESTAURANT, "tables": [*RESTAURANT["tables"], table]})
    assert text.startswith("tables.2:") and "min_party" in text


def test_duplicate_table_is_rejected() -> None:
    doc = edited(RESTAURANT, "tables.1.table_id", "t1")
    assert "duplicate table_id 't1'" in rejection(RestaurantConfig, doc)


def test_service_ending_where_it_starts_is_rejected() -> None:
    # Contract rev. 2: an end earlier than the start runs past midnight; equal is no length.
    doc = edited(RESTAURANT, "services.0.end", RESTAURANT["services"][0]["start"])
    text = rejection(RestaurantConfig, doc)
    assert text.startswith("services.0:") and "'lunch'" in text
