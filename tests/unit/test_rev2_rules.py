"""Contract revision 2's pure rules (issue #11): past midnight, kept contact details,
booking_version, strict JSON and text, dead letters cut to fit, allocation attempt identity.
"""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from pydantic import ValidationError

from domain import allocation
from domain.lifecycle import apply_allocation, apply_change
from domain.walkins import resolve_contact
from models.events import BookingChange
from models.restaurant import RestaurantConfig, Service
from producers.publisher import make_cancel, make_change
from streams.deadletter import (
    H_VALUE_TRUNCATED,
    SourceMessage,
    build_dead_letter,
    dead_letter_size,
    fit_dead_letter,
)
from streams.guard import DecodeError, decode_json

DAY = date(2031, 3, 5)
NEXT = date(2031, 3, 6)


def bar(**extra) -> RestaurantConfig:
    """One table, a bar service that runs past midnight (18:00-02:00)."""
    return RestaurantConfig.model_validate({
        "restaurant_id": "r-bar", "name": "Bar", "slug": "bar", "timezone": "Europe/London",
        "tables": [{"table_id": "t1", "capacity": 4}],
        "services": [{"name": "late", "start": "18:00", "end": "02:00", "allow_overrun": False}],
        **extra,
    })


def created(**fields) -> BookingChange:
    base = {"booking_date": DAY.isoformat(), "start_time": "23:30", "end_time": "01:00",
            "party_size": 2, "customer_name": "Ada", "customer_email": "ada@example.com",
            "customer_phone": "+44 1"}
    return make_change("booking.created", "b-1", "r-bar", **{**base, **fields})


def updated(**fields) -> BookingChange:
    base = {"booking_date": DAY.isoformat(), "start_time": "23:30", "end_time": "01:00",
            "party_size": 2, "customer_name": "Ada", "customer_email": "ada@example.com",
            "customer_phone": "+44 1"}
    return make_change("booking.updated", "b-1", "r-bar", **{**base, **fields})


# --- past midnight (docs/interface.md §2, §3 rev. 2) ------------------------------------------------------


def test_an_end_earlier_than_the_start_is_accepted_as_the_next_day() -> None:
    change = created(start_time="23:30", end_time="01:00")
    assert change.booking.end_time == time(1, 0)


def test_an_end_equal_to_the_start_is_invalid_and_names_the_field() -> None:
    with pytest.raises(ValidationError, match="end_time"):
        created(start_time="19:00", end_time="19:00")


def test_a_service_whose_end_is_earlier_than_its_start_runs_past_midnight() -> None:
    late = Service(name="late", start="18:00", end="02:00")
    assert late.contains(time(23, 0)) and late.contains(time(0, 30))
    assert not late.contains(time(2, 0)) and not late.contains(time(12, 0))
    with pytest.raises(ValidationError, match="late"):
        Service(name="late", start="18:00", end="18:00")


def test_a_window_past_midnight_ends_on_the_next_day() -> None:
    window = allocation.booking_window(bar(), DAY, time(23, 30), time(1, 0), 2)
    assert isinstance(window, allocation.Window)
    assert window.start == datetime(2031, 3, 5, 23, 30)
    assert window.end == datetime(2031, 3, 6, 1, 0)
    assert window.blocked_until == datetime(2031, 3, 6, 1, 5)


def test_an_early_morning_booking_belongs_to_the_service_that_began_the_evening_before() -> None:
    # 00:30 on the 6th is inside the late service that began at 18:00 on the 5th; the
    # service ends at 02:00 on the 6th, and allow_overrun=false clamps there.
    window = allocation.booking_window(bar(), NEXT, time(0, 30), time(3, 0), 2)
    assert isinstance(window, allocation.Window)
    assert window.service == "late"
    assert window.service_start == datetime(2031, 3, 5, 18, 0)
    assert window.service_end == datetime(2031, 3, 6, 2, 0)
    assert window.end == datetime(2031, 3, 6, 2, 0)


def test_a_late_booking_blocks_its_table_for_an_early_one_on_the_next_date() -> None:
    cfg = bar()
    layout = allocation.Layout.from_config(cfg)
    late = allocation.booking_window(cfg, DAY, time(23, 30), time(1, 0), 2)
    early = allocation.booking_window(cfg, NEXT, time(0, 30), None, 2)
    assert isinstance(late, allocation.Window) and isinstance(early, allocation.Window)
    held = allocation.plan_occupancy(allocation.Plan(("t1",), 4), late)
    result = allocation.allocate(layout, 2, early, held)
    assert isinstance(result, allocation.AllocationFailure)
    assert result.reason == allocation.NO_CAPACITY


def test_cancelling_a_booking_past_midnight_releases_capacity_on_both_dates() -> None:
    cfg = bar()
    new = apply_change(None, created(), _contact(created()), cfg=cfg, auto_assign=True).state
    assert new is not None
    confirmed = apply_allocation(new, allocation.Plan(("t1",), 4), reason="created",
                                 retry_delays_s=[1.0]).state
    assert confirmed is not None
    decision = apply_change(confirmed, make_cancel("b-1", "r-bar"), None, cfg=cfg,
                            auto_assign=True)
    assert [day for _, day in decision.capacity_released] == [DAY, NEXT]


def test_cancelling_an_evening_booking_releases_only_its_date() -> None:
    cfg = bar()
    change = created(start_time="19:00", end_time="20:00")
    new = apply_change(None, change, _contact(change), cfg=cfg, auto_assign=True).state
    assert new is not None
    confirmed = apply_allocation(new, allocation.Plan(("t1",), 4), reason="created",
                                 retry_delays_s=[1.0]).state
    assert confirmed is not None
    decision = apply_change(confirmed, make_cancel("b-1", "r-bar"), None, cfg=cfg,
                            auto_assign=True)
    assert [day for _, day in decision.capacity_released] == [DAY]


# --- contact details are never erased by an edit (§4 rev. 2) -------------------------------------


def _contact(change: BookingChange, stored=None):
    b = change.booking
    return resolve_contact(
        source=change.source, customer_email=b.customer_email, customer_phone=b.customer_phone,
        idempotency_key=change.idempotency_key, booking_id=b.booking_id,
        restaurant_contact_email="host@bar.example",
        kept_email=stored.customer_email if stored else None,
        kept_phone=stored.customer_phone if stored else None,
    )


@pytest.mark.parametrize("source", ["guest", "ops"])
@pytest.mark.parametrize("blank", [None, "", "   "])
def test_an_edit_with_a_blank_email_or_phone_keeps_the_stored_value(source, blank) -> None:
    cfg = bar()
    create = created(source=source)
    stored = apply_change(None, create, _contact(create), cfg=cfg, auto_assign=True).state
    assert stored is not None
    edit = updated(source=source, customer_email=blank, customer_phone=blank, notes="window")
    after = apply_change(stored, edit, _contact(edit, stored), cfg=cfg, auto_assign=True).state
    assert after is not None
    assert after.customer_email == "ada@example.com"
    assert after.customer_phone == "+44 1"
    assert after.notes == "window"


def test_an_edit_with_a_new_email_replaces_it() -> None:
    cfg = bar()
    create = created()
    stored = apply_change(None, create, _contact(create), cfg=cfg, auto_assign=True).state
    edit = updated(customer_email="new@example.com")
    after = apply_change(stored, edit, _contact(edit, stored), cfg=cfg, auto_assign=True).state
    assert after is not None and after.customer_email == "new@example.com"


# --- booking_version (§5 rev. 2) -------------------------------------------------------------


def test_every_status_event_carries_a_version_that_grows_per_booking() -> None:
    cfg = bar()
    create = created(start_time="19:00", end_time=None)
    d1 = apply_change(None, create, _contact(create), cfg=cfg, auto_assign=True)
    d2 = apply_allocation(d1.state, allocation.Plan(("t1",), 4), reason="created",
                          retry_delays_s=[1.0])
    notes = updated(start_time="19:00", end_time=None, notes="quiet")
    d3 = apply_change(d2.state, notes, _contact(notes, d2.state), cfg=cfg, auto_assign=True)
    move = updated(start_time="20:00", end_time=None)
    d4 = apply_change(d3.state, move, _contact(move, d3.state), cfg=cfg, auto_assign=True)
    d5 = apply_allocation(d4.state, allocation.Plan(("t1",), 4), reason="modification",
                          retry_delays_s=[1.0])
    d6 = apply_change(d5.state, make_cancel("b-1", "r-bar"), None, cfg=cfg, auto_assign=True)
    versions = [c.booking_version for d in (d1, d2, d3, d4, d5, d6) for c in d.status_changes]
    assert versions == [1, 2, 3, 4, 5]
    assert d6.state is not None and d6.state.version == 5
    assert d3.status_changes == []  # a notes-only edit publishes nothing and bumps nothing


def test_a_failed_attempt_that_schedules_a_retry_publishes_nothing_and_keeps_the_version() -> None:
    cfg = bar()
    create = created(start_time="19:00", end_time=None)
    d1 = apply_change(None, create, _contact(create), cfg=cfg, auto_assign=True)
    failure = allocation.AllocationFailure(allocation.NO_CAPACITY, "full")
    d2 = apply_allocation(d1.state, failure, reason="created", retry_delays_s=[1.0])
    assert d2.status_changes == [] and d2.state is not None and d2.state.version == 1
    d3 = apply_allocation(d2.state, failure, reason="retry", retry_delays_s=[1.0])
    assert [c.booking_version for c in d3.status_changes] == [2]


# --- allocation attempts have an identity (§4 rev. 2 "Retries") -------------------------------


def test_each_allocation_ask_names_its_attempt() -> None:
    cfg = bar()
    create = created(start_time="19:00", end_time=None)
    d1 = apply_change(None, create, _contact(create), cfg=cfg, auto_assign=True)
    assert d1.allocation is not None and d1.allocation.attempt == 1
    failure = allocation.AllocationFailure(allocation.NO_CAPACITY, "full")
    d2 = apply_allocation(d1.state, failure, reason="created", retry_delays_s=[1.0, 2.0])
    assert d2.state is not None and d2.state.attempts == 1
    move = updated(start_time="20:00", end_time=None)
    d3 = apply_change(d2.state, move, _contact(move, d2.state), cfg=cfg, auto_assign=True)
    assert d3.allocation is not None and d3.allocation.attempt == 1  # a new episode


# --- strict input: JSON and text (§3: RFC 8259; issue #11 item 11) -------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_that_are_not_json_are_refused_at_decode(constant: str) -> None:
    raw = b'{"schema_version": 1, "booking": {"party_size": ' + constant.encode() + b"}}"
    with pytest.raises(DecodeError, match=constant.lstrip("-")):
        decode_json(raw)


@pytest.mark.parametrize("bad", ["Ada\x00Lovelace", "Ada \ud800"])
def test_text_that_postgresql_cannot_store_is_refused_and_names_the_field(bad: str) -> None:
    with pytest.raises(ValidationError, match="booking.customer_name"):
        created(customer_name=bad)


def test_a_nul_in_a_restaurant_config_names_the_field() -> None:
    with pytest.raises(ValidationError, match="name"):
        bar(name="Bar\x00")


# --- dead letters cut to fit (§5 rev. 2) ----------------------------------------------------------


def _source(value: bytes, key: bytes = b"b-1") -> SourceMessage:
    return SourceMessage(topic="p.booking-changes", partition=3, offset=41,
                         timestamp_ms=1_700_000_000_000, key=key, value=value,
                         headers=[("trace", b"abc")])


def _letter(value: bytes, key: bytes = b"b-1"):
    return build_dead_letter(_source(value, key), "validate", ValueError("too big"),
                             datetime(2031, 1, 1))


def test_a_dead_letter_that_fits_is_carried_whole_without_the_truncation_header() -> None:
    letter = fit_dead_letter(_letter(b'{"x": 1}'), max_bytes=10_000)
    assert letter is not None
    assert letter.value == b'{"x": 1}'
    assert H_VALUE_TRUNCATED not in dict(letter.headers)


@pytest.mark.parametrize("size", [1_200_000, 5_000_000])
def test_an_oversized_value_is_cut_to_fit_and_says_its_original_size(size: int) -> None:
    value = b"{" + b"x" * (size - 2) + b"}"
    letter = fit_dead_letter(_letter(value), max_bytes=1_000_000)
    assert letter is not None
    assert dead_letter_size(letter) <= 1_000_000
    assert value.startswith(letter.value) and len(letter.value) > 900_000
    headers = dict(letter.headers)
    assert headers[H_VALUE_TRUNCATED] == str(size).encode()
    assert headers["x-dlq-stage"] == b"validate" and headers["trace"] == b"abc"


def test_a_dead_letter_whose_key_alone_does_not_fit_cannot_be_published() -> None:
    assert fit_dead_letter(_letter(b"{}", key=b"k" * 2_000_000), max_bytes=1_000_000) is None
