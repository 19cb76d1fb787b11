"""Deterministic ids: the fast derivation must equal uuid5, so ids stay stable across versions."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from models.events import _NAMESPACE, BookingStatusEvent, NotificationRecord, derived_id


@given(st.lists(st.one_of(st.text(), st.integers(), st.none()), min_size=1, max_size=4))
def test_derived_id_equals_uuid5(parts: list[object]) -> None:
    expected = str(uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts)))
    assert derived_id(*parts) == expected


def test_ids_depend_on_every_part() -> None:
    base = BookingStatusEvent.make_id("b-1", "booking.confirmed", "ref-a")
    assert base == BookingStatusEvent.make_id("b-1", "booking.confirmed", "ref-a")
    assert base != BookingStatusEvent.make_id("b-2", "booking.confirmed", "ref-a")
    assert base != BookingStatusEvent.make_id("b-1", "booking.pending", "ref-a")
    assert base != BookingStatusEvent.make_id("b-1", "booking.confirmed", "ref-b")
    assert NotificationRecord.make_id("b-1", "confirmed", "ref-a") != NotificationRecord.make_id(
        "b-1", "modification_confirmed", "ref-a"
    )
