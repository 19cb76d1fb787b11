"""Booking lifecycle (docs/interface.md §4): `apply_change` and `apply_allocation`, pure, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time
from typing import Any

import pytest

from domain.allocation import NO_CAPACITY, AllocationFailure, Plan
from domain.lifecycle import apply_allocation, apply_change, new_pending_ref, realignment_fields
from domain.model import (
    AllocationAsk,
    BookingState,
    Decision,
    NotificationIntent,
    RetrySchedule,
    StatusChange,
)
from domain.walkins import ResolvedContact, resolve_contact
from models.events import BookingChange
from models.restaurant import RestaurantConfig
from producers.publisher import make_cancel, make_change

BOOKING = "b-1001"
RESTAURANT = "r-ember"
RESTAURANT_EMAIL = "hello@ember.example"
DAY = date(2026, 12, 1)
END = time(20, 15)  # the effective end the edge derives from turn_minutes
DELAYS_S = [5.0, 15.0, 45.0]  # docs/interface.md §4 default 5000,15000,45000 ms
TABLES = ("t4", "t5")
BOOKING_FIELDS: dict[str, Any] = {
    "booking_date": DAY.isoformat(),
    "start_time": "19:00",
    "party_size": 4,
    "customer_name": "Ada Lovelace",
    "customer_email": "ada@example.com",
    "customer_phone": "+44 7700 900000",
    "notes": None,
}


# --- builders ----------------------------------------------------------------------------------


def created(**fields: Any) -> BookingChange:
    restaurant = fields.pop("restaurant_id", RESTAURANT)
    return make_change("booking.created", BOOKING, restaurant, **{**BOOKING_FIELDS, **fields})


def updated(**fields: Any) -> BookingChange:
    restaurant = fields.pop("restaurant_id", RESTAURANT)
    return make_change("booking.updated", BOOKING, restaurant, **{**BOOKING_FIELDS, **fields})


def contact_of(change: BookingChange) -> ResolvedContact:
    b = change.booking
    return resolve_contact(
        source=change.source,
        customer_email=b.customer_email,
        customer_phone=b.customer_phone,
        idempotency_key=change.idempotency_key,
        booking_id=b.booking_id,
        restaurant_contact_email=RESTAURANT_EMAIL,
    )


# Default turns (party 4: 75 min -> END), no services, 5 min buffer.
CONFIG = RestaurantConfig.model_validate({
    "restaurant_id": RESTAURANT, "name": "Ember & Oak", "slug": "ember-oak",
    "tables": [{"table_id": t, "capacity": 4} for t in TABLES],
})


def run(
    stored: BookingState | None,
    change: BookingChange,
    *,
    auto_assign: bool = True,
) -> Decision:
    """What the change agent does: resolve the contact, then apply the change."""
    cancel = change.type == "booking.cancelled"
    return apply_change(
        stored,
        change,
        None if cancel else contact_of(change),
        cfg=CONFIG,
        auto_assign=auto_assign,
    )


def allocate(
    state: BookingState,
    outcome: Plan | AllocationFailure,
    reason: str = "created",
    delays: list[float] | None = None,
) -> Decision:
    return apply_allocation(
        state,
        outcome,
        reason=reason,  # type: ignore[arg-type]
        retry_delays_s=DELAYS_S if delays is None else delays,
    )


def stored_after(decision: Decision) -> BookingState:
    assert decision.state is not None, "expected the decision to store a state"
    return decision.state


def pending_booking() -> tuple[BookingState, BookingChange]:
    change = created()
    return stored_after(run(None, change)), change


def confirmed_booking() -> tuple[BookingState, BookingChange]:
    pending, change = pending_booking()
    return stored_after(allocate(pending, Plan(TABLES, 6))), change


def modification_pending() -> tuple[BookingState, BookingChange]:
    """A confirmed booking whose date moved: pending again, episode 'modification'."""
    confirmed, _ = confirmed_booking()
    edit = updated(booking_date="2026-12-02")
    return stored_after(run(confirmed, edit)), edit


def no_capacity() -> AllocationFailure:
    return AllocationFailure(NO_CAPACITY, "no free table for 4")


def op_types(decision: Decision) -> list[str]:
    return [note.event_type for note in decision.ops]


def op(decision: Decision, event_type: str) -> dict:
    notes = [note for note in decision.ops if note.event_type == event_type]
    assert len(notes) == 1, f"expected one {event_type} ops note, got {op_types(decision)}"
    return notes[0].context


# --- pending_ref -------------------------------------------------------------------------------


def test_pending_ref_is_derived_from_booking_and_event() -> None:
    ref = new_pending_ref(BOOKING, "e-1")
    assert ref == new_pending_ref(BOOKING, "e-1")
    assert ref != new_pending_ref(BOOKING, "e-2")
    assert ref != new_pending_ref("b-other", "e-1")


def test_replaying_a_change_gives_the_same_decision() -> None:
    change = created()
    first, again = run(None, change), run(None, change)
    assert first == again
    assert stored_after(first).pending_ref == new_pending_ref(BOOKING, change.event_id)


# --- created -----------------------------------------------------------------------------------


def test_created_enters_pending_and_asks_for_allocation() -> None:
    change = created()
    decision = run(None, change, auto_assign=True)

    state = stored_after(decision)
    ref = new_pending_ref(BOOKING, change.event_id)
    assert (state.status, state.pending_ref, state.episode_kind) == ("pending", ref, "created")
    assert state.episode_caused_by == change.event_id
    assert state.table_ids == ()
    assert state.alloc_state == "queued"
    assert decision.allocation == AllocationAsk("created", ref)
    assert decision.status_changes == [
        StatusChange("booking.pending", "pending", ref, "created", change.event_id,
                     booking_version=1)
    ]
    assert decision.notifications == [NotificationIntent("request_received", "guest", ref, True)]
    assert not decision.release_tables
    assert decision.capacity_released == []


def test_created_stores_the_booking_as_described() -> None:
    state = stored_after(run(None, created(end_time=None)))
    assert (state.booking_id, state.restaurant_id) == (BOOKING, RESTAURANT)
    assert (state.booking_date, state.start_time, state.party_size) == (DAY, time(19, 0), 4)
    assert (state.requested_end_time, state.end_time) == (None, END)
    assert (state.customer_name, state.customer_email) == ("Ada Lovelace", "ada@example.com")
    assert state.attempts == 0


def test_created_without_auto_assign_stays_pending_without_allocation() -> None:
    change = created()
    decision = run(None, change, auto_assign=False)

    state = stored_after(decision)
    ref = new_pending_ref(BOOKING, change.event_id)
    assert (state.status, state.pending_ref, state.alloc_state) == ("pending", ref, "idle")
    assert decision.allocation is None
    assert [c.type for c in decision.status_changes] == ["booking.pending"]
    assert decision.notifications == [NotificationIntent("request_received", "guest", ref, True)]


# --- updated, realignment ----------------------------------------------------------------------

REALIGNING_EDITS = [
    pytest.param({"booking_date": "2026-12-02"}, "booking_date", id="date"),
    pytest.param({"start_time": "20:00"}, "start_time", id="start_time"),
    pytest.param({"end_time": "21:30"}, "requested_end_time", id="end_time"),
    pytest.param({"party_size": 6}, "party_size", id="party_size"),
    pytest.param({"restaurant_id": "r-other"}, "restaurant_id", id="restaurant"),
]


@pytest.mark.parametrize(("edit", "field"), REALIGNING_EDITS)
def test_realignment_fields_names_what_moved(edit: dict[str, Any], field: str) -> None:
    stored, _ = confirmed_booking()
    incoming = stored_after(run(None, created(**edit)))
    assert realignment_fields(stored, incoming) == [field]


@pytest.mark.parametrize("auto_assign", [True, False])
@pytest.mark.parametrize(("edit", "field"), REALIGNING_EDITS)
def test_realigning_edit_of_confirmed_booking_reenters_allocation(
    edit: dict[str, Any], field: str, auto_assign: bool
) -> None:
    stored, _ = confirmed_booking()
    change = updated(**edit)
    decision = run(stored, change, auto_assign=auto_assign)

    state = stored_after(decision)
    ref = new_pending_ref(BOOKING, change.event_id)
    assert ref != stored.pending_ref
    assert (state.status, state.pending_ref, state.table_ids) == ("pending", ref, ())
    assert (state.episode_kind, state.episode_caused_by) == ("modification", change.event_id)
    assert (state.alloc_state, state.attempts) == ("queued", 0)
    # Tables released; the capacity freed is on the OLD restaurant and date.
    assert decision.release_tables
    assert decision.capacity_released == [(RESTAURANT, DAY)]
    # Modifications always re-enter the allocator, whatever FEATURE_AUTO_ASSIGN_ON_BOOKING says.
    assert decision.allocation == AllocationAsk("modification", ref)
    assert decision.status_changes == [
        StatusChange("booking.pending", "pending", ref, "modification", change.event_id,
                     booking_version=stored.version + 1)
    ]
    assert decision.notifications == [
        NotificationIntent("modification_pending", "guest", ref, True)
    ]
    context = op(decision, "booking.modification.pending")
    assert context["changed"] == [field]
    assert context["previous_status"] == "confirmed"


def test_realigned_booking_carries_the_new_values() -> None:
    stored, _ = confirmed_booking()
    state = stored_after(
        run(stored, updated(booking_date="2026-12-03", party_size=6))
    )
    assert (state.booking_date, state.party_size, state.end_time) == (
        date(2026, 12, 3),
        6,
        time(20, 25),
    )


def test_realigning_edit_after_failed_attempts_starts_a_fresh_episode() -> None:
    stored, _ = confirmed_booking()
    tired = replace(stored, attempts=3, alloc_state="exhausted", last_failure=NO_CAPACITY)
    state = stored_after(run(tired, updated(party_size=2)))
    assert (state.attempts, state.alloc_state, state.last_failure) == (0, "queued", None)


def test_realigning_edit_of_pending_booking_sends_no_new_email() -> None:
    stored, _ = pending_booking()
    change = updated(start_time="20:30")
    decision = run(stored, change, auto_assign=False)

    state = stored_after(decision)
    ref = new_pending_ref(BOOKING, change.event_id)
    assert ref != stored.pending_ref
    assert (state.status, state.pending_ref) == ("pending", ref)
    assert state.episode_kind == "created"  # no confirmation yet: still a new booking
    assert decision.notifications == []
    assert decision.allocation == AllocationAsk("modification", ref)
    assert not decision.release_tables
    assert decision.capacity_released == []
    assert [c.type for c in decision.status_changes] == ["booking.pending"]


def test_realigning_edit_of_pending_modification_keeps_its_episode_kind() -> None:
    stored, _ = modification_pending()
    change = updated(booking_date="2026-12-02", party_size=2)
    decision = run(stored, change)

    state = stored_after(decision)
    assert state.episode_kind == "modification"
    assert state.pending_ref == new_pending_ref(BOOKING, change.event_id) != stored.pending_ref
    assert decision.notifications == []


# --- updated, details only ---------------------------------------------------------------------

DETAIL_EDITS = [
    pytest.param({"customer_name": "Ada King"}, id="name"),
    pytest.param({"customer_email": "ada.king@example.com"}, id="email"),
    pytest.param({"customer_phone": "+44 7700 900111"}, id="phone"),
    pytest.param({"notes": "Window seat"}, id="notes"),
]


@pytest.mark.parametrize("edit", DETAIL_EDITS)
def test_details_only_edit_of_confirmed_booking_is_stored_quietly(edit: dict[str, Any]) -> None:
    stored, _ = confirmed_booking()
    decision = run(stored, updated(**edit))

    state = stored_after(decision)
    for name, value in edit.items():
        assert getattr(state, name) == value
    assert (state.status, state.table_ids, state.pending_ref) == (
        "confirmed",
        TABLES,
        stored.pending_ref,
    )
    assert state.end_time == stored.end_time
    assert decision.status_changes == []
    assert decision.notifications == []
    assert not decision.cancel_held_emails
    assert decision.allocation is None
    assert not decision.release_tables
    assert decision.capacity_released == []


@pytest.mark.parametrize("edit", DETAIL_EDITS)
def test_details_only_edit_of_pending_booking_keeps_its_episode(edit: dict[str, Any]) -> None:
    stored, _ = pending_booking()
    decision = run(stored, updated(**edit))

    state = stored_after(decision)
    assert (state.status, state.pending_ref, state.alloc_state) == (
        "pending",
        stored.pending_ref,
        stored.alloc_state,
    )
    assert decision.status_changes == decision.notifications == []
    assert decision.allocation is None


def test_edit_that_changes_nothing_decides_nothing() -> None:
    stored, _ = confirmed_booking()
    assert run(stored, updated()) == Decision()


def test_redelivered_create_of_a_pending_booking_decides_nothing() -> None:
    stored, change = pending_booking()
    assert run(stored, change) == Decision()


# --- cancelled ---------------------------------------------------------------------------------


def test_cancel_of_confirmed_booking_releases_its_tables() -> None:
    stored, _ = confirmed_booking()
    cancel = make_cancel(BOOKING, RESTAURANT)
    decision = run(stored, cancel)

    state = stored_after(decision)
    assert (state.status, state.table_ids, state.alloc_state) == ("cancelled", (), "done")
    assert decision.release_tables
    assert decision.capacity_released == [(RESTAURANT, DAY)]
    assert decision.status_changes == [
        StatusChange("booking.cancelled", "cancelled", stored.pending_ref, None, cancel.event_id,
                     booking_version=stored.version + 1)
    ]
    assert decision.notifications == [
        NotificationIntent("cancelled", "guest", stored.pending_ref or "", False)
    ]
    assert decision.cancel_held_emails
    assert decision.allocation is None


def test_cancel_of_pending_booking_stops_allocation_and_frees_nothing() -> None:
    stored, _ = pending_booking()
    decision = run(stored, make_cancel(BOOKING, RESTAURANT))

    state = stored_after(decision)
    assert (state.status, state.alloc_state) == ("cancelled", "done")
    assert not decision.release_tables
    assert decision.capacity_released == []
    assert decision.cancel_held_emails  # the held request_received must not go out
    assert [n.kind for n in decision.notifications] == ["cancelled"]


def test_cancel_of_cancelled_booking_decides_nothing() -> None:
    stored, _ = confirmed_booking()
    cancelled = stored_after(run(stored, make_cancel(BOOKING, RESTAURANT)))
    assert run(cancelled, make_cancel(BOOKING, RESTAURANT)) == Decision()


def test_cancel_of_unknown_booking_changes_nothing_but_tells_ops() -> None:
    decision = run(None, make_cancel(BOOKING, RESTAURANT))
    assert decision.state is None
    assert decision.status_changes == decision.notifications == []
    assert not decision.release_tables
    assert op(decision, "booking.change_ignored")["reason"] == "unknown_booking"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda: updated(booking_date="2026-12-05"), id="realigning-edit"),
        pytest.param(lambda: updated(customer_name="Ada King"), id="details-edit"),
        pytest.param(lambda: created(), id="created-again"),
    ],
)
def test_changes_for_a_cancelled_booking_are_ignored(change: Any) -> None:
    stored, _ = confirmed_booking()
    cancelled = stored_after(run(stored, make_cancel(BOOKING, RESTAURANT)))
    decision = run(cancelled, change())

    assert decision.state is None
    assert decision.status_changes == decision.notifications == []
    assert decision.allocation is None
    assert not decision.release_tables
    assert op(decision, "booking.change_ignored")["reason"] == "booking_cancelled"


# --- apply_allocation: success -----------------------------------------------------------------


@pytest.mark.parametrize("reason", ["created", "retry", "capacity_released"])
def test_plan_confirms_a_new_booking(reason: str) -> None:
    stored, change = pending_booking()
    decision = allocate(stored, Plan(TABLES, 6), reason=reason)

    state = stored_after(decision)
    assert (state.status, state.table_ids, state.alloc_state) == ("confirmed", TABLES, "done")
    assert state.ever_confirmed
    assert state.pending_ref == stored.pending_ref
    assert decision.status_changes == [
        StatusChange(
            "booking.confirmed",
            "confirmed",
            stored.pending_ref,
            reason,  # type: ignore[arg-type]
            change.event_id,  # the change that started this episode
            variant="standard",
            table_ids=TABLES,
            booking_version=stored.version + 1,
        )
    ]
    assert decision.notifications == [
        NotificationIntent("confirmed", "guest", stored.pending_ref or "", False)
    ]
    assert decision.cancel_held_emails
    assert decision.retry is None
    attempt = op(decision, "auto_assign.attempt")
    assert (attempt["result"], attempt["modification"]) == ("confirmed", False)
    assert "booking.modification.confirmed" not in op_types(decision)


def test_plan_confirms_a_modification() -> None:
    stored, edit = modification_pending()
    decision = allocate(stored, Plan(("t1",), 4), reason="modification")

    state = stored_after(decision)
    assert (state.status, state.table_ids) == ("confirmed", ("t1",))
    [change] = decision.status_changes
    assert (change.type, change.variant, change.reason) == (
        "booking.confirmed",
        "modified",
        "modification",
    )
    assert change.caused_by == edit.event_id
    assert change.pending_ref == stored.pending_ref
    assert [n.kind for n in decision.notifications] == ["modification_confirmed"]
    assert op(decision, "auto_assign.attempt")["modification"] is True
    assert op(decision, "booking.modification.confirmed")["pending_ref"] == stored.pending_ref


# --- apply_allocation: failures and retries ----------------------------------------------------


@pytest.mark.parametrize(("attempt", "delay_s"), [(1, 5.0), (2, 15.0), (3, 45.0)])
def test_failed_attempt_with_retries_left_schedules_the_next(attempt: int, delay_s: float) -> None:
    stored, _ = pending_booking()
    before = replace(stored, attempts=attempt - 1)
    decision = allocate(before, no_capacity(), reason="created" if attempt == 1 else "retry")

    state = stored_after(decision)
    assert (state.alloc_state, state.attempts, state.last_failure) == ("retry", attempt, NO_CAPACITY)
    assert (state.status, state.pending_ref) == ("pending", stored.pending_ref)
    assert decision.retry == RetrySchedule(delay_s)
    assert decision.status_changes == decision.notifications == []
    assert op(decision, "auto_assign.attempt")["result"] == "failed"


def test_retry_delays_follow_the_setting_then_exhaust() -> None:
    state, _ = pending_booking()
    scheduled = []
    reason = "created"
    while True:
        decision = allocate(state, no_capacity(), reason=reason)
        state = stored_after(decision)
        if decision.retry is None:
            break
        scheduled.append(decision.retry.delay_s)
        reason = "retry"
    assert scheduled == DELAYS_S
    assert (state.alloc_state, state.attempts) == ("exhausted", 4)


@pytest.mark.parametrize(("delays", "attempts"), [([], 1), ([0.25], 2)])
def test_number_of_retries_is_the_number_of_delays(delays: list[float], attempts: int) -> None:
    state, _ = pending_booking()
    decision = allocate(state, no_capacity(), delays=delays)
    while decision.retry is not None:
        decision = allocate(stored_after(decision), no_capacity(), reason="retry", delays=delays)
    assert stored_after(decision).attempts == attempts
    assert [c.type for c in decision.status_changes] == ["booking.allocation_failed"]


def test_exhausted_retries_fail_the_allocation_and_tell_the_restaurant() -> None:
    stored, change = pending_booking()
    last_try = replace(stored, attempts=3, alloc_state="retry")
    decision = allocate(last_try, no_capacity(), reason="retry")

    state = stored_after(decision)
    assert (state.status, state.alloc_state, state.attempts) == ("pending", "exhausted", 4)
    assert state.pending_ref == stored.pending_ref
    assert decision.retry is None
    assert decision.status_changes == [
        StatusChange(
            "booking.allocation_failed",
            "pending",
            stored.pending_ref,
            "retry",
            change.event_id,
            failure_reason=NO_CAPACITY,
            booking_version=stored.version + 1,
        )
    ]
    assert decision.notifications == [
        NotificationIntent("allocation_failed", "restaurant", stored.pending_ref or "", False)
    ]
    failed = op(decision, "auto_assign.failed")
    assert (failed["modification"], failed["attempts"]) == (False, 4)


def test_exhausted_modification_says_so_to_ops() -> None:
    stored, edit = modification_pending()
    decision = allocate(replace(stored, attempts=3), no_capacity(), reason="retry")

    failed = op(decision, "auto_assign.failed")
    assert (failed["modification"], failed["attempts"]) == (True, 4)
    [change] = decision.status_changes
    assert (change.type, change.caused_by) == ("booking.allocation_failed", edit.event_id)


@pytest.mark.parametrize("alloc_state", ["retry", "exhausted"])
def test_failed_capacity_sweep_consumes_no_attempt(alloc_state: str) -> None:
    stored, _ = pending_booking()
    before = replace(stored, attempts=2, alloc_state=alloc_state)  # type: ignore[arg-type]
    decision = allocate(before, no_capacity(), reason="capacity_released")

    assert decision.state is None
    assert decision.retry is None
    assert decision.status_changes == decision.notifications == []


def test_start_passed_is_terminal_at_once() -> None:
    stored, _ = pending_booking()
    decision = allocate(stored, AllocationFailure("start_passed", "19:00 has passed"))

    state = stored_after(decision)
    assert (state.alloc_state, state.attempts) == ("exhausted", 1)
    assert decision.retry is None
    assert [(c.type, c.failure_reason) for c in decision.status_changes] == [
        ("booking.allocation_failed", "start_passed")
    ]
    assert [n.kind for n in decision.notifications] == ["allocation_failed"]
