"""Booking lifecycle: realignment detection, status transitions, pending episodes, retries.

Two entry points, both pure:
- `apply_change(stored, change, ...)` for an upstream created/updated/cancelled event;
- `apply_allocation(state, outcome, ...)` for the allocator's answer on one episode.
Each returns a `Decision` the agents persist and publish in one transaction.
"""

from __future__ import annotations

from domain.allocation import (
    START_PASSED,
    AllocationFailure,
    Plan,
    effective_end,
    released_days,
)
from domain.model import (
    AllocationAsk,
    BookingState,
    Decision,
    OpsNote,
    RetrySchedule,
    StatusChange,
    StatusReason,
    evolve,
)
from domain.notifications import decide_notifications
from domain.walkins import ResolvedContact
from models.events import BookingChange, derived_id
from models.restaurant import RestaurantConfig

# A change to any of these sends the booking back through the allocator (docs/interface.md §4).
REALIGN_FIELDS = ("restaurant_id", "booking_date", "start_time", "requested_end_time", "party_size")
DETAIL_FIELDS = (
    "customer_name",
    "customer_email",
    "customer_phone",
    "seating_preference",
    "notes",
    "source",
    "channel",
)
# Failures no later attempt can cure.
TERMINAL_FAILURES = frozenset({START_PASSED})


def new_pending_ref(booking_id: str, event_id: str) -> str:
    """Opaque token naming a pending episode; derived from its cause, so replays agree."""
    return derived_id("pending", booking_id, event_id)


def realignment_fields(stored: BookingState, incoming: BookingState) -> list[str]:
    return [f for f in REALIGN_FIELDS if getattr(stored, f) != getattr(incoming, f)]


def _with_status(
    decision: Decision, prev: BookingState | None, new: BookingState, change: StatusChange
) -> Decision:
    """Record a transition; it is the booking's next version (docs/interface.md §5)."""
    new = evolve(new, version=new.version + 1)
    change = evolve(change, booking_version=new.version)
    plan = decide_notifications(prev, new, change)
    decision.state = new
    decision.status_changes.append(change)
    decision.notifications.extend(plan.intents)
    decision.cancel_held_emails = decision.cancel_held_emails or plan.cancel_held
    return decision


def state_from_change(
    change: BookingChange,
    contact: ResolvedContact,
    cfg: RestaurantConfig,
    *,
    base: BookingState | None = None,
) -> BookingState:
    """The booking as the change describes it; lifecycle fields are kept from `base`."""
    b = change.booking
    assert b.booking_date is not None and b.start_time is not None and b.party_size is not None
    common = dict(
        restaurant_id=b.restaurant_id,
        booking_date=b.booking_date,
        start_time=b.start_time,
        requested_end_time=b.end_time,
        end_time=effective_end(cfg, b.booking_date, b.start_time, b.end_time, b.party_size),
        party_size=b.party_size,
        customer_name=b.customer_name,
        customer_email=contact.notify_email,
        customer_phone=contact.phone,
        seating_preference=b.seating_preference,
        notes=b.notes,
        source=change.source,
        channel=change.channel,
    )
    if base is not None:
        return evolve(base, **common)
    return BookingState(
        booking_id=b.booking_id,
        status="pending",
        pending_ref=None,
        episode_kind="created",
        episode_caused_by=change.event_id,
        idempotency_key=change.idempotency_key,
        **common,
    )


def _release(decision: Decision, stored: BookingState, cfg: RestaurantConfig) -> None:
    """The booking gives up the tables it holds: free them, and retry who may now fit."""
    decision.release_tables = True
    for day in released_days(cfg, stored.booking_date, stored.start_time,
                             stored.requested_end_time, stored.party_size):
        decision.capacity_released.append((stored.restaurant_id, day))


def apply_change(
    stored: BookingState | None,
    change: BookingChange,
    contact: ResolvedContact | None,
    *,
    cfg: RestaurantConfig,
    auto_assign: bool,
    stored_cfg: RestaurantConfig | None = None,
) -> Decision:
    """`cfg` is the configuration of the restaurant the change names (turns, services and
    buffer give the booking's end); `stored_cfg` that of the restaurant the stored booking
    holds tables in, when the edit moves it elsewhere (which dates its release frees)."""
    decision = Decision()
    held_cfg = stored_cfg or cfg
    booking_id = change.booking.booking_id

    if change.type == "booking.cancelled":
        if stored is None:
            decision.ops.append(
                OpsNote("booking.change_ignored", "warning", {"reason": "unknown_booking"})
            )
            return decision
        if stored.status == "cancelled":
            return decision
        new = evolve(stored, status="cancelled", alloc_state="done", table_ids=())
        if stored.status == "confirmed" and stored.table_ids:
            _release(decision, stored, held_cfg)
        return _with_status(
            decision,
            stored,
            new,
            StatusChange(
                "booking.cancelled", "cancelled", stored.pending_ref, None, change.event_id
            ),
        )

    assert contact is not None, "created/updated changes need a resolved contact"
    if stored is not None and stored.status == "cancelled":
        decision.ops.append(
            OpsNote("booking.change_ignored", "warning", {"reason": "booking_cancelled"})
        )
        return decision

    if stored is None:
        ref = new_pending_ref(booking_id, change.event_id)
        new = evolve(
            state_from_change(change, contact, cfg),
            pending_ref=ref,
            alloc_state="queued" if auto_assign else "idle",
        )
        if auto_assign:
            decision.allocation = AllocationAsk("created", ref)
        return _with_status(
            decision,
            None,
            new,
            StatusChange("booking.pending", "pending", ref, "created", change.event_id),
        )

    incoming = state_from_change(change, contact, cfg, base=stored)
    changed = realignment_fields(stored, incoming)
    if not changed:
        if any(getattr(stored, f) != getattr(incoming, f) for f in DETAIL_FIELDS):
            # Details only: stored; status, tables and pending_ref unchanged; no email.
            decision.state = evolve(incoming, end_time=stored.end_time)
        return decision

    ref = new_pending_ref(booking_id, change.event_id)
    new = evolve(
        incoming,
        status="pending",
        pending_ref=ref,
        # Editing a still-pending booking keeps how its episode began (no confirmation yet).
        episode_kind="modification" if stored.status == "confirmed" else stored.episode_kind,
        episode_caused_by=change.event_id,
        table_ids=(),
        alloc_state="queued",
        attempts=0,
        last_failure=None,
    )
    if stored.status == "confirmed" and stored.table_ids:
        _release(decision, stored, held_cfg)
    # Modifications always re-enter the allocator, whatever FEATURE_AUTO_ASSIGN_ON_BOOKING says.
    decision.allocation = AllocationAsk("modification", ref)
    decision.ops.append(
        OpsNote(
            "booking.modification.pending",
            "info",
            {"changed": changed, "previous_status": stored.status, "pending_ref": ref},
        )
    )
    return _with_status(
        decision,
        stored,
        new,
        StatusChange("booking.pending", "pending", ref, "modification", change.event_id),
    )


def apply_allocation(
    state: BookingState,
    outcome: Plan | AllocationFailure,
    *,
    reason: StatusReason,
    retry_delays_s: list[float],
) -> Decision:
    """The allocator's answer for the booking's current pending episode."""
    decision = Decision()
    modification = state.episode_kind == "modification"
    counts = reason != "capacity_released"  # a capacity sweep is a bonus try, not a retry
    attempts = state.attempts + 1 if counts else state.attempts
    attempt_note = {
        "attempt": attempts,
        "reason": reason,
        "modification": modification,
        "pending_ref": state.pending_ref,
    }

    if isinstance(outcome, Plan):
        decision.ops.append(
            OpsNote("auto_assign.attempt", "info", {**attempt_note, "result": "confirmed",
                                                     "table_ids": list(outcome.table_ids)})
        )
        new = evolve(
            state,
            status="confirmed",
            table_ids=tuple(outcome.table_ids),
            alloc_state="done",
            attempts=attempts,
            ever_confirmed=True,
            last_failure=None,
        )
        if modification:
            decision.ops.append(
                OpsNote(
                    "booking.modification.confirmed",
                    "info",
                    {"pending_ref": state.pending_ref, "table_ids": list(outcome.table_ids)},
                )
            )
        return _with_status(
            decision,
            state,
            new,
            StatusChange(
                "booking.confirmed",
                "confirmed",
                state.pending_ref,
                reason,
                state.episode_caused_by,
                variant="modified" if modification else "standard",
                table_ids=tuple(outcome.table_ids),
            ),
        )

    decision.ops.append(
        OpsNote(
            "auto_assign.attempt",
            "info",
            {**attempt_note, "result": "failed", "failure_reason": outcome.reason},
        )
    )
    if not counts:
        return decision
    retries_used = attempts - 1
    if outcome.reason not in TERMINAL_FAILURES and retries_used < len(retry_delays_s):
        decision.state = evolve(
            state, alloc_state="retry", attempts=attempts, last_failure=outcome.reason
        )
        decision.retry = RetrySchedule(retry_delays_s[retries_used])
        return decision

    new = evolve(state, alloc_state="exhausted", attempts=attempts, last_failure=outcome.reason)
    decision.ops.append(
        OpsNote(
            "auto_assign.failed",
            "warning",
            {
                "modification": modification,
                "attempts": attempts,
                "failure_reason": outcome.reason,
                "detail": outcome.detail,
                "pending_ref": state.pending_ref,
            },
        )
    )
    return _with_status(
        decision,
        state,
        new,
        StatusChange(
            "booking.allocation_failed",
            "pending",
            state.pending_ref,
            reason,
            state.episode_caused_by,
            failure_reason=outcome.reason,
        ),
    )


def apply_move(state: BookingState, table_ids: tuple[str, ...], *, to_seat: str) -> Decision:
    """A confirmed booking re-seated to other tables, same times, to make room for the
    booking `to_seat`. It stays confirmed with its episode; no email names a table, so
    none is sent; `booking.tables_changed` tells consumers (docs/interface.md §4)."""
    if state.status != "confirmed":
        raise ValueError(f"only a confirmed booking moves, {state.booking_id} is {state.status}")
    decision = Decision()
    decision.ops.append(OpsNote(
        "booking.tables_reassigned", "info",
        {"from": list(state.table_ids), "to": list(table_ids), "to_seat_booking_id": to_seat},
    ))
    new = evolve(state, table_ids=tuple(table_ids))
    return _with_status(
        decision, state, new,
        StatusChange("booking.tables_changed", "confirmed", state.pending_ref, None,
                     state.episode_caused_by, table_ids=tuple(table_ids)),
    )
