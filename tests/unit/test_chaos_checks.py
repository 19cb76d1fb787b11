"""The chaos suite's checks (tests/chaos/checks.py): each passes on a clean run and fails on
the fault it is there to catch. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest

from tests.chaos import checks
from tests.chaos.checks import (
    Assignment,
    DbBooking,
    InputChange,
    Leftovers,
    NotificationRow,
    SinkMail,
    StatusEvent,
)

R = "r-1"


def create(eid: str, bid: str = "b1", *, d: str = "2030-01-10", t: str = "19:00", p: int = 2,
           notes: str | None = None, partition: int = 0, offset: int = 0) -> InputChange:
    return InputChange(eid, "booking.created", bid, R, d, t, p, notes, partition, offset)


def update(eid: str, bid: str = "b1", *, d: str = "2030-01-10", t: str = "19:00", p: int = 2,
           notes: str | None = None, partition: int = 0, offset: int = 0) -> InputChange:
    return InputChange(eid, "booking.updated", bid, R, d, t, p, notes, partition, offset)


def cancel(eid: str, bid: str = "b1", *, partition: int = 0, offset: int = 0) -> InputChange:
    return InputChange(eid, "booking.cancelled", bid, R, partition=partition, offset=offset)


# b1: created, notes-only edit, realigning edit (party 2 -> 4) -> confirmed on t1+t2.
# b2: created, then cancelled.
INPUTS = [
    create("e1", "b1", offset=0),
    create("e2", "b2", offset=1, t="20:00"),
    update("e3", "b1", notes="window", offset=2),
    update("e4", "b1", p=4, notes="window", offset=3),
    cancel("e5", "b2", offset=4),
]
REF = {"e1": "ref-e1", "e2": "ref-e2", "e4": "ref-e4"}


def status(type_: str, bid: str, ref: str, cause: str,
           tables: tuple[str, ...] | None = None) -> StatusEvent:
    return StatusEvent(f"{type_}/{bid}/{ref}", type_, bid, ref, cause, tables)


STATUS = [
    status("booking.pending", "b1", REF["e1"], "e1"),
    status("booking.confirmed", "b1", REF["e1"], "e1", ("t1",)),
    status("booking.pending", "b2", REF["e2"], "e2"),
    status("booking.pending", "b1", REF["e4"], "e4"),
    status("booking.confirmed", "b1", REF["e4"], "e4", ("t1", "t2")),
    status("booking.cancelled", "b2", REF["e2"], "e5"),
]
BOOKINGS = {
    "b1": DbBooking("b1", R, "confirmed", REF["e4"], "2030-01-10", "19:00", 4, "window",
                    "done", "modification", ("t1", "t2")),
    "b2": DbBooking("b2", R, "cancelled", REF["e2"], "2030-01-10", "20:00", 2, None,
                    "done", "created"),
}


def mid(bid: str, kind: str, ref: str) -> str:
    return f"<{bid}.{kind}.{ref}@test>"


NOTIFICATIONS = [
    NotificationRow("b1", "request_received", REF["e1"], "cancelled",
                    mid("b1", "request_received", REF["e1"])),
    NotificationRow("b1", "confirmed", REF["e1"], "sent", mid("b1", "confirmed", REF["e1"])),
    NotificationRow("b1", "modification_pending", REF["e4"], "cancelled",
                    mid("b1", "modification_pending", REF["e4"])),
    NotificationRow("b1", "modification_confirmed", REF["e4"], "sent",
                    mid("b1", "modification_confirmed", REF["e4"])),
    NotificationRow("b2", "request_received", REF["e2"], "sent",
                    mid("b2", "request_received", REF["e2"])),
    NotificationRow("b2", "cancelled", REF["e2"], "sent", mid("b2", "cancelled", REF["e2"])),
]
SINK = [SinkMail(n.message_id, n.kind, n.booking_id) for n in NOTIFICATIONS if n.status == "sent"]


def at(h: int, m: int = 0) -> datetime:
    return datetime.combine(date(2030, 1, 10), datetime.min.time()).replace(hour=h, minute=m)


ASSIGNMENTS = [
    Assignment("b1", R, "t1", at(19), at(20, 20)),
    Assignment("b1", R, "t2", at(19), at(20, 20)),
]


def expected(always_seatable: frozenset[str] = frozenset({R})) -> dict[str, checks.Expected]:
    return checks.expected_states(INPUTS, set(always_seatable))


# --- expectations ---------------------------------------------------------------------------


def test_expected_states_follow_the_last_realigning_change() -> None:
    exp = expected()
    assert exp["b1"].episode_causes == ("e1", "e4")
    assert exp["b1"].detail_only == ("e3",)
    assert (exp["b1"].party_size, exp["b1"].notes, exp["b1"].cancelled) == (4, "window", False)
    assert exp["b2"].cancelled and exp["b2"].last_cause == "e2"


def test_expected_states_refuse_inputs_the_model_does_not_cover() -> None:
    with pytest.raises(ValueError, match="after the cancellation"):
        checks.expected_states([create("e1"), cancel("e2"), update("e3")], set())
    with pytest.raises(ValueError, match="not a create"):
        checks.expected_states([update("e1")], set())


# --- the clean run passes every check -------------------------------------------------------------


def test_a_clean_run_passes_every_check() -> None:
    exp = expected()
    results = [
        checks.check_none_lost(INPUTS, [c.event_id for c in INPUTS], {0: 5}),
        checks.check_final_states(exp, BOOKINGS, STATUS),
        checks.check_emails(SINK, NOTIFICATIONS, exp, BOOKINGS, allowed_repeats=0),
        checks.check_tables(ASSIGNMENTS, BOOKINGS),
        checks.check_applied_once(exp, STATUS),
        checks.check_drained(Leftovers(0, 0, 0, 0, 0)),
    ]
    assert [r.problems for r in results] == [[]] * 6
    assert checks.verdict_line(results, {"lost": 0}).startswith("chaos: PASS")


# --- each check fails on its fault -----------------------------------------------------------------


def test_none_lost_names_the_lost_event_and_its_partition() -> None:
    processed = [c.event_id for c in INPUTS if c.event_id != "e3"]
    lost_input = replace(INPUTS[2], partition=5, offset=2)
    inputs = [*INPUTS[:2], lost_input, *INPUTS[3:]]
    result = checks.check_none_lost(inputs, processed, {5: 3})
    assert not result.ok
    assert result.counts["lost"] == 1
    assert result.counts["lost_behind_committed_offset"] == 1
    assert result.details["lost_by_partition"] == {"5": 1}
    assert "e3" in result.problems[0] and "partition 5 offset 2" in result.problems[0]


def test_none_lost_flags_processed_events_nobody_produced() -> None:
    result = checks.check_none_lost(INPUTS, [*(c.event_id for c in INPUTS), "ghost"])
    assert result.counts["unknown_processed"] == 1 and not result.ok


@pytest.mark.parametrize(
    ("booking", "fault"),
    [
        (replace(BOOKINGS["b2"], status="pending", alloc_state="exhausted"), "expected cancelled"),
        (replace(BOOKINGS["b1"], status="cancelled", table_ids=()), "no cancellation was sent"),
        (replace(BOOKINGS["b1"], status="pending", alloc_state="exhausted", table_ids=()),
         "can always be seated"),
        (replace(BOOKINGS["b1"], party_size=2), "date/time/party"),
        (replace(BOOKINGS["b1"], notes=None), "notes"),
        (replace(BOOKINGS["b1"], pending_ref=REF["e1"], table_ids=("t1",)), "last realigning"),
        (replace(BOOKINGS["b1"], table_ids=("t3",)), "booking.confirmed for its episode says"),
        (replace(BOOKINGS["b1"], table_ids=()), "holds no table"),
        (replace(BOOKINGS["b2"], table_ids=("t4",)), "cancelled but holds"),
    ],
)
def test_final_states_catch_a_wrong_state(booking: DbBooking, fault: str) -> None:
    result = checks.check_final_states(expected(), {**BOOKINGS, booking.booking_id: booking}, STATUS)
    assert not result.ok
    assert any(fault in p for p in result.problems), result.problems


def test_final_states_catch_a_stuck_pending_booking_where_failure_is_allowed() -> None:
    stuck = replace(BOOKINGS["b1"], status="pending", alloc_state="queued", table_ids=())
    result = checks.check_final_states(expected(frozenset()), {**BOOKINGS, "b1": stuck}, STATUS)
    assert any("allocation queued" in p for p in result.problems)
    exhausted = replace(stuck, alloc_state="exhausted")
    assert checks.check_final_states(expected(frozenset()), {**BOOKINGS, "b1": exhausted}, STATUS).ok


def test_final_states_catch_missing_unexpected_bookings_and_missing_episode_events() -> None:
    missing = checks.check_final_states(expected(), {"b1": BOOKINGS["b1"]}, STATUS)
    assert any("b2: not in the database" in p for p in missing.problems)
    extra = {**BOOKINGS, "b9": replace(BOOKINGS["b2"], booking_id="b9")}
    assert any("never produced" in p for p in checks.check_final_states(expected(), extra, STATUS).problems)
    no_event = [s for s in STATUS if s.caused_by != "e4"]
    result = checks.check_final_states(expected(), BOOKINGS, no_event)
    assert any("no booking.pending caused by" in p for p in result.problems)


def test_emails_count_same_message_id_repeats_apart_and_bound_them() -> None:
    repeated = [*SINK, SINK[0]]
    ok = checks.check_emails(repeated, NOTIFICATIONS, expected(), BOOKINGS, allowed_repeats=1)
    assert ok.ok and ok.counts["crash_window_repeats"] == 1
    assert ok.details["repeated"][0]["copies"] == 2
    over = checks.check_emails(repeated, NOTIFICATIONS, expected(), BOOKINGS, allowed_repeats=0)
    assert any("more than the 0" in p for p in over.problems)


def test_emails_catch_a_second_email_of_a_once_only_kind() -> None:
    rows = [*NOTIFICATIONS, NotificationRow("b2", "cancelled", "other", "sent", "<dup@test>")]
    sink = [*SINK, SinkMail("<dup@test>", "cancelled", "b2")]
    result = checks.check_emails(sink, rows, expected(), BOOKINGS, allowed_repeats=10)
    assert any("2 different cancelled emails" in p for p in result.problems)


@pytest.mark.parametrize(
    ("sink", "rows", "fault"),
    [
        ([*SINK, SinkMail("<nobody@test>", "confirmed", "b1")], NOTIFICATIONS, "no notification row"),
        ([SinkMail(SINK[0].message_id, "cancelled", "b2"), *SINK[1:]], NOTIFICATIONS,
         "headers say"),
        ([*SINK, SinkMail(NOTIFICATIONS[0].message_id, "request_received", "b1")], NOTIFICATIONS,
         "delivered but its row is cancelled"),
        (SINK[:-1], NOTIFICATIONS, "recorded sent, not in the sink"),
        ([m for m in SINK if m.kind != "cancelled"],
         [n for n in NOTIFICATIONS if n.kind != "cancelled"], "no cancelled email delivered"),
        ([m for m in SINK if m.kind != "modification_confirmed"],
         [n for n in NOTIFICATIONS if n.kind != "modification_confirmed"],
         "no confirmation delivered"),
        (SINK, [replace(n, status="failed") if n.kind == "confirmed" else n
                for n in NOTIFICATIONS], "failed"),
    ],
)
def test_emails_catch_lost_unknown_and_inconsistent_mail(
    sink: list[SinkMail], rows: list[NotificationRow], fault: str
) -> None:
    result = checks.check_emails(sink, rows, expected(), BOOKINGS, allowed_repeats=10)
    assert not result.ok
    assert any(fault in p for p in result.problems), result.problems


def test_emails_want_the_allocation_failed_email_of_an_exhausted_booking() -> None:
    exhausted = replace(BOOKINGS["b1"], status="pending", alloc_state="exhausted", table_ids=())
    result = checks.check_emails(SINK, NOTIFICATIONS, expected(frozenset()),
                                 {**BOOKINGS, "b1": exhausted}, allowed_repeats=0)
    assert any("no allocation_failed email" in p for p in result.problems)


def test_tables_catch_an_overlap_on_one_table() -> None:
    other = Assignment("b3", R, "t2", at(20), at(21))
    bookings = {**BOOKINGS, "b3": replace(BOOKINGS["b1"], booking_id="b3")}
    result = checks.check_tables([*ASSIGNMENTS, other], bookings)
    assert result.counts["overlaps"] == 1
    assert "t2" in result.problems[0] and "b3" in result.problems[0]
    # Back to back (end == next start) is not an overlap; another table is not either.
    fine = [*ASSIGNMENTS, Assignment("b3", R, "t2", at(20, 20), at(21)),
            Assignment("b3", R, "t3", at(19), at(21))]
    assert checks.check_tables(fine, bookings).ok


def test_tables_catch_an_overlap_hidden_behind_a_short_window() -> None:
    long_one = Assignment("b1", R, "t1", at(17), at(23))
    bookings = {**BOOKINGS, **{b: replace(BOOKINGS["b1"], booking_id=b) for b in ("b3", "b4")}}
    short = Assignment("b3", R, "t1", at(18), at(19))
    late = Assignment("b4", R, "t1", at(21), at(22))  # overlaps the long one, not the short
    result = checks.check_tables([long_one, short, late], bookings)
    assert result.counts["overlaps"] == 2


def test_tables_catch_tables_held_by_a_booking_that_is_not_confirmed() -> None:
    result = checks.check_tables([*ASSIGNMENTS, Assignment("b2", R, "t4", at(20), at(21))],
                                 BOOKINGS)
    assert result.counts["held_by_unconfirmed"] == 1
    assert "b2: holds tables while cancelled" in result.problems


@pytest.mark.parametrize(
    ("extra", "fault"),
    [
        (StatusEvent(STATUS[1].event_id, "booking.confirmed", "b1", REF["e1"], "e1", ("t3",)),
         "different contents"),
        (StatusEvent("other-id", "booking.confirmed", "b1", REF["e1"], "e1", ("t3",)),
         "confirmed with 2 table sets"),
        (StatusEvent("c2", "booking.cancelled", "b2", "other", "e5"), "2 different booking.cancelled"),
        (status("booking.pending", "b1", "ref-e3", "e3"), "notes-only edit e3"),
        (status("booking.pending", "b1", "ref-x", "e9"), "not one of its created/realigning"),
        (status("booking.pending", "b1", "ref-e4-again", "e4"), "started 2 different episodes"),
        (status("booking.pending", "b7", "r", "e1"), "unknown b7"),
    ],
)
def test_applied_once_catches_a_change_or_decision_taken_twice(extra: StatusEvent, fault: str) -> None:
    result = checks.check_applied_once(expected(), [*STATUS, extra])
    assert not result.ok
    assert any(fault in p for p in result.problems), result.problems


def test_applied_once_accepts_identical_republishes() -> None:
    result = checks.check_applied_once(expected(), [*STATUS, STATUS[1], STATUS[4]])
    assert result.ok and result.counts["republished"] == 2


@pytest.mark.parametrize("field_index", range(5))
def test_drained_fails_on_any_leftover(field_index: int) -> None:
    counts = [0] * 5
    counts[field_index] = 3
    result = checks.check_drained(Leftovers(*counts))
    assert not result.ok and len(result.problems) == 1


def test_verdict_line_names_the_failed_checks() -> None:
    bad = checks.check_drained(Leftovers(1, 0, 0, 0, 0))
    line = checks.verdict_line([bad], {"lost": 0})
    assert line.startswith("chaos: FAIL (drained)") and "lost=0" in line


def test_workers_fail_on_a_crash_or_an_outside_signal() -> None:
    assert checks.check_workers([]).ok
    result = checks.check_workers([
        {"worker": "w04", "pid": 10, "returncode": 1, "at_s": 3.0, "signal_logged": False},
        {"worker": "w05", "pid": 11, "returncode": 0, "at_s": 9.0, "signal_logged": True},
    ])
    assert result.counts == {"unexpected_exits": 2, "outside_signals": 1}
    assert "w04 (pid 10) crashed" in result.problems[0]
    assert "signal from outside" in result.problems[1]
