"""The chaos suite's verdict: pure checks over what the run produced and what it observed.

No I/O here. `tests.chaos.run` collects snapshots (the inputs it generated, rows from
PostgreSQL, records from the status topic, messages from the SMTP sink) into the plain
dataclasses below; each `check_*` returns a `CheckResult` whose `problems` say, one line
each, what is wrong. The run passes only when every check is ok.

What "expected" means is computed from the inputs alone (`expected_states`): the booking
is cancelled or not; its date/time/party come from the last *realigning* change (created,
or an edit of date/time/party), its notes from the last created/updated change.
The pending_ref is opaque (CONTRACT §4), so the expected one is read from the status
topic: the `booking.pending` whose `caused_by` is that last realigning change.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_PROBLEMS_LISTED = 50
REALIGN_FIELDS = ("booking_date", "start_time", "party_size")
# Kinds a booking can receive at most once in its life with the chaos inputs (no change
# ever follows a cancellation, so there is one "created" episode chain and one cancel).
ONCE_PER_BOOKING_KINDS = ("request_received", "confirmed", "cancelled")


# --- snapshots ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputChange:
    """One booking change the run produced, and where the broker put it."""

    event_id: str
    type: str  # booking.created | booking.updated | booking.cancelled
    booking_id: str
    restaurant_id: str
    booking_date: str | None = None  # YYYY-MM-DD
    start_time: str | None = None  # HH:MM
    party_size: int | None = None
    notes: str | None = None
    partition: int = -1
    offset: int = -1
    sent_at_s: float = 0.0  # seconds since the run started


@dataclass(frozen=True)
class Expected:
    booking_id: str
    restaurant_id: str
    cancelled: bool
    booking_date: str
    start_time: str
    party_size: int
    notes: str | None
    episode_causes: tuple[str, ...]  # event ids of the created + realigning changes, in order
    detail_only: tuple[str, ...]  # event ids of notes-only edits
    must_confirm: bool  # it can always be seated (a restaurant and date of its own)

    @property
    def last_cause(self) -> str:
        return self.episode_causes[-1]


@dataclass(frozen=True)
class DbBooking:
    booking_id: str
    restaurant_id: str
    status: str
    pending_ref: str | None
    booking_date: str
    start_time: str
    party_size: int
    notes: str | None
    alloc_state: str
    episode_kind: str
    table_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Assignment:
    """A row of booking_tables: a table held for [start, end)."""

    booking_id: str
    restaurant_id: str
    table_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class StatusEvent:
    """A record of `<prefix>booking-status` (CONTRACT §5)."""

    event_id: str
    type: str
    booking_id: str
    pending_ref: str | None
    caused_by: str | None
    table_ids: tuple[str, ...] | None = None
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True)
class NotificationRow:
    """A row of the notifications table; `message_id` is the Message-ID its email carries."""

    booking_id: str
    kind: str
    pending_ref: str
    status: str
    message_id: str


@dataclass(frozen=True)
class SinkMail:
    """One message the SMTP sink stored."""

    message_id: str
    kind: str
    booking_id: str
    file: str = ""


@dataclass(frozen=True)
class Leftovers:
    """Work still outstanding when the run declared quiescence."""

    outbox_rows: int
    notifications_active: int  # held | due | sending
    allocations_active: int  # pending bookings with alloc_state queued | retry
    parked_changes: int
    dead_letters: int


@dataclass
class CheckResult:
    name: str
    problems: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "counts": self.counts,
            "problem_count": len(self.problems),
            "problems": self.problems[:MAX_PROBLEMS_LISTED],
            "details": self.details,
        }


# --- expectations from the inputs ---------------------------------------------------------------


def expected_states(
    changes: Iterable[InputChange], always_seatable: set[str]
) -> dict[str, Expected]:
    """The final state each booking must reach, from the changes in production order.

    `always_seatable` names restaurants where the generator gave every booking dates no
    other booking uses, so allocation cannot fail: those bookings must end confirmed.
    """
    by_booking: dict[str, list[InputChange]] = defaultdict(list)
    for change in changes:
        by_booking[change.booking_id].append(change)
    result: dict[str, Expected] = {}
    for booking_id, seq in by_booking.items():
        first = seq[0]
        if first.type != "booking.created":
            raise ValueError(f"{booking_id}: the first change is {first.type}, not a create")
        assert first.booking_date and first.start_time and first.party_size
        date, start, party, notes = (
            first.booking_date, first.start_time, first.party_size, first.notes
        )
        causes, details, cancelled = [first.event_id], [], False
        for change in seq[1:]:
            if cancelled:
                raise ValueError(f"{booking_id}: {change.type} after the cancellation")
            if change.type == "booking.cancelled":
                cancelled = True
                continue
            if change.type != "booking.updated":
                raise ValueError(f"{booking_id}: a second {change.type}")
            new = (change.booking_date, change.start_time, change.party_size)
            if new != (date, start, party):
                causes.append(change.event_id)
                date, start, party = new  # type: ignore[assignment]
            else:
                details.append(change.event_id)
            notes = change.notes
        result[booking_id] = Expected(
            booking_id=booking_id,
            restaurant_id=first.restaurant_id,
            cancelled=cancelled,
            booking_date=date,
            start_time=start,
            party_size=party,
            notes=notes,
            episode_causes=tuple(causes),
            detail_only=tuple(details),
            must_confirm=first.restaurant_id in always_seatable,
        )
    return result


def pending_ref_by_cause(events: Iterable[StatusEvent]) -> dict[str, set[str | None]]:
    """caused_by -> the distinct pending_refs of the booking.pending events it caused."""
    refs: dict[str, set[str | None]] = defaultdict(set)
    for ev in events:
        if ev.type == "booking.pending" and ev.caused_by is not None:
            refs[ev.caused_by].add(ev.pending_ref)
    return refs


# --- checks --------------------------------------------------------------------------------------


def check_none_lost(
    changes: Sequence[InputChange],
    processed_event_ids: Iterable[str],
    committed: Mapping[int, int] | None = None,
) -> CheckResult:
    """Every produced event_id is in processed_events; lost ones are listed by partition.

    `committed` (partition -> the group's committed offset) tells a loss for good (the group
    committed past the event) from one still waiting to be read.
    """
    result = CheckResult("none_lost")
    processed = set(processed_event_ids)
    produced = {c.event_id for c in changes}
    lost = [c for c in changes if c.event_id not in processed]
    by_partition: Counter[int] = Counter(c.partition for c in lost)
    behind_commit = [
        c for c in lost if committed is not None and c.offset < committed.get(c.partition, -1)
    ]
    for c in lost:
        where = f"partition {c.partition} offset {c.offset}"
        if committed is not None:
            where += f" (group committed {committed.get(c.partition, -1)})"
        result.problems.append(
            f"lost {c.type} {c.event_id} of {c.booking_id} at {where}, sent at {c.sent_at_s:.1f}s"
        )
    unknown = processed - produced
    for event_id in sorted(unknown):
        result.problems.append(f"processed_events has {event_id}, which was never produced")
    result.counts = {
        "produced": len(changes),
        "processed": len(processed & produced),
        "lost": len(lost),
        "lost_behind_committed_offset": len(behind_commit),
        "unknown_processed": len(unknown),
    }
    result.details = {
        "lost_by_partition": {str(p): n for p, n in sorted(by_partition.items())},
        "lost_events": [
            {"event_id": c.event_id, "booking_id": c.booking_id, "type": c.type,
             "partition": c.partition, "offset": c.offset, "sent_at_s": round(c.sent_at_s, 2)}
            for c in lost[:MAX_PROBLEMS_LISTED]
        ],
    }
    return result


def check_final_states(
    expected: Mapping[str, Expected],
    bookings: Mapping[str, DbBooking],
    status_events: Sequence[StatusEvent],
) -> CheckResult:
    """Each booking is in the state its inputs call for, and holds nothing it should not."""
    result = CheckResult("final_states")
    refs = pending_ref_by_cause(status_events)
    confirmed_tables: dict[tuple[str, str | None], set[tuple[str, ...]]] = defaultdict(set)
    for ev in status_events:
        if ev.type == "booking.confirmed":
            confirmed_tables[(ev.booking_id, ev.pending_ref)].add(tuple(sorted(ev.table_ids or ())))
    tally: Counter[str] = Counter()

    def problem(kind: str, text: str) -> None:
        tally[kind] += 1
        result.problems.append(text)

    for bid, exp in sorted(expected.items()):
        db = bookings.get(bid)
        if db is None:
            problem("missing", f"{bid}: not in the database")
            continue
        if exp.cancelled:
            tally["expected_cancelled"] += 1
            if db.status != "cancelled":
                problem("not_cancelled", f"{bid}: expected cancelled, is {db.status}")
        else:
            tally["expected_live"] += 1
            if db.status == "cancelled":
                problem("wrongly_cancelled", f"{bid}: cancelled, but no cancellation was sent")
            elif exp.must_confirm and db.status != "confirmed":
                problem("not_confirmed",
                        f"{bid}: can always be seated but is {db.status} ({db.alloc_state})")
            elif db.status == "pending" and db.alloc_state != "exhausted":
                problem("stuck_pending",
                        f"{bid}: pending with allocation {db.alloc_state} at quiescence")
            tally[f"final_{db.status}"] += 1
        got = (db.booking_date, db.start_time, db.party_size)
        want = (exp.booking_date, exp.start_time, exp.party_size)
        if got != want:
            problem("wrong_realignment", f"{bid}: date/time/party {got}, expected {want}")
        if db.notes != exp.notes:
            problem("wrong_details", f"{bid}: notes {db.notes!r}, expected {exp.notes!r}")
        last_refs = refs.get(exp.last_cause, set())
        if not last_refs:
            problem("no_pending_event",
                    f"{bid}: no booking.pending caused by its last realigning change "
                    f"{exp.last_cause}")
        elif db.pending_ref not in last_refs:
            problem("wrong_episode",
                    f"{bid}: pending_ref {db.pending_ref} is not the one of its last realigning "
                    f"change {exp.last_cause} ({sorted(map(str, last_refs))})")
        if db.status == "confirmed":
            if not db.table_ids:
                problem("confirmed_without_tables", f"{bid}: confirmed but holds no table")
            published = confirmed_tables.get((bid, db.pending_ref), set())
            if tuple(sorted(db.table_ids)) not in published:
                problem("tables_not_published",
                        f"{bid}: holds {list(db.table_ids)} but booking.confirmed for its episode "
                        f"says {sorted(map(list, published))}")
        elif db.table_ids:
            problem("tables_held", f"{bid}: {db.status} but holds {list(db.table_ids)}")
    for bid in sorted(set(bookings) - set(expected)):
        problem("unexpected_booking", f"{bid}: in the database, never produced")
    result.counts = {"bookings": len(expected), **dict(sorted(tally.items()))}
    return result


def check_emails(
    sink: Sequence[SinkMail],
    notifications: Sequence[NotificationRow],
    expected: Mapping[str, Expected],
    bookings: Mapping[str, DbBooking],
    *,
    allowed_repeats: int,
) -> CheckResult:
    """Exactly once per (booking, kind, pending_ref) — the Message-ID names that triple.

    A repeat with the same Message-ID is what CONTRACT §4 allows for a worker killed between
    the server's acceptance and the record: counted apart, and at most `allowed_repeats`.
    """
    result = CheckResult("emails")
    tally: Counter[str] = Counter()

    def problem(kind: str, text: str) -> None:
        tally[kind] += 1
        result.problems.append(text)

    rows = {n.message_id: n for n in notifications}
    rows_by_triple = {(n.booking_id, n.kind, n.pending_ref): n for n in notifications}
    copies = Counter(m.message_id for m in sink)
    repeats = {mid: n - 1 for mid, n in copies.items() if n > 1}
    repeat_total = sum(repeats.values())
    if repeat_total > allowed_repeats:
        problem("repeats_over_crash_window",
                f"{repeat_total} repeated emails (same Message-ID), more than the {allowed_repeats}"
                " the crash window allows")
    first_of: dict[str, SinkMail] = {}
    for mail in sink:
        first_of.setdefault(mail.message_id, mail)
    for mid, mail in first_of.items():
        row = rows.get(mid)
        if row is None:
            problem("unknown_message",
                    f"{mail.booking_id}: {mail.kind} email {mid} matches no notification row")
            continue
        if (mail.booking_id, mail.kind) != (row.booking_id, row.kind):
            problem("header_mismatch",
                    f"{mid}: headers say {mail.booking_id}/{mail.kind}, the row "
                    f"{row.booking_id}/{row.kind}")
        if row.status != "sent":
            problem("delivered_not_sent",
                    f"{row.booking_id}: {row.kind} email delivered but its row is {row.status}")
    for n in notifications:
        if n.status == "sent" and n.message_id not in copies:
            problem("sent_not_delivered",
                    f"{n.booking_id}: {n.kind} ({n.pending_ref}) recorded sent, not in the sink")
        if n.status == "failed":
            problem("failed", f"{n.booking_id}: {n.kind} ({n.pending_ref}) failed")
    distinct: dict[tuple[str, str], set[str]] = defaultdict(set)
    for mid, mail in first_of.items():
        distinct[(mail.booking_id, mail.kind)].add(mid)
    for (bid, kind), mids in sorted(distinct.items()):
        if kind in ONCE_PER_BOOKING_KINDS and len(mids) > 1:
            problem("duplicate", f"{bid}: {len(mids)} different {kind} emails")

    def delivered(bid: str, kinds: tuple[str, ...], ref: str | None) -> bool:
        return any(
            (row := rows_by_triple.get((bid, kind, ref or ""))) is not None
            and row.message_id in copies
            for kind in kinds
        )

    for bid, exp in sorted(expected.items()):
        db = bookings.get(bid)
        if db is None:
            continue  # reported by final_states
        if exp.cancelled and db.status == "cancelled":
            if not delivered(bid, ("cancelled",), db.pending_ref):
                problem("missing_final", f"{bid}: no cancelled email delivered")
        elif db.status == "confirmed":
            if not delivered(bid, ("confirmed", "modification_confirmed"), db.pending_ref):
                problem("missing_final", f"{bid}: no confirmation delivered for its last episode")
        elif db.status == "pending" and db.alloc_state == "exhausted":
            if not delivered(bid, ("allocation_failed",), db.pending_ref):
                problem("missing_final", f"{bid}: no allocation_failed email delivered")
    result.counts = {
        "delivered": len(sink),
        "distinct": len(first_of),
        "notification_rows": len(notifications),
        "crash_window_repeats": repeat_total,
        "allowed_repeats": allowed_repeats,
        **dict(sorted(tally.items())),
    }
    result.details = {
        "repeated": [
            {"message_id": mid, "booking_id": first_of[mid].booking_id,
             "kind": first_of[mid].kind, "copies": n + 1}
            for mid, n in sorted(repeats.items())
        ][:MAX_PROBLEMS_LISTED],
        "by_kind": dict(sorted(Counter(m.kind for m in first_of.values()).items())),
    }
    return result


def check_tables(
    assignments: Sequence[Assignment], bookings: Mapping[str, DbBooking]
) -> CheckResult:
    """No two bookings hold one table in overlapping windows; only confirmed ones hold any."""
    result = CheckResult("tables")
    by_table: dict[tuple[str, str], list[Assignment]] = defaultdict(list)
    for a in assignments:
        by_table[(a.restaurant_id, a.table_id)].append(a)
    overlaps = 0
    for (rid, tid), held in sorted(by_table.items()):
        held.sort(key=lambda a: (a.start, a.end))
        # Sorted by start: an overlap, if any, is with the latest-ending window so far.
        latest: Assignment | None = None
        for a in held:
            if latest is not None and a.start < latest.end:
                overlaps += 1
                result.problems.append(
                    f"{rid}/{tid}: {latest.booking_id} [{latest.start:%Y-%m-%d %H:%M}, "
                    f"{latest.end:%H:%M}) overlaps {a.booking_id} [{a.start:%H:%M}, {a.end:%H:%M})"
                )
            if latest is None or a.end > latest.end:
                latest = a
    holders = {a.booking_id for a in assignments}
    leaked = 0
    for bid in sorted(holders):
        db = bookings.get(bid)
        if db is None or db.status != "confirmed":
            leaked += 1
            status = db.status if db else "missing"
            result.problems.append(f"{bid}: holds tables while {status}")
    result.counts = {
        "assignments": len(assignments),
        "tables_used": len(by_table),
        "overlaps": overlaps,
        "held_by_unconfirmed": leaked,
    }
    return result


def check_applied_once(
    expected: Mapping[str, Expected], status_events: Sequence[StatusEvent]
) -> CheckResult:
    """No change applied twice, no decision taken twice, as the status topic shows them.

    A republished status event keeps its event_id and content (at-least-once, CONTRACT §5);
    two different contents for one event_id, or two different table sets confirmed for one
    (booking, pending_ref), or two episodes from one change, mean something ran twice.
    """
    result = CheckResult("applied_once")
    tally: Counter[str] = Counter()

    def problem(kind: str, text: str) -> None:
        tally[kind] += 1
        result.problems.append(text)

    contents: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    for ev in status_events:
        contents[ev.event_id].add(
            (ev.type, ev.booking_id, ev.pending_ref, ev.caused_by,
             tuple(sorted(ev.table_ids)) if ev.table_ids is not None else None)
        )
    for event_id, variants in sorted(contents.items()):
        if len(variants) > 1:
            problem("conflicting_republish",
                    f"status event {event_id} published with {len(variants)} different contents")
    confirmed: dict[tuple[str, str | None], set[tuple[str, ...]]] = defaultdict(set)
    cancels: dict[str, set[str]] = defaultdict(set)
    for ev in status_events:
        if ev.booking_id not in expected:
            problem("unknown_booking", f"status event {ev.event_id} for unknown {ev.booking_id}")
            continue
        if ev.type == "booking.confirmed":
            confirmed[(ev.booking_id, ev.pending_ref)].add(tuple(sorted(ev.table_ids or ())))
        elif ev.type == "booking.cancelled":
            cancels[ev.booking_id].add(ev.event_id)
        elif ev.type == "booking.pending":
            exp = expected[ev.booking_id]
            if ev.caused_by in exp.detail_only:
                problem("details_realigned",
                        f"{ev.booking_id}: notes-only edit {ev.caused_by} started an episode")
            elif ev.caused_by not in exp.episode_causes:
                problem("unknown_cause",
                        f"{ev.booking_id}: booking.pending caused by {ev.caused_by}, not one of "
                        "its created/realigning changes")
    for (bid, ref), table_sets in sorted(confirmed.items(), key=lambda kv: str(kv[0])):
        if len(table_sets) > 1:
            problem("confirmed_twice",
                    f"{bid}: episode {ref} confirmed with {len(table_sets)} table sets "
                    f"{sorted(map(list, table_sets))}")
    for bid, ids in sorted(cancels.items()):
        if len(ids) > 1:
            problem("cancelled_twice", f"{bid}: {len(ids)} different booking.cancelled events")
    refs = pending_ref_by_cause(status_events)
    for bid, exp in sorted(expected.items()):
        for cause in exp.episode_causes:
            found = refs.get(cause, set())
            if len(found) > 1:
                problem("episode_twice",
                        f"{bid}: change {cause} started {len(found)} different episodes")
            elif not found:
                tally["cause_without_pending_event"] += 1  # a lost change; none_lost says why
        if exp.cancelled and not cancels.get(bid):
            tally["cancel_without_event"] += 1
    result.counts = {
        "status_records": len(status_events),
        "distinct_status_events": len(contents),
        "republished": len(status_events) - len(contents),
        **dict(sorted(tally.items())),
    }
    return result


def check_drained(left: Leftovers) -> CheckResult:
    """Nothing left to do: outbox empty, no email or allocation in flight, no dead letter."""
    result = CheckResult("drained")
    for name, count in (
        ("outbox_rows", left.outbox_rows),
        ("notifications_active", left.notifications_active),
        ("allocations_active", left.allocations_active),
        ("parked_changes", left.parked_changes),
        ("dead_letters", left.dead_letters),
    ):
        result.counts[name] = count
        if count:
            result.problems.append(f"{count} {name.replace('_', ' ')} left at the end")
    return result


def check_workers(unexpected_exits: Sequence[Mapping[str, Any]]) -> CheckResult:
    """Only the scenario's SIGKILLs ended workers. A crash is a defect; a signal from outside
    the run (its log says "Signal received") means the run did not test what it claims."""
    result = CheckResult("workers")
    for ex in unexpected_exits:
        how = "stopped by a signal from outside the run" if ex.get("signal_logged") else "crashed"
        result.problems.append(
            f"{ex.get('worker')} (pid {ex.get('pid')}) {how}, exit code {ex.get('returncode')}, "
            f"at {ex.get('at_s')}s"
        )
    result.counts = {
        "unexpected_exits": len(unexpected_exits),
        "outside_signals": sum(1 for ex in unexpected_exits if ex.get("signal_logged")),
    }
    return result


def verdict_line(results: Sequence[CheckResult], summary: Mapping[str, Any]) -> str:
    """One line: PASS/FAIL and the counts a person looks at first."""
    ok = all(r.ok for r in results)
    failed = [r.name for r in results if not r.ok]
    parts = [f"{k}={v}" for k, v in summary.items()]
    head = "PASS" if ok else f"FAIL ({', '.join(failed)})"
    return f"chaos: {head} " + " ".join(parts)
