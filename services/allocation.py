"""Run allocation requests in one transaction: lock restaurants, decide in order, persist.

Each restaurant's row is locked FOR UPDATE first, so allocation for one restaurant is
serialised even when a rebalance briefly hands its partition to two workers; the
exclusion constraint on booking_tables stays the last line of defence.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from domain import allocation
from domain.lifecycle import apply_allocation, apply_move
from domain.model import BookingState, StatusReason, evolve
from models.events import AllocationRequest
from models.restaurant import RestaurantConfig
from services import outbox
from services.decisions import Decided, persist_decisions
from storage.bookings import SeatingQuery, TableHold
from storage.outbox import OutboxRow
from storage.uow import UnitOfWork


@dataclass(frozen=True)
class AllocationPolicy:
    retry_delays_s: list[float]
    inline_window: timedelta
    # After "no capacity", try re-seating confirmed bookings (same times, other tables).
    repack: bool = False
    # Also re-seat when a booking fits but a move wastes fewer seats (beyond contract §4).
    tidy_moves: bool = False


@dataclass
class AllocationResult:
    rows: list[OutboxRow] = field(default_factory=list)
    confirmed: int = 0
    failed: int = 0
    stale: int = 0
    duplicates: int = 0  # requests acted on before (redelivered, replayed, republished)
    moved: int = 0  # confirmed bookings re-seated to make room
    moves_refused: int = 0  # re-seating plans dropped: a booking to move was busy or changed


async def run_requests(
    uow: UnitOfWork,
    requests: list[AllocationRequest],
    policy: AllocationPolicy,
    *,
    now: datetime | None = None,
) -> AllocationResult:
    """Decide every request inside the caller's unit of work."""
    now = now or datetime.now(UTC)
    result = AllocationResult()
    configs = await uow.restaurants.load([r.restaurant_id for r in requests], lock=True)
    # A request acted on before is no new attempt: it neither spends a retry nor moves the
    # schedule (docs/interface.md §4). Its id is recorded in this transaction.
    identified = {r.request_id: r.restaurant_id for r in requests
                  if r.request_id is not None and r.restaurant_id in configs}
    claimed = await uow.allocation_requests.claim(identified)
    seen: set[str] = set()
    fresh: list[AllocationRequest] = []
    for req in requests:
        if req.request_id is not None and req.restaurant_id in configs:
            if req.request_id not in claimed or req.request_id in seen:
                result.duplicates += 1
                continue
            seen.add(req.request_id)
        fresh.append(req)

    # The reason each booking is tried for: its own request, else the capacity sweep.
    reason_of: dict[str, StatusReason] = {}
    ref_of: dict[str, str | None] = {}
    attempt_of: dict[str, int | None] = {}
    order: list[str] = []
    sweeps: list[tuple[str, date]] = []
    for req in fresh:
        if req.restaurant_id not in configs:
            result.stale += 1
            continue
        if req.booking_id is not None:
            if req.booking_id not in reason_of:
                order.append(req.booking_id)
            reason_of[req.booking_id] = req.reason
            ref_of[req.booking_id] = req.pending_ref
            attempt_of[req.booking_id] = req.attempt
        elif req.booking_date is not None:
            sweeps.append((req.restaurant_id, req.booking_date))
    states = await uow.bookings.lock_pending_for_allocation(order, sorted(set(sweeps)))

    swept = sorted(
        (s for s in states.values() if s.booking_id not in reason_of),
        key=lambda s: (s.booking_date, s.start_time, s.booking_id),
    )
    candidates: list[tuple[BookingState, StatusReason]] = []
    for bid in order:
        state = states.get(bid)
        if state is None or state.pending_ref != ref_of[bid]:
            result.stale += 1  # cancelled, confirmed, or superseded by a newer episode
            continue
        attempt = attempt_of[bid]
        if attempt is not None and attempt <= state.attempts:
            result.duplicates += 1  # that attempt was made (its id may have been pruned)
            continue
        candidates.append((state, reason_of[bid]))
    candidates += [(s, "capacity_released") for s in swept]
    if not candidates:
        return result

    seating = _BatchSeating(await uow.bookings.seated(_seating_queries(candidates, configs)))
    items: list[Decided] = []
    # Where each booking placed (or re-seated) in this batch sits at the end of it.
    placed: dict[str, str] = {}  # booking_id -> restaurant_id
    moved: dict[str, BookingState] = {}  # re-seated bookings, as they stand now (locked)
    next_attempt: dict[str, datetime] = {}
    for state, reason in candidates:
        cfg = configs[state.restaurant_id]
        day = seating.near(state.restaurant_id, state.booking_date)
        outcome, window, moves = allocation.seat(
            cfg, state.party_size, state.booking_date, state.start_time,
            state.requested_end_time, day, now, reseat=policy.repack,
            tidy_moves=policy.tidy_moves,
        )
        if moves and not await _can_move(uow, moves, day, moved):
            # A booking to move is being changed right now (or already was): no re-seating
            # this time; the attempt fails as without it and is retried on schedule.
            result.moves_refused += 1
            outcome, window, moves = allocation.seat(
                cfg, state.party_size, state.booking_date, state.start_time,
                state.requested_end_time, day, now, reseat=False,
            )
        decision = apply_allocation(
            state, outcome, reason=reason, retry_delays_s=policy.retry_delays_s
        )
        if isinstance(outcome, allocation.Plan) and window is not None:
            for moved_id, tables in moves.items():
                seating.put(state.restaurant_id, replace(day[moved_id], table_ids=tables))
                before = moved[moved_id]
                move = apply_move(before, tables, to_seat=state.booking_id)
                assert move.state is not None
                moved[moved_id] = move.state
                placed[moved_id] = state.restaurant_id
                items.append(Decided(moved_id, state.restaurant_id, before, move))
            result.moved += len(moves)
            seating.put(state.restaurant_id, allocation.Seated(
                state.booking_id, state.party_size, window, tuple(outcome.table_ids)
            ))
            placed[state.booking_id] = state.restaurant_id
            if decision.state is not None:
                decision.state = evolve(decision.state, end_time=window.end.time())
            result.confirmed += 1
        else:
            result.failed += 1
        if decision.retry is not None:
            next_attempt[state.booking_id] = now + timedelta(seconds=decision.retry.delay_s)
        items.append(Decided(state.booking_id, state.restaurant_id, state, decision))

    # Re-seated bookings leave their old tables before anyone takes them; the exclusion
    # constraint checks the final seating row by row.
    await uow.bookings.release_tables(sorted(moved))
    await uow.bookings.hold_tables(_holds(placed, seating.by_restaurant))
    result.rows = await persist_decisions(
        uow, items, configs, policy.inline_window, now, next_attempt_at=next_attempt,
    )
    return result


def _seating_queries(
    candidates: list[tuple[BookingState, StatusReason]],
    configs: dict[str, RestaurantConfig],
) -> list[SeatingQuery]:
    """What each decision must be shown: the bookings within its window's reach. A booking
    that cannot form a window is refused without a look at the others."""
    windows: list[tuple[BookingState, allocation.Window]] = []
    for state, _ in candidates:
        window = allocation.booking_window(
            configs[state.restaurant_id], state.booking_date, state.start_time,
            state.requested_end_time, state.party_size)
        if isinstance(window, allocation.Window):
            windows.append((state, window))
    # A booking this batch seats is not a row yet, but a later decision of the batch sees
    # it (_BatchSeating): the reach must allow for its window too.
    longest: dict[str, timedelta] = defaultdict(timedelta)
    for state, window in windows:
        longest[state.restaurant_id] = max(longest[state.restaurant_id],
                                           window.blocked_until - window.start)
    return [SeatingQuery(state.restaurant_id, state.booking_date, window,
                         longest[state.restaurant_id]) for state, window in windows]


class _BatchSeating:
    """Where the confirmed bookings of a batch's restaurants sit as its decisions go on, by
    restaurant and by the date each window starts. A decision is shown the bookings that
    can touch its date (that date's and its neighbours', for windows across midnight), not
    every date the batch loaded for the restaurant: a backlog's batch spans many dates, and
    handing each decision all of them made its cost grow with the batch (bench.soak)."""

    def __init__(self, seated: dict[str, dict[str, allocation.Seated]]) -> None:
        self.by_restaurant: dict[str, dict[str, allocation.Seated]] = defaultdict(dict)
        self._by_date: dict[tuple[str, date], dict[str, allocation.Seated]] = defaultdict(dict)
        for restaurant_id, bookings in seated.items():
            for seat in bookings.values():
                self.put(restaurant_id, seat)

    def put(self, restaurant_id: str, seat: allocation.Seated) -> None:
        """Seat (or re-seat) a booking."""
        before = self.by_restaurant[restaurant_id].get(seat.booking_id)
        if before is not None:
            self._by_date[(restaurant_id, before.window.start.date())].pop(seat.booking_id)
        self.by_restaurant[restaurant_id][seat.booking_id] = seat
        self._by_date[(restaurant_id, seat.window.start.date())][seat.booking_id] = seat

    def near(self, restaurant_id: str, day: date) -> dict[str, allocation.Seated]:
        """The bookings a window starting on `day` may meet; a copy (decide, then `put`)."""
        near: dict[str, allocation.Seated] = {}
        for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
            near.update(self._by_date.get((restaurant_id, d), {}))
        return near


async def _can_move(
    uow: UnitOfWork,
    moves: dict[str, tuple[str, ...]],
    day: dict[str, allocation.Seated],
    moved: dict[str, BookingState],
) -> bool:
    """Lock the bookings a re-seating plan moves (without waiting) and check each is still
    confirmed on the tables the plan assumed. The changes agent may be cancelling or editing
    one of them in a concurrent transaction; then the plan is not used."""
    wanted = [b for b in moves if b not in moved]  # those moved earlier are locked already
    locked = await uow.bookings.try_lock_confirmed(wanted)
    if set(locked) != set(wanted):
        return False
    if any(locked[b].table_ids != tuple(sorted(day[b].table_ids)) for b in wanted):
        return False
    moved.update(locked)
    return True


def _holds(
    placed: dict[str, str], by_restaurant: dict[str, dict[str, allocation.Seated]]
) -> list[TableHold]:
    """The table holds of every booking placed or re-seated in this batch."""
    holds = []
    for booking_id, restaurant_id in sorted(placed.items()):
        seat = by_restaurant[restaurant_id][booking_id]
        # A window starts on its booking's date, so that is the hold's booking_date.
        holds += [
            TableHold(booking_id, restaurant_id, seat.window.start.date(), tid,
                      seat.window.start, seat.window.blocked_until)
            for tid in seat.table_ids
        ]
    return holds


# A booking whose allocation request never got decided (dead-lettered, or lost with a
# broker) would otherwise wait forever; after this long it is asked for again.
STUCK_QUEUED = timedelta(minutes=5)


async def enqueue_due_attempts(uow: UnitOfWork, *, now: datetime, limit: int = 500
                               ) -> list[OutboxRow]:
    """Turn due retries (and requests stuck unanswered) into allocation requests, in the
    caller's unit of work. Several workers never claim the same booking."""
    due = await uow.bookings.take_due_attempts(now=now, stuck_after=STUCK_QUEUED, limit=limit)
    # The next attempt of the episode: the same id as a lost request for it (a stuck one
    # asked again), so whichever arrives second is recognised.
    return await uow.outbox.add([
        outbox.allocation_row(d.restaurant_id, "retry", now, booking_id=d.booking_id,
                              pending_ref=d.pending_ref, attempt=d.attempts + 1)
        for d in due
    ])
