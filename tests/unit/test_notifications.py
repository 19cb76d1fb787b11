"""The email decision table (docs/interface.md §4 "Emails"; domain/notifications.py), row by row."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time

import pytest

from domain.model import BookingState, EpisodeKind, NotificationIntent, Status, StatusChange
from domain.notifications import ALL_KINDS, PENDING_KINDS, decide_notifications

REF = "ref-2"
CONTRACT_KINDS = {
    "request_received",
    "confirmed",
    "modification_pending",
    "modification_confirmed",
    "cancelled",
    "allocation_failed",
}


def booking(status: Status, episode_kind: EpisodeKind = "created") -> BookingState:
    return BookingState(
        booking_id="b-1001",
        restaurant_id="r-ember",
        status=status,
        pending_ref="ref-1",
        episode_kind=episode_kind,
        episode_caused_by="e-1",
        booking_date=date(2026, 12, 1),
        start_time=time(19, 0),
        requested_end_time=None,
        end_time=time(20, 15),
        party_size=4,
        customer_name="Ada Lovelace",
        customer_email="ada@example.com",
        customer_phone=None,
    )


def transition(type_: str, status: Status) -> StatusChange:
    return StatusChange(type_, status, REF, None, "e-2")  # type: ignore[arg-type]


def guest(kind: str, held: bool) -> tuple[NotificationIntent, ...]:
    return (NotificationIntent(kind, "guest", REF, held),)


# (previous state, new state, transition) -> (intents, cancel_held)
TABLE = [
    pytest.param(
        None,
        booking("pending"),
        transition("booking.pending", "pending"),
        guest("request_received", held=True),
        False,
        id="new-booking-pending",
    ),
    pytest.param(
        booking("confirmed"),
        booking("pending", "modification"),
        transition("booking.pending", "pending"),
        guest("modification_pending", held=True),
        False,
        id="confirmed-realigned-pending",
    ),
    pytest.param(
        booking("pending"),
        booking("pending"),
        transition("booking.pending", "pending"),
        (),
        False,
        id="pending-realigned-pending-sends-nothing",
    ),
    pytest.param(
        booking("pending", "modification"),
        booking("pending", "modification"),
        transition("booking.pending", "pending"),
        (),
        False,
        id="pending-modification-realigned-sends-nothing",
    ),
    pytest.param(
        booking("pending"),
        booking("confirmed"),
        transition("booking.confirmed", "confirmed"),
        guest("confirmed", held=False),
        True,
        id="new-booking-confirmed",
    ),
    pytest.param(
        booking("pending", "modification"),
        booking("confirmed", "modification"),
        transition("booking.confirmed", "confirmed"),
        guest("modification_confirmed", held=False),
        True,
        id="modification-confirmed",
    ),
    pytest.param(
        booking("pending"),
        booking("cancelled"),
        transition("booking.cancelled", "cancelled"),
        guest("cancelled", held=False),
        True,
        id="pending-cancelled",
    ),
    pytest.param(
        booking("confirmed"),
        booking("cancelled"),
        transition("booking.cancelled", "cancelled"),
        guest("cancelled", held=False),
        True,
        id="confirmed-cancelled",
    ),
    pytest.param(
        booking("pending"),
        booking("pending"),
        transition("booking.allocation_failed", "pending"),
        (NotificationIntent("allocation_failed", "restaurant", REF, False),),
        False,
        id="retries-used-up",
    ),
    pytest.param(
        booking("pending", "modification"),
        booking("pending", "modification"),
        transition("booking.allocation_failed", "pending"),
        (NotificationIntent("allocation_failed", "restaurant", REF, False),),
        False,
        id="modification-retries-used-up",
    ),
]


@pytest.mark.parametrize(("prev", "new", "change", "intents", "cancel_held"), TABLE)
def test_decision_table(
    prev: BookingState | None,
    new: BookingState,
    change: StatusChange,
    intents: tuple[NotificationIntent, ...],
    cancel_held: bool,
) -> None:
    plan = decide_notifications(prev, new, change)
    assert plan.intents == intents
    assert plan.cancel_held is cancel_held


def test_confirmation_kind_follows_how_the_episode_began() -> None:
    # A booking confirmed before, edited while still pending: its episode began as a
    # modification, so the confirmation is `modification_confirmed` whatever `prev` says.
    prev = replace(booking("pending", "modification"), ever_confirmed=True)
    plan = decide_notifications(
        prev, replace(prev, status="confirmed"), transition("booking.confirmed", "confirmed")
    )
    assert [i.kind for i in plan.intents] == ["modification_confirmed"]


def test_intents_name_the_transitions_pending_ref() -> None:
    change = StatusChange("booking.pending", "pending", "ref-xyz", "created", "e-9")
    [intent] = decide_notifications(None, booking("pending"), change).intents
    assert intent.pending_ref == "ref-xyz"


def test_unknown_transition_is_refused() -> None:
    with pytest.raises(ValueError, match="booking.exploded"):
        decide_notifications(None, booking("pending"), transition("booking.exploded", "pending"))


def test_kinds_are_the_contracts() -> None:
    assert set(ALL_KINDS) == CONTRACT_KINDS
    assert set(PENDING_KINDS) == {"request_received", "modification_pending"}


def test_only_pending_emails_are_held() -> None:
    for prev, new, change, _, _ in (p.values for p in TABLE):
        for intent in decide_notifications(prev, new, change).intents:
            assert intent.hold is (intent.kind in PENDING_KINDS), intent
