"""domain.model.evolve and assemble: the cheap copies of frozen records behave as
dataclasses.replace and the constructor do."""

from __future__ import annotations

import dataclasses
from datetime import date, time

import pytest

from domain.model import BookingState, StatusChange, assemble, evolve


def _state() -> BookingState:
    return BookingState(
        booking_id="b-1", restaurant_id="r-1", status="pending", pending_ref="p-1",
        episode_kind="created", episode_caused_by="e-1", booking_date=date(2026, 12, 24),
        start_time=time(19), requested_end_time=None, end_time=None, party_size=4,
        customer_name="Ada", customer_email="ada@example.com", customer_phone=None,
        table_ids=("t1",),
    )


def test_evolve_is_dataclasses_replace() -> None:
    state = _state()
    changes = {"status": "confirmed", "table_ids": ("t4", "t5"), "version": 3}
    new = evolve(state, **changes)
    assert new == dataclasses.replace(state, **changes)
    assert type(new) is BookingState
    assert state.status == "pending" and state.table_ids == ("t1",)  # the original stays


def test_evolve_without_changes_is_an_equal_copy() -> None:
    change = StatusChange("booking.pending", "pending", "p-1", "created", "e-1")
    copy = evolve(change)
    assert copy == change and copy is not change


def test_an_evolved_record_is_still_frozen() -> None:
    new = evolve(_state(), status="confirmed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.status = "pending"  # type: ignore[misc]


def test_evolve_names_an_unknown_field() -> None:
    with pytest.raises(TypeError, match="statuss"):
        evolve(_state(), statuss="confirmed")


def test_assemble_is_the_constructor_given_every_field() -> None:
    state = _state()
    values = {f.name: getattr(state, f.name) for f in dataclasses.fields(BookingState)}
    assert assemble(BookingState, values) == state


def test_assemble_refuses_a_missing_or_unknown_field() -> None:
    values = {f.name: getattr(_state(), f.name) for f in dataclasses.fields(BookingState)}
    del values["version"]
    with pytest.raises(TypeError, match="version"):
        assemble(BookingState, values)
    with pytest.raises(TypeError, match="colour"):
        assemble(BookingState, {**values, "version": 1, "colour": "red"})
