"""The chaos suite's checks (tests/chaos/checks.py): each passes on a clean run and fails on
the fault it is there to catch. Pure data, no I/O (but for the last test: the mail sink's
slow mode the chaos run uses)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

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


def email_of(bid: str) -> str:
    return f"{bid}@guest.example"


def create(eid: str, bid: str = "b1", *, d: str = "2030-01-10", t: str = "19:00", p: int = 2,
           notes: str | None = None, partition: int = 0, offset: int = 0, **more: object
           ) -> InputChange:
    more.setdefault("customer_email", email_of(bid))
    return InputChange(eid, "booking.created", bid, R, d, t, p, notes, partition, offset,
                       **more)  # type: ignore[arg-type]


def update(eid: str, bid: str = "b1", *, d: str = "2030-01-10", t: str = "19:00", p: int = 2,
           notes: str | None = None, partition: int = 0, offset: int = 0, **more: object
           ) -> InputChange:
    more.setdefault("customer_email", email_of(bid))
    return InputChange(eid, "booking.updated", bid, R, d, t, p, notes, partition, offset,
                       **more)  # type: ignore[arg-type]


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
                    "done", "modification", ("t1", "t2"), customer_email=email_of("b1")),
    "b2": DbBooking("b2", R, "cancelled", REF["e2"], "2030-01-10", "20:00", 2, None,
                    "done", "created", customer_email=email_of("b2")),
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
SINK = [SinkMail(n.message_id, n.kind, n.booking_id, to=email_of(n.booking_id))
        for n in NOTIFICATIONS if n.status == "sent"]


def at(h: int, m: int = 0) -> datetime:
    return datetime.combine(date(2030, 1, 10), datetime.min.time()).replace(hour=h, minute=m)


ASSIGNMENTS = [
    Assignment("b1", R, "t1", at(19), at(20, 20)),
    Assignment("b1", R, "t2", at(19), at(20, 20)),
]


def table(tid: str, capacity: int = 2, **more: object) -> dict[str, object]:
    return {"table_id": tid, "number": tid[1:], "zone": "main", "capacity": capacity,
            "min_party": 1, "max_party": capacity, "active": True, **more}


# R: four adjacent two-tops t1-t4, a terrace four-top t5 (min party 3), an inactive t6.
RESTAURANTS = {
    R: {
        "restaurant_id": R, "name": "R", "slug": "r", "contact_email": "host@r.example",
        "tables": [*(table(f"t{i}") for i in range(1, 5)),
                   table("t5", 4, zone="terrace", min_party=3),
                   table("t6", 2, active=False)],
        "adjacency": [["t1", "t2"], ["t2", "t3"], ["t3", "t4"], ["t4", "t6"]],
        "services": [{"name": "dinner", "start": "17:00", "end": "23:00", "allow_overrun": True}],
    }
}


def expected(always_seatable: frozenset[str] = frozenset({R})) -> dict[str, checks.Expected]:
    return checks.expected_states(INPUTS, set(always_seatable), RESTAURANTS)


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
        checks.check_fit(exp, BOOKINGS, RESTAURANTS),
        checks.check_windows(exp, BOOKINGS, ASSIGNMENTS, RESTAURANTS),
        checks.check_walkins(exp, BOOKINGS, SINK, {}, STATUS),
        checks.check_versions(exp, STATUS),
    ]
    assert [r.problems for r in results] == [[]] * 10
    assert results[6].counts["checked"] == 1 and results[7].counts["checked"] == 1
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


def test_none_lost_says_where_a_dead_lettered_or_parked_event_went() -> None:
    processed = [c.event_id for c in INPUTS if c.event_id not in ("e2", "e3", "e5")]
    result = checks.check_none_lost(INPUTS, processed, dead_lettered={"e3": "validate: bad"},
                                    parked=["e2", "e3"])
    assert result.counts["lost"] == 3
    assert (result.counts["lost_dead_lettered"], result.counts["lost_parked"],
            result.counts["lost_silently"]) == (1, 1, 1)
    assert "e5" in result.problems[0] and result.problems[0].endswith("sent at 0.0s")  # first
    assert any(p.endswith("dead-lettered (validate: bad)") for p in result.problems)
    assert result.details["lost_events"][0]["went"] is None


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
        (replace(BOOKINGS["b1"], party_size=2), "date/time/end/party"),
        (replace(BOOKINGS["b1"], requested_end_time="21:00"), "date/time/end/party"),
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


# --- expectations: end times, contacts, repeated submissions ---------------------------------------


def test_an_end_time_edit_realigns_and_an_edit_never_erases_contact_details() -> None:
    inputs = [
        create("e1", "b1", customer_phone="+44 1"),
        update("e2", "b1", end_time="21:30", customer_email="", customer_phone=None),
        update("e3", "b1", end_time="21:30", notes="x", customer_email="new@guest.example"),
    ]
    exp = checks.expected_states(inputs, set(), RESTAURANTS)["b1"]
    assert exp.episode_causes == ("e1", "e2") and exp.detail_only == ("e3",)
    assert exp.end_time == "21:30"
    assert (exp.customer_email, exp.customer_phone) == ("new@guest.example", "+44 1")


def walkin(eid: str, bid: str, *, rid: str = R, key: str | None = None, email: str | None = None,
           phone: str | None = None) -> InputChange:
    return InputChange(eid, "booking.created", bid, rid, "2030-01-10", "19:00", 2,
                       source="ops", channel="ops.walkin", idempotency_key=key,
                       customer_email=email, customer_phone=phone)


NO_CONTACT = "r-2"
WALKIN_RESTAURANTS = {**RESTAURANTS, NO_CONTACT: {**RESTAURANTS[R], "restaurant_id": NO_CONTACT,
                                                  "contact_email": None}}


def test_walkin_contacts_follow_the_contract() -> None:
    inputs = [
        walkin("w1", "W-1", key="Desk/Front-Of-House #0042-Evening-Long"),
        walkin("w2", "W-2", rid=NO_CONTACT, key="Desk/Front-Of-House #0042-Evening-Long"),
        walkin("w3", "Walk-In_3", rid=NO_CONTACT, email="  ", phone=""),
        walkin("w4", "W-4", rid=NO_CONTACT, email="guest@x.example", phone="+1"),
    ]
    exp = checks.expected_states(inputs, set(), WALKIN_RESTAURANTS)
    slug = "deskfrontofhouse0042even"  # lowercased, [a-z0-9] only, 24 characters
    assert (exp["W-1"].customer_email, exp["W-1"].customer_phone) == ("host@r.example", f"000-{slug}")
    assert exp["W-2"].customer_email == f"walkin+{slug}@system.local"  # same key, other restaurant
    assert (exp["Walk-In_3"].customer_email, exp["Walk-In_3"].customer_phone) == (
        "walkin+walkin3@system.local", "000-walkin3")
    assert not exp["Walk-In_3"].guest_mail and exp["W-1"].guest_mail
    assert (exp["W-4"].customer_email, exp["W-4"].customer_phone) == ("guest@x.example", "+1")


def test_a_repeated_submission_is_expected_to_create_nothing() -> None:
    inputs = [walkin("w1", "W-1", key="k1"), walkin("w2", "W-2", key="k1"),
              walkin("w3", "W-3", rid=NO_CONTACT, key="k1"), walkin("w4", "W-4", key="K1")]
    assert checks.repeated_submissions(inputs) == {"W-2": "W-1"}
    assert set(checks.expected_states(inputs, set(), WALKIN_RESTAURANTS)) == {"W-1", "W-3", "W-4"}
    with pytest.raises(ValueError, match="repeated submission with further changes"):
        checks.expected_states([*inputs, cancel("w5", "W-2")], set(), WALKIN_RESTAURANTS)


# --- fit ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tables", "party", "fault"),
    [
        (("t1", "t9"), 3, "unknown tables"),
        (("t4", "t6"), 3, "inactive"),
        (("t1", "t2"), 5, "4 seats for a party of 5"),
        (("t5",), 2, "outside t5's min/max 3..4"),
        (("t1",), 3, "2 seats"),
        (("t1", "t3"), 4, "not connected"),
        (("t4", "t5"), 5, "several zones"),
        (("t1", "t2", "t3", "t4"), 7, "more than max_tables_per_booking 3"),
    ],
)
def test_fit_problems_name_each_broken_rule(tables: tuple[str, ...], party: int, fault: str) -> None:
    problems = checks.fit_problems(RESTAURANTS[R], tables, party)
    assert any(fault in p for p in problems), problems


def test_fit_problems_use_max_and_min_party_of_combinations() -> None:
    cfg = {"tables": [table("a", 4, max_party=2), table("b", 4, max_party=None),
                      table("c", 4, min_party=3, max_party=4)],
           "adjacency": [["a", "b"], ["b", "c"]], "max_tables_per_booking": 2}
    assert checks.fit_problems(cfg, ("a", "b"), 6) == []  # max_party None = capacity
    assert any("max_party sum 6" in p for p in checks.fit_problems(cfg, ("a", "b"), 7))
    assert any("min_party 3" in p for p in checks.fit_problems(
        {**cfg, "tables": [table("b", 4, min_party=3), table("c", 4, min_party=3)]}, ("b", "c"), 2))
    assert checks.fit_problems(cfg, ("c",), 3) == []
    assert any("more than max_tables_per_booking 2" in p
               for p in checks.fit_problems(cfg, ("a", "b", "c"), 9))


def test_check_fit_flags_a_confirmed_booking_on_tables_that_cannot_seat_it() -> None:
    bad = {**BOOKINGS, "b1": replace(BOOKINGS["b1"], table_ids=("t1", "t3"))}
    result = checks.check_fit(expected(), bad, RESTAURANTS)
    assert result.counts["misfits"] == 1 and "not connected" in result.problems[0]
    assert not checks.check_fit(expected(), BOOKINGS, {}).ok  # a restaurant never configured


# --- windows --------------------------------------------------------------------------------------


def dt(day: int, h: int, m: int = 0) -> datetime:
    return datetime(2030, 1, day, h, m)


LATE = {"tables": [table("t1")], "services": [
    {"name": "late", "start": "18:00", "end": "02:00", "allow_overrun": False}]}


@pytest.mark.parametrize(
    ("cfg", "start", "end", "party", "window"),
    [
        (RESTAURANTS[R], "19:00", None, 1, (dt(10, 19), dt(10, 20, 5))),  # up to 2: 60 min
        (RESTAURANTS[R], "19:00", None, 3, (dt(10, 19), dt(10, 20, 20))),  # up to 4: 75
        (RESTAURANTS[R], "19:00", None, 9, (dt(10, 19), dt(10, 20, 35))),  # above all: largest
        (RESTAURANTS[R], "22:30", None, 2, (dt(10, 22, 30), dt(10, 23, 35))),  # overrun allowed
        (RESTAURANTS[R], "19:00", "19:40", 2, (dt(10, 19), dt(10, 19, 45))),
        (RESTAURANTS[R], "23:00", "01:30", 2, (dt(10, 23), dt(11, 1, 35))),  # ends next day
        ({**RESTAURANTS[R], "turn_minutes": {"3": 50, "10": 100}, "buffer_after_minutes": 0},
         "19:00", None, 4, (dt(10, 19), dt(10, 20, 40))),
        ({**RESTAURANTS[R], "services": [{"name": "d", "start": "17:00", "end": "22:00"}]},
         "21:30", None, 2, (dt(10, 21, 30), dt(10, 22, 5))),  # allow_overrun defaults to false
        (LATE, "23:30", "03:00", 2, (dt(10, 23, 30), dt(11, 2, 5))),  # wraps: clamp next day
        (LATE, "01:00", None, 6, (dt(10, 1), dt(10, 2, 5))),  # after midnight: clamp same day
        (LATE, "23:00", "01:00", 2, (dt(10, 23), dt(11, 1, 5))),
    ],
)
def test_expected_window(cfg: dict, start: str, end: str | None, party: int,
                         window: tuple[datetime, datetime]) -> None:
    assert checks.expected_window(cfg, "2030-01-10", start, end, party) == window


def test_check_windows_flags_a_table_held_for_the_wrong_time() -> None:
    off = [ASSIGNMENTS[0], replace(ASSIGNMENTS[1], end=at(20, 15))]  # buffer forgotten
    result = checks.check_windows(expected(), BOOKINGS, off, RESTAURANTS)
    assert result.counts["wrong"] == 1 and "t2" in result.problems[0]
    late_day = [replace(a, start=at(19) + timedelta(days=1), end=at(20, 20) + timedelta(days=1))
                for a in ASSIGNMENTS]  # a booking belongs to its start date
    assert checks.check_windows(expected(), BOOKINGS, late_day, RESTAURANTS).counts["wrong"] == 2


def test_check_windows_counts_past_midnight_bookings() -> None:
    inputs = [create("e1", "b1", t="22:50", p=4, end_time="00:40")]
    exp = checks.expected_states(inputs, set(), RESTAURANTS)
    db = {"b1": replace(BOOKINGS["b1"], pending_ref="r", start_time="22:50",
                        requested_end_time="00:40")}
    held = [Assignment("b1", R, t, at(22, 50), dt(11, 0, 45)) for t in ("t1", "t2")]
    result = checks.check_windows(exp, db, held, RESTAURANTS)
    assert result.ok and result.counts == {"checked": 1, "past_midnight": 1}


# --- walk-ins -------------------------------------------------------------------------------------


def walkin_world() -> tuple[dict[str, checks.Expected], dict[str, DbBooking], list[SinkMail],
                            dict[str, str]]:
    inputs = [walkin("w1", "W-1", key="k1"), walkin("w2", "W-2", rid=NO_CONTACT),
              walkin("w3", "W-3", key="k1")]
    exp = checks.expected_states(inputs, set(), WALKIN_RESTAURANTS)
    db = {
        "W-1": DbBooking("W-1", R, "confirmed", "r1", "2030-01-10", "19:00", 2, None, "done",
                         "created", ("t1",), customer_email="host@r.example",
                         customer_phone="000-k1"),
        "W-2": DbBooking("W-2", NO_CONTACT, "confirmed", "r2", "2030-01-10", "19:00", 2, None,
                         "done", "created", ("t1",), customer_email="walkin+w2@system.local",
                         customer_phone="000-w2"),
    }
    sink = [SinkMail("<W-1.confirmed>", "confirmed", "W-1", "f1.eml", to="host@r.example")]
    return exp, db, sink, checks.repeated_submissions(inputs)


def test_walkins_pass_when_the_contact_rules_hold() -> None:
    exp, db, sink, repeats = walkin_world()
    result = checks.check_walkins(exp, db, sink, repeats)
    assert result.ok, result.problems
    assert result.counts == {"repeated_submissions": 1, "walkins": 2,
                             "walkins_restaurant_email": 1, "walkins_synthetic_email": 1}


@pytest.mark.parametrize(
    ("fault", "expected_problem"),
    [
        ("erased_email", "customer_email None, expected 'host@r.example'"),
        ("bad_phone", "customer_phone '000-W-2'"),
        ("mail_synthetic", "mailed to ['walkin+w2@system.local']"),
        ("wrong_recipient", "expected one of ['host@r.example']"),
        ("repeat_created", "W-3: a repeated submission of W-1"),
        ("repeat_mailed", "mailed for a repeated submission of W-1"),
        ("repeat_published", "status events for a repeated submission"),
    ],
)
def test_walkins_fail_on_each_broken_rule(fault: str, expected_problem: str) -> None:
    exp, db, sink, repeats = walkin_world()
    status_events: list[StatusEvent] = []
    if fault == "erased_email":
        db["W-1"] = replace(db["W-1"], customer_email=None)
    elif fault == "bad_phone":
        db["W-2"] = replace(db["W-2"], customer_phone="000-W-2")
    elif fault == "mail_synthetic":
        sink.append(SinkMail("<W-2.confirmed>", "confirmed", "W-2", to="walkin+w2@system.local"))
    elif fault == "wrong_recipient":
        sink[0] = replace(sink[0], to="someone@else.example")
    elif fault == "repeat_created":
        db["W-3"] = replace(db["W-1"], booking_id="W-3")
    elif fault == "repeat_mailed":
        sink.append(SinkMail("<W-3.request_received>", "request_received", "W-3",
                             to="host@r.example"))
    elif fault == "repeat_published":
        status_events.append(status("booking.pending", "W-3", "r3", "w3"))
    result = checks.check_walkins(exp, db, sink, repeats, status_events)
    assert any(expected_problem in p for p in result.problems), result.problems


def test_a_mail_may_go_to_any_address_the_booking_had() -> None:
    # Staff add the guest's email to a walk-in later: earlier mail went to the restaurant.
    inputs = [walkin("w1", "W-1", key="k1"),
              InputChange("w2", "booking.updated", "W-1", R, "2030-01-10", "19:00", 2, "x",
                          source="ops", customer_email="late@guest.example")]
    exp = checks.expected_states(inputs, set(), WALKIN_RESTAURANTS)
    assert exp["W-1"].customer_emails == ("host@r.example", "late@guest.example")
    db = {"W-1": DbBooking("W-1", R, "confirmed", "r1", "2030-01-10", "19:00", 2, "x", "done",
                           "created", ("t1",), customer_email="late@guest.example",
                           customer_phone="000-k1")}
    sink = [SinkMail("<a>", "request_received", "W-1", to="host@r.example"),
            SinkMail("<b>", "confirmed", "W-1", to="late@guest.example")]
    assert checks.check_walkins(exp, db, sink, {}).ok
    stray = [*sink, SinkMail("<c>", "cancelled", "W-1", to="other@guest.example")]
    assert checks.check_walkins(exp, db, stray, {}).counts["wrong_recipient"] == 1


def test_emails_accept_either_outcome_when_the_address_became_mailable_later() -> None:
    inputs = [walkin("w1", "W-2", rid=NO_CONTACT),
              InputChange("w2", "booking.updated", "W-2", NO_CONTACT, "2030-01-10", "19:00", 2,
                          "x", source="ops", customer_email="late@guest.example")]
    exp = checks.expected_states(inputs, set(), WALKIN_RESTAURANTS)
    assert exp["W-2"].guest_mail is None
    db = {"W-2": DbBooking("W-2", NO_CONTACT, "confirmed", "r2", "2030-01-10", "19:00", 2, "x",
                           "done", "created", ("t1",))}
    skipped = [NotificationRow("W-2", "confirmed", "r2", "skipped", "<W-2.confirmed>")]
    assert checks.check_emails([], skipped, exp, db, allowed_repeats=0).ok
    sent = [replace(skipped[0], status="sent")]
    assert checks.check_emails([SinkMail("<W-2.confirmed>", "confirmed", "W-2")], sent, exp, db,
                               allowed_repeats=0).ok
    assert not checks.check_emails([], sent, exp, db, allowed_repeats=0).ok


def test_emails_want_a_skipped_row_not_a_mail_for_a_synthetic_address() -> None:
    exp, db, _, _ = walkin_world()
    w2 = {"W-2": db["W-2"]}
    exp2 = {"W-2": exp["W-2"]}
    skipped = [NotificationRow("W-2", "confirmed", "r2", "skipped", "<W-2.confirmed>")]
    assert checks.check_emails([], skipped, exp2, w2, allowed_repeats=0).ok
    sent = [replace(skipped[0], status="sent")]
    mailed = [SinkMail("<W-2.confirmed>", "confirmed", "W-2")]
    result = checks.check_emails(mailed, sent, exp2, w2, allowed_repeats=0)
    assert any("no confirmation recorded skipped" in p for p in result.problems)
    assert not checks.check_emails([], [], exp2, w2, allowed_repeats=0).ok


# --- repeats charged to kills ---------------------------------------------------------------------


def test_each_repeat_must_follow_a_kill() -> None:
    first = replace(SINK[0], file="a.eml", at_s=30.0)
    again = replace(SINK[0], file="b.eml", at_s=45.0)
    sink = [first, *SINK[1:], again]
    ok = checks.check_emails(sink, NOTIFICATIONS, expected(), BOOKINGS, allowed_repeats=1,
                             kills_at_s=[12.0, 31.2])
    assert ok.ok, ok.problems
    assert ok.counts["repeats_attributed_to_kills"] == 1
    assert ok.details["repeated"][0]["copies_at_s"] == [30.0, 45.0]
    assert ok.details["repeated"][0]["charged_to_kills_at_s"] == [31.2]
    assert ok.details["repeated"][0]["files"] == ["a.eml", "b.eml"]
    # The kill came before the first copy, or long after it: not a crash repeat.
    for kills in ([12.0, 29.0], [12.0, 45.0]):
        bad = checks.check_emails(sink, NOTIFICATIONS, expected(), BOOKINGS, allowed_repeats=1,
                                  kills_at_s=kills)
        assert any("not a crash repeat" in p for p in bad.problems), bad.problems


def test_one_kill_explains_one_repeat() -> None:
    sink = [replace(SINK[0], at_s=30.0), replace(SINK[1], at_s=30.5), *SINK[2:],
            replace(SINK[0], at_s=50.0), replace(SINK[1], at_s=50.0)]
    result = checks.check_emails(sink, NOTIFICATIONS, expected(), BOOKINGS, allowed_repeats=2,
                                 kills_at_s=[31.0])
    assert result.counts["repeats_attributed_to_kills"] == 1
    assert sum("not a crash repeat" in p for p in result.problems) == 1
    attributed = checks.attribute_repeats({"m": [1.0, 5.0, 9.0]}, [2.0, 6.0])
    assert attributed == {"m": [2.0, 6.0]}  # three copies: two crashes


def test_a_kill_explains_one_repeat_per_smtp_connection_of_the_killed_worker() -> None:
    sink = [replace(SINK[0], at_s=30.0), replace(SINK[1], at_s=30.5), *SINK[2:],
            replace(SINK[0], at_s=50.0), replace(SINK[1], at_s=50.0)]
    two = checks.check_emails(sink, NOTIFICATIONS, expected(), BOOKINGS, allowed_repeats=2,
                              kills_at_s=[31.0], repeats_per_kill=2)
    assert two.ok, two.problems
    assert two.counts["repeats_attributed_to_kills"] == 2
    assert checks.attribute_repeats({"a": [1.0, 3.0], "b": [1.5, 4.0], "c": [1.7, 5.0]},
                                    [2.0], per_kill=2) == {"a": [2.0], "b": [2.0], "c": [None]}


# --- booking_version ------------------------------------------------------------------------------


def versioned(events: list[StatusEvent], versions: list[int]) -> list[StatusEvent]:
    return [replace(ev, booking_version=v) for ev, v in zip(events, versions, strict=True)]


# STATUS per booking: b1 pending(e1) confirmed(e1) pending(e4) confirmed(e4); b2 pending, cancelled.
GOOD_VERSIONS = [1, 2, 1, 3, 4, 2]


def test_versions_are_skipped_with_a_note_when_the_service_has_none() -> None:
    result = checks.check_versions(expected(), STATUS)
    assert result.ok and result.counts["skipped"] == 1 and "booking_version" in result.counts["note"]


def test_versions_pass_when_they_follow_the_decisions() -> None:
    events = versioned(STATUS, GOOD_VERSIONS)
    result = checks.check_versions(expected(), [*events, events[1]])  # a republish
    assert result.ok, result.problems
    assert result.counts["versioned"] == 7


def test_versions_may_start_anywhere_and_leave_gaps() -> None:
    assert checks.check_versions(expected(), versioned(STATUS, [5, 9, 1, 10, 20, 7])).ok


@pytest.mark.parametrize(
    ("versions", "fault"),
    [
        ([1, 2, 1, 2, 4, 2], "b1: version 2 on two events"),
        ([2, 1, 1, 3, 4, 2], "booking.pending (ref-e1) has version 2, not below booking.confirmed"),
        ([1, 3, 1, 2, 4, 2], "booking.confirmed (ref-e1) has version 3, not below booking.pending"
                             " (ref-e4)"),
        ([1, 2, 2, 3, 4, 1], "b2: booking.pending (ref-e2) has version 2, not below "
                             "booking.cancelled"),
    ],
)
def test_versions_catch_reuse_and_disorder(versions: list[int], fault: str) -> None:
    result = checks.check_versions(expected(), versioned(STATUS, versions))
    assert any(fault in p for p in result.problems), result.problems


def test_versions_catch_a_republish_with_another_version_and_missing_versions() -> None:
    events = versioned(STATUS, GOOD_VERSIONS)
    result = checks.check_versions(expected(), [*events, replace(events[4], booking_version=9)])
    assert any("published with versions [4, 9]" in p for p in result.problems)
    partial = checks.check_versions(expected(), [*events[:-1], STATUS[-1]])
    assert any("1 status events without booking_version" in p for p in partial.problems)


def test_versions_want_the_final_state_highest() -> None:
    # b1 ends in the e4 episode; a late booking.allocation_failed of episode e1 above it.
    failed_old = StatusEvent("failed/b1", "booking.allocation_failed", "b1", REF["e1"], "e1",
                             booking_version=5)
    result = checks.check_versions(expected(), [*versioned(STATUS, GOOD_VERSIONS), failed_old])
    assert any("not the final state's event" in p for p in result.problems), result.problems
    assert any("out_of_order" in p or "which the service decided after it" in p
               for p in result.problems)


# --- the mail sink's slow mode (I/O: a real SMTP server on a free port) ---------------------------


def test_mail_sink_slow_mode_delays_each_message_without_serialising_them(tmp_path) -> None:  # noqa: ANN001
    import asyncio
    import time
    from email.message import EmailMessage

    import aiosmtplib

    from devstack import free_port
    from devstack.mailsink import MailSink

    sink = MailSink("127.0.0.1", free_port(), tmp_path)
    with pytest.raises(ValueError):
        sink.set_delay(0.5, 0.1)

    async def send_three() -> float:
        async def one(i: int) -> None:
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@x.example", "b@x.example", str(i)
            msg.set_content("hi")
            await aiosmtplib.send(msg, hostname=sink.host, port=sink.port)

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(3)))
        return time.monotonic() - started

    sink.start()
    try:
        # Delays long against a busy machine's scheduling noise: the bounds compare a
        # second of delay with three seconds (serialised) and with none.
        sink.set_delay(1.0, 1.1)
        assert sink.delay == (1.0, 1.1)
        slow = asyncio.run(send_three())
        assert 1.0 <= slow < 2.5  # side by side, not 3 x 1 s
        sink.set_delay(0)
        assert sink.delay is None and asyncio.run(send_three()) < 1.0
    finally:
        sink.stop()
    assert len(sink.message_files()) == 6


# --- re-seating: published tables by version, and every move checked -----------------------


def versioned_status(extra: list[StatusEvent]) -> list[StatusEvent]:
    versions = {"b1": 0, "b2": 0}
    out = []
    for ev in [*STATUS, *extra]:
        versions[ev.booking_id] += 1
        out.append(replace(ev, booking_version=versions[ev.booking_id]))
    return out


def test_a_moved_booking_holds_the_tables_of_its_latest_tables_changed() -> None:
    move = status("booking.tables_changed", "b1", REF["e4"], "e4", ("t3", "t4"))
    events = versioned_status([move])
    moved = {**BOOKINGS, "b1": replace(BOOKINGS["b1"], table_ids=("t3", "t4"))}
    assert checks.check_final_states(expected(), moved, events).ok
    # Still on the confirmation's tables: the move was published but not made.
    stale = checks.check_final_states(expected(), BOOKINGS, events)
    assert any("tables_changed (version 5)" in p for p in stale.problems), stale.problems
    # Without the move's event: moved tables no booking.confirmed announced.
    unpublished = checks.check_final_states(expected(), moved, versioned_status([]))
    assert any("says ['t1', 't2']" in p for p in unpublished.problems), unpublished.problems


def test_check_moves_flags_a_move_that_breaks_fit_or_overlaps() -> None:
    fine = checks.check_moves(expected(), {**BOOKINGS, "b1": replace(
        BOOKINGS["b1"], table_ids=("t3", "t4"))}, versioned_status(
        [status("booking.tables_changed", "b1", REF["e4"], "e4", ("t3", "t4"))]), RESTAURANTS)
    assert fine.ok and fine.counts["moves_published"] == 1 and fine.counts["seatings_checked"] == 2
    misfit = checks.check_moves(expected(), BOOKINGS, versioned_status(
        [status("booking.tables_changed", "b1", REF["e4"], "e4", ("t1", "t3"))]), RESTAURANTS)
    assert any("not connected" in p for p in misfit.problems), misfit.problems
    # b2 confirmed at the same time on t1: the published seatings overlap.
    both = {**BOOKINGS, "b2": replace(BOOKINGS["b1"], booking_id="b2", pending_ref=REF["e2"])}
    exp = expected()
    exp["b2"] = replace(exp["b1"], booking_id="b2")
    clash = checks.check_moves(exp, both, versioned_status(
        [status("booking.confirmed", "b2", REF["e2"], "e2", ("t1", "t2"))]), RESTAURANTS)
    assert clash.counts.get("overlaps") and "overlap" in clash.problems[-1], clash.problems
