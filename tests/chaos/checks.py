"""The chaos suite's verdict: pure checks over what the run produced and what it observed.

No I/O here. `tests.chaos.run` collects snapshots (the inputs it generated, rows from
PostgreSQL, records from the status topic, messages from the SMTP sink) into the plain
dataclasses below; each `check_*` returns a `CheckResult` whose `problems` say, one line
each, what is wrong. The run passes only when every check is ok.

What "expected" means is computed from the inputs alone (`expected_states`): the booking
is cancelled or not; its date/time/end/party come from the last *realigning* change
(created, or an edit of date/time/end/party), its notes from the last created/updated
change, its stored contact details from the contact rules (docs/interface.md §4 "Ops walk-ins",
"Contact details are never erased by an edit"). A repeated submission (another booking_id,
same restaurant and idempotency_key) is expected to create nothing.
The pending_ref is opaque (docs/interface.md §4), so the expected one is read from the status
topic: the `booking.pending` whose `caused_by` is that last realigning change.

Where tables fit and how long they are held are computed here, independently of the
service, from the restaurant configurations as published (plain dicts, docs/interface.md §2).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

MAX_PROBLEMS_LISTED = 50
REALIGN_FIELDS = ("booking_date", "start_time", "end_time", "party_size")
# docs/interface.md §2 defaults.
DEFAULT_TURN_MINUTES = {2: 60, 4: 75, 6: 85, 8: 90}
DEFAULT_BUFFER_AFTER_MINUTES = 5
DEFAULT_MAX_TABLES = 3
SYNTHETIC_DOMAIN = "system.local"
# A crash repeat's first copy is accepted by the server just before its worker dies
# (docs/interface.md §4: "keep that window as short as one message"). A repeat whose first copy has no
# kill within this many seconds after it is not a crash repeat. Generous: the record may wait
# out a PostgreSQL restart.
REPEAT_KILL_WINDOW_S = 10.0
Restaurants = Mapping[str, Mapping[str, Any]]  # restaurant_id -> configuration as published
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
    end_time: str | None = None  # HH:MM; earlier than start_time = the next day
    source: str = "guest"
    channel: str | None = None
    idempotency_key: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None


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
    end_time: str | None = None  # as last requested (None = from turn minutes)
    source: str = "guest"
    idempotency_key: str | None = None  # of the create
    customer_email: str | None = None  # what the service must store (docs/interface.md §4)
    customer_phone: str | None = None
    # Every address the booking had, in order (an edit may add one to a walk-in): an email
    # goes to the address the booking had when it was decided.
    customer_emails: tuple[str | None, ...] = ()
    restaurant_contact: str | None = None  # where allocation_failed goes (None: not known)
    restaurant_mail: bool = True  # the restaurant has a contact email (allocation_failed sent)

    @property
    def guest_mail(self) -> bool | None:
        """Guest emails are delivered (True), recorded `skipped` (False: no address it may
        mail, docs/interface.md §4), or either (None: it had both kinds of address over time)."""
        mailable = {_mailable(e) for e in self.customer_emails or (self.customer_email,)}
        return mailable.pop() if len(mailable) == 1 else None

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
    requested_end_time: str | None = None  # HH:MM as requested (bookings.requested_end_time)
    customer_email: str | None = None
    customer_phone: str | None = None


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
    """A record of `<prefix>booking-status` (docs/interface.md §5)."""

    event_id: str
    type: str
    booking_id: str
    pending_ref: str | None
    caused_by: str | None
    table_ids: tuple[str, ...] | None = None
    partition: int = -1
    offset: int = -1
    booking_version: int | None = None  # docs/interface.md §5 rev 2; None when the service omits it


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
    to: str = ""  # envelope recipients, comma-separated ("" = not known)
    at_s: float | None = None  # when the sink stored it, seconds since the run started


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


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _mailable(address: str | None) -> bool:
    return not _blank(address) and not is_synthetic(address)


def is_synthetic(address: str | None) -> bool:
    """A `@system.local` address (docs/interface.md §4): never mailed. Also inside "Name <addr>"."""
    if _blank(address):
        return False
    assert address is not None
    addr = address.strip().lower()
    if "<" in addr and addr.endswith(">"):
        addr = addr[addr.rindex("<") + 1 : -1]
    return addr.rstrip(".").endswith("@" + SYNTHETIC_DOMAIN)


def walkin_slug(idempotency_key: str | None, booking_id: str) -> str:
    """docs/interface.md §4: idempotency_key (else booking_id), lowercased, only [a-z0-9], cut to 24."""
    basis = booking_id if _blank(idempotency_key) else idempotency_key
    assert basis is not None
    return re.sub(r"[^a-z0-9]", "", basis.lower())[:24]


def created_contact(
    change: InputChange, restaurant_contact: str | None
) -> tuple[str | None, str | None]:
    """The (customer_email, customer_phone) a create must store (docs/interface.md §4 "Ops walk-ins")."""
    email = None if _blank(change.customer_email) else change.customer_email
    phone = None if _blank(change.customer_phone) else change.customer_phone
    if change.source != "ops":
        return email, phone
    slug = walkin_slug(change.idempotency_key, change.booking_id)
    if email is None:
        email = (restaurant_contact if not _blank(restaurant_contact)
                 else f"walkin+{slug}@{SYNTHETIC_DOMAIN}")
    if phone is None:
        phone = f"000-{slug}"
    return email, phone


def repeated_submissions(changes: Iterable[InputChange]) -> dict[str, str]:
    """booking_id of each repeated submission -> the booking that owns its idempotency key.

    A repeat is a `booking.created` for another booking_id with the same restaurant and
    idempotency_key as an earlier create (in production order); it must create nothing.
    """
    owner: dict[tuple[str, str], str] = {}
    repeats: dict[str, str] = {}
    for change in changes:
        if change.type != "booking.created" or _blank(change.idempotency_key):
            continue
        key = (change.restaurant_id, change.idempotency_key or "")
        first = owner.setdefault(key, change.booking_id)
        if first != change.booking_id:
            repeats[change.booking_id] = first
    return repeats


def expected_states(
    changes: Iterable[InputChange], always_seatable: set[str],
    restaurants: Restaurants | None = None,
) -> dict[str, Expected]:
    """The final state each booking must reach, from the changes in production order.

    `always_seatable` names restaurants where the generator gave every booking dates no
    other booking uses, so allocation cannot fail: those bookings must end confirmed.
    `restaurants` (the configurations as published) supply the contact email a walk-in
    without one falls back to. Repeated submissions (`repeated_submissions`) are left out:
    they must create nothing.
    """
    changes = list(changes)
    repeats = repeated_submissions(changes)
    by_booking: dict[str, list[InputChange]] = defaultdict(list)
    for change in changes:
        by_booking[change.booking_id].append(change)
    result: dict[str, Expected] = {}
    for booking_id, seq in by_booking.items():
        first = seq[0]
        if first.type != "booking.created":
            raise ValueError(f"{booking_id}: the first change is {first.type}, not a create")
        if booking_id in repeats:
            if len(seq) > 1:
                raise ValueError(f"{booking_id}: a repeated submission with further changes")
            continue
        assert first.booking_date and first.start_time and first.party_size
        date_, start, end, party, notes = (
            first.booking_date, first.start_time, first.end_time, first.party_size, first.notes
        )
        contact = (restaurants or {}).get(first.restaurant_id, {}).get("contact_email")
        email, phone = created_contact(first, contact)
        emails = [email]
        causes, details, cancelled = [first.event_id], [], False
        for change in seq[1:]:
            if cancelled:
                raise ValueError(f"{booking_id}: {change.type} after the cancellation")
            if change.type == "booking.cancelled":
                cancelled = True
                continue
            if change.type != "booking.updated":
                raise ValueError(f"{booking_id}: a second {change.type}")
            new = (change.booking_date, change.start_time, change.end_time, change.party_size)
            if new != (date_, start, end, party):
                causes.append(change.event_id)
                date_, start, end, party = new  # type: ignore[assignment]
            else:
                details.append(change.event_id)
            notes = change.notes
            # Contact details are never erased by an edit (docs/interface.md §4, rev 2).
            if not _blank(change.customer_email):
                email = change.customer_email
                if email != emails[-1]:
                    emails.append(email)
            if not _blank(change.customer_phone):
                phone = change.customer_phone
        result[booking_id] = Expected(
            booking_id=booking_id,
            restaurant_id=first.restaurant_id,
            cancelled=cancelled,
            booking_date=date_,
            start_time=start,
            party_size=party,
            notes=notes,
            episode_causes=tuple(causes),
            detail_only=tuple(details),
            must_confirm=first.restaurant_id in always_seatable,
            end_time=end,
            source=first.source,
            idempotency_key=first.idempotency_key,
            customer_email=email,
            customer_phone=phone,
            customer_emails=tuple(emails),
            restaurant_contact=contact,
            restaurant_mail=restaurants is None or not _blank(contact),
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
    *,
    dead_lettered: Mapping[str, str] | None = None,
    parked: Iterable[str] = (),
) -> CheckResult:
    """Every produced event_id is in processed_events; lost ones are listed by partition.

    `committed` (partition -> the group's committed offset) tells a loss for good (the group
    committed past the event) from one still waiting to be read. `dead_lettered` (event_id
    -> why) and `parked` (event_ids waiting for their restaurant) say where an unprocessed
    event went: still a problem, but not a silent loss. Silent losses are listed first.
    """
    result = CheckResult("none_lost")
    processed = set(processed_event_ids)
    produced = {c.event_id for c in changes}
    dead = dict(dead_lettered or {})
    waiting = set(parked)

    def why(c: InputChange) -> str | None:
        if c.event_id in dead:
            return f"dead-lettered ({dead[c.event_id]})"
        if c.event_id in waiting:
            return "parked (its restaurant is not configured)"
        return None

    lost = sorted((c for c in changes if c.event_id not in processed),
                  key=lambda c: why(c) is not None)
    by_partition: Counter[int] = Counter(c.partition for c in lost)
    behind_commit = [
        c for c in lost if committed is not None and c.offset < committed.get(c.partition, -1)
    ]
    for c in lost:
        where = f"partition {c.partition} offset {c.offset}"
        if committed is not None:
            where += f" (group committed {committed.get(c.partition, -1)})"
        reason = why(c)
        result.problems.append(
            f"lost {c.type} {c.event_id} of {c.booking_id} at {where}, sent at {c.sent_at_s:.1f}s"
            + (f": {reason}" if reason else "")
        )
    unknown = processed - produced
    for event_id in sorted(unknown):
        result.problems.append(f"processed_events has {event_id}, which was never produced")
    result.counts = {
        "produced": len(changes),
        "processed": len(processed & produced),
        "lost": len(lost),
        "lost_dead_lettered": sum(1 for c in lost if c.event_id in dead),
        "lost_parked": sum(1 for c in lost if c.event_id not in dead and c.event_id in waiting),
        "lost_silently": sum(1 for c in lost if why(c) is None),
        "lost_behind_committed_offset": len(behind_commit),
        "unknown_processed": len(unknown),
    }
    result.details = {
        "lost_by_partition": {str(p): n for p, n in sorted(by_partition.items())},
        "lost_events": [
            {"event_id": c.event_id, "booking_id": c.booking_id, "type": c.type,
             "partition": c.partition, "offset": c.offset, "sent_at_s": round(c.sent_at_s, 2),
             "went": why(c)}
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
    latest = latest_seating(status_events)
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
        got = (db.booking_date, db.start_time, db.requested_end_time, db.party_size)
        want = (exp.booking_date, exp.start_time, exp.end_time, exp.party_size)
        if got != want:
            problem("wrong_realignment", f"{bid}: date/time/end/party {got}, expected {want}")
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
            seating = latest.get(bid)
            if seating is not None:
                # With versions: the tables are those of the highest-version booking.confirmed
                # or booking.tables_changed (a re-seated booking moved after its confirmation).
                if seating.pending_ref != db.pending_ref or (
                        tuple(sorted(db.table_ids)) != tuple(sorted(seating.table_ids or ()))):
                    problem("tables_not_published",
                            f"{bid}: holds {list(db.table_ids)} in episode {db.pending_ref}, but "
                            f"its latest {seating.type} (version {seating.booking_version}) says "
                            f"{list(seating.table_ids or ())} in episode {seating.pending_ref}")
            else:
                published = confirmed_tables.get((bid, db.pending_ref), set())
                if tuple(sorted(db.table_ids)) not in published:
                    problem("tables_not_published",
                            f"{bid}: holds {list(db.table_ids)} but booking.confirmed for its "
                            f"episode says {sorted(map(list, published))}")
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
    kills_at_s: Sequence[float] | None = None,
    repeats_per_kill: int = 1,
) -> CheckResult:
    """Exactly once per (booking, kind, pending_ref) — the Message-ID names that triple.

    A repeat with the same Message-ID is what docs/interface.md §4 allows for a worker killed between
    the server's acceptance and the record: counted apart, and at most `allowed_repeats`
    (one per message in flight on a killed worker: `repeats_per_kill`, its SMTP connections;
    rev 2 grants none for an outage or a slow server). With `kills_at_s` (when the run killed
    workers) each repeat must also be attributable: its first copy stored at most
    REPEAT_KILL_WINDOW_S before a kill, at most `repeats_per_kill` repeats per kill.
    A booking whose stored address is synthetic or blank gets no guest email: its final
    email's row must be `skipped` instead (likewise allocation_failed for a restaurant
    without contact_email).
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
    copy_times: dict[str, list[float]] = defaultdict(list)
    for mail in sink:
        if mail.message_id in repeats and mail.at_s is not None:
            copy_times[mail.message_id].append(mail.at_s)
    attributed = attribute_repeats(
        {mid: copy_times.get(mid, []) for mid in repeats}, kills_at_s or (),
        per_kill=repeats_per_kill,
    )
    if kills_at_s is not None:
        for mid, charged in sorted(attributed.items()):
            unexplained = repeats[mid] - sum(1 for k in charged if k is not None)
            if unexplained > 0:
                times = ", ".join(f"{t:.1f}s" for t in sorted(copy_times.get(mid, [])))
                problem("repeat_without_kill",
                        f"{first_of[mid].booking_id}: {first_of[mid].kind} {mid} delivered "
                        f"{repeats[mid] + 1} times (at {times or 'unknown times'}); {unexplained} "
                        f"of its repeats had no kill within {REPEAT_KILL_WINDOW_S:.0f} s after "
                        "the copy before it (not a crash repeat)")
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

    def delivered(bid: str, kinds: tuple[str, ...], ref: str | None, mailed: bool | None) -> bool:
        """Delivered when it may be mailed; else decided and recorded `skipped`, not sent;
        `mailed` None: either."""
        for kind in kinds:
            row = rows_by_triple.get((bid, kind, ref or ""))
            if row is None:
                continue
            if mailed is not False and row.message_id in copies:
                return True
            if mailed is not True and row.status == "skipped" and row.message_id not in copies:
                tally["skipped_final"] += 1
                return True
        return False

    for bid, exp in sorted(expected.items()):
        db = bookings.get(bid)
        if db is None:
            continue  # reported by final_states
        how = {True: "delivered", False: "recorded skipped (no address to mail)",
               None: "delivered or recorded skipped"}[exp.guest_mail]
        if exp.cancelled and db.status == "cancelled":
            if not delivered(bid, ("cancelled",), db.pending_ref, exp.guest_mail):
                problem("missing_final", f"{bid}: no cancelled email {how}")
        elif db.status == "confirmed":
            if not delivered(bid, ("confirmed", "modification_confirmed"), db.pending_ref,
                             exp.guest_mail):
                problem("missing_final", f"{bid}: no confirmation {how} for its last episode")
        elif db.status == "pending" and db.alloc_state == "exhausted":
            if not delivered(bid, ("allocation_failed",), db.pending_ref, exp.restaurant_mail):
                problem("missing_final", f"{bid}: no allocation_failed email "
                        + ("delivered" if exp.restaurant_mail else "recorded skipped"))
    result.counts = {
        "delivered": len(sink),
        "distinct": len(first_of),
        "notification_rows": len(notifications),
        "crash_window_repeats": repeat_total,
        "allowed_repeats": allowed_repeats,
        **dict(sorted(tally.items())),
    }
    result.counts["repeats_attributed_to_kills"] = sum(
        1 for ks in attributed.values() for k in ks if k is not None)
    result.details = {
        "repeated": [
            {"message_id": mid, "booking_id": first_of[mid].booking_id,
             "kind": first_of[mid].kind, "copies": n + 1,
             "files": [m.file for m in sink if m.message_id == mid],
             "copies_at_s": [round(t, 2) for t in sorted(copy_times.get(mid, []))],
             "charged_to_kills_at_s": attributed.get(mid, [])}
            for mid, n in sorted(repeats.items(),
                                 key=lambda kv: (min(copy_times.get(kv[0]) or [math.inf]), kv[0]))
        ][:MAX_PROBLEMS_LISTED],
        "by_kind": dict(sorted(Counter(m.kind for m in first_of.values()).items())),
    }
    return result


def attribute_repeats(
    copies_at_s: Mapping[str, Sequence[float]], kills_at_s: Sequence[float], *,
    per_kill: int = 1,
) -> dict[str, list[float | None]]:
    """Message-ID -> per repeat, the kill (seconds) it is charged to, or None.

    Every copy but the last of a repeated message was accepted just before a worker that had
    sent it was killed: that kill comes after the copy, within REPEAT_KILL_WINDOW_S. At
    most `per_kill` repeats per kill (a killed worker had at most one message in flight on
    each of its SMTP connections). The earliest copy takes the earliest free kill.
    """
    pending = sorted(
        (t, mid) for mid, times in copies_at_s.items() for t in sorted(times)[:-1]
    )
    free = sorted(kills_at_s)
    used = [0] * len(free)
    out: dict[str, list[float | None]] = {mid: [] for mid in copies_at_s}
    for at, mid in pending:
        charged: float | None = None
        for i, kill in enumerate(free):
            if used[i] < per_kill and at - 0.5 <= kill <= at + REPEAT_KILL_WINDOW_S:
                used[i] += 1
                charged = kill
                break
        out[mid].append(charged)
    return out


SEATING_TYPES = ("booking.confirmed", "booking.tables_changed")


def latest_seating(events: Iterable[StatusEvent]) -> dict[str, StatusEvent]:
    """Per booking, its highest-version booking.confirmed or booking.tables_changed: where
    the service says it sits. Only events that carry booking_version count."""
    latest: dict[str, StatusEvent] = {}
    for ev in events:
        if ev.type in SEATING_TYPES and ev.booking_version is not None:
            held = latest.get(ev.booking_id)
            if held is None or ev.booking_version > (held.booking_version or 0):
                latest[ev.booking_id] = ev
    return latest


def check_moves(
    expected: Mapping[str, Expected],
    bookings: Mapping[str, DbBooking],
    status_events: Sequence[StatusEvent],
    restaurants: Restaurants,
) -> CheckResult:
    """Re-seating, checked from the status topic, the inputs and the configs (never the
    service's own tables): every seating published for a booking's final episode (its
    confirmation and each booking.tables_changed) fits its party; and the seatings in force
    at the end (each confirmed booking's latest one, at the window its inputs give) never
    put two bookings on one table at once."""
    result = CheckResult("moves")
    tally: Counter[str] = Counter()
    latest = latest_seating(status_events)
    for ev in status_events:
        if ev.type == "booking.tables_changed":
            tally["moves_published"] += 1
    windows: dict[tuple[str, str], list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for bid, db in sorted(bookings.items()):
        exp = expected.get(bid)
        cfg = restaurants.get(db.restaurant_id)
        if exp is None or cfg is None or db.status != "confirmed":
            continue
        for ev in status_events:
            if (ev.booking_id == bid and ev.type in SEATING_TYPES
                    and ev.pending_ref == db.pending_ref):
                tally["seatings_checked"] += 1
                for why in fit_problems(cfg, ev.table_ids or (), exp.party_size):
                    tally["misfits"] += 1
                    result.problems.append(
                        f"{bid} (party {exp.party_size}): {ev.type} v{ev.booking_version} seats "
                        f"it at {list(ev.table_ids or ())}: {why}")
        seating = latest.get(bid)
        if seating is not None:
            start, end = expected_window(cfg, exp.booking_date, exp.start_time, exp.end_time,
                                         exp.party_size)
            for tid in seating.table_ids or ():
                windows[(db.restaurant_id, tid)].append((start, end, bid))
    for (rid, tid), spans in sorted(windows.items()):
        spans.sort()
        for (s1, e1, b1), (s2, _, b2) in zip(spans, spans[1:], strict=False):
            if s2 < e1:
                tally["overlaps"] += 1
                result.problems.append(f"{rid}/{tid}: published seatings of {b1} "
                                       f"[{s1:%m-%d %H:%M}, {e1:%H:%M}) and {b2} overlap")
    result.counts = dict(sorted(tally.items()))
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


# --- restaurant rules, computed independently of the service (docs/interface.md §2) ------------------------


def _hhmm(value: str) -> time:
    return datetime.strptime(value, "%H:%M").time()


def turn_minutes(cfg: Mapping[str, Any], party: int) -> int:
    """The first bracket "up to N" that holds the party, else the largest."""
    turns = {int(k): int(v) for k, v in (cfg.get("turn_minutes") or DEFAULT_TURN_MINUTES).items()}
    for limit in sorted(turns):
        if party <= limit:
            return turns[limit]
    return turns[max(turns)]


def service_of(cfg: Mapping[str, Any], start: time) -> Mapping[str, Any] | None:
    """The first service (config order) whose hours hold `start`; an end earlier than the
    start runs past midnight (docs/interface.md §2 rev 2)."""
    for svc in cfg.get("services") or []:
        s, e = _hhmm(svc["start"]), _hhmm(svc["end"])
        if (s <= start < e) if s < e else (start >= s or start < e):
            return svc
    return None


def expected_window(
    cfg: Mapping[str, Any], booking_date: str, start_time: str, end_time: str | None, party: int
) -> tuple[datetime, datetime]:
    """[start, end + buffer_after_minutes) a confirmed booking holds its tables for.

    End: the explicit end_time (earlier than the start = the next day), else start + turn
    minutes; clamped at the end of the booking's service when that has allow_overrun false
    (a service that wraps midnight ends the next day for a start before midnight).
    """
    day = date.fromisoformat(booking_date)
    st = _hhmm(start_time)
    start_at = datetime.combine(day, st)
    if end_time is not None:
        end_at = datetime.combine(day, _hhmm(end_time))
        if end_at <= start_at:
            end_at += timedelta(days=1)
    else:
        end_at = start_at + timedelta(minutes=turn_minutes(cfg, party))
    svc = service_of(cfg, st)
    if svc is not None and not svc.get("allow_overrun", False):
        s, e = _hhmm(svc["start"]), _hhmm(svc["end"])
        svc_end = datetime.combine(day, e)
        if e < s and st >= s:
            svc_end += timedelta(days=1)
        end_at = min(end_at, svc_end)
    buffer = cfg.get("buffer_after_minutes")
    buffer = DEFAULT_BUFFER_AFTER_MINUTES if buffer is None else int(buffer)
    return start_at, end_at + timedelta(minutes=buffer)


def fit_problems(cfg: Mapping[str, Any], table_ids: Sequence[str], party: int) -> list[str]:
    """Why `table_ids` may not seat `party` (docs/interface.md §2, §4 "Allocation"); [] when they may."""
    tables = {t["table_id"]: t for t in cfg.get("tables") or []}
    held = list(table_ids)
    unknown = [t for t in held if t not in tables]
    if unknown:
        return [f"unknown tables {unknown}"]
    out = []
    rows = [tables[t] for t in held]
    inactive = [t["table_id"] for t in rows if not t.get("active", True)]
    if inactive:
        out.append(f"inactive tables {inactive}")
    limit = cfg.get("max_tables_per_booking") or DEFAULT_MAX_TABLES
    if len(held) > limit:
        out.append(f"{len(held)} tables, more than max_tables_per_booking {limit}")
    seats = sum(int(t["capacity"]) for t in rows)
    if seats < party:
        out.append(f"{seats} seats for a party of {party}")

    def max_party(t: Mapping[str, Any]) -> int:
        return int(t["max_party"]) if t.get("max_party") is not None else int(t["capacity"])

    def min_party(t: Mapping[str, Any]) -> int:
        return int(t.get("min_party") or 1)

    if len(rows) == 1:
        lo, hi = min_party(rows[0]), max_party(rows[0])
        if not lo <= party <= hi:
            out.append(f"party {party} outside {held[0]}'s min/max {lo}..{hi}")
    elif rows:
        if party > sum(max_party(t) for t in rows):
            out.append(f"party {party} above the tables' max_party sum {sum(map(max_party, rows))}")
        if party < min(min_party(t) for t in rows):
            out.append(f"party {party} below the smallest min_party {min(map(min_party, rows))}")
    zones = sorted({str(t.get("zone") or "main") for t in rows})
    if len(zones) > 1:
        out.append(f"tables in several zones {zones}")
    if len(held) > 1:
        edges: dict[str, set[str]] = defaultdict(set)
        for a, b in cfg.get("adjacency") or []:
            edges[a].add(b)
            edges[b].add(a)
        seen, todo = {held[0]}, [held[0]]
        while todo:
            for nxt in edges[todo.pop()] & set(held):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        if seen != set(held):
            out.append(f"tables {sorted(held)} not connected through the adjacency graph")
    return out


def check_fit(
    expected: Mapping[str, Expected], bookings: Mapping[str, DbBooking], restaurants: Restaurants
) -> CheckResult:
    """Every confirmed booking holds tables that may seat its party (from the inputs: the
    party of its last realigning change, the restaurant's configuration as published)."""
    result = CheckResult("fit")
    tally: Counter[str] = Counter()
    for bid, db in sorted(bookings.items()):
        exp = expected.get(bid)
        if db.status != "confirmed" or exp is None or not db.table_ids:
            continue  # final_states reports those
        cfg = restaurants.get(db.restaurant_id)
        if cfg is None:
            tally["unknown_restaurant"] += 1
            result.problems.append(f"{bid}: confirmed at {db.restaurant_id}, which was never "
                                   "configured")
            continue
        tally["checked"] += 1
        tally[f"tables_{len(db.table_ids)}"] += 1
        for why in fit_problems(cfg, db.table_ids, exp.party_size):
            tally["misfits"] += 1
            result.problems.append(f"{bid} (party {exp.party_size}) at {db.restaurant_id} holds "
                                   f"{list(db.table_ids)}: {why}")
    result.counts = dict(sorted(tally.items()))
    return result


def check_windows(
    expected: Mapping[str, Expected],
    bookings: Mapping[str, DbBooking],
    assignments: Sequence[Assignment],
    restaurants: Restaurants,
) -> CheckResult:
    """Each table a confirmed booking holds is held exactly for its window: start .. end +
    buffer_after_minutes, computed from the inputs (`expected_window`)."""
    result = CheckResult("windows")
    tally: Counter[str] = Counter()
    held: dict[str, list[Assignment]] = defaultdict(list)
    for a in assignments:
        held[a.booking_id].append(a)
    for bid, db in sorted(bookings.items()):
        exp = expected.get(bid)
        cfg = restaurants.get(db.restaurant_id)
        if db.status != "confirmed" or exp is None or cfg is None or not held.get(bid):
            continue  # final_states / fit / tables report those
        start, end = expected_window(cfg, exp.booking_date, exp.start_time, exp.end_time,
                                     exp.party_size)
        tally["checked"] += 1
        if end.date() > start.date():
            tally["past_midnight"] += 1
        for a in sorted(held[bid], key=lambda a: a.table_id):
            if (a.start, a.end) != (start, end):
                tally["wrong"] += 1
                result.problems.append(
                    f"{bid} ({exp.booking_date} {exp.start_time}-{exp.end_time or 'turn'}, party "
                    f"{exp.party_size}) holds {a.table_id} [{a.start:%Y-%m-%d %H:%M}, "
                    f"{a.end:%Y-%m-%d %H:%M}), expected [{start:%Y-%m-%d %H:%M}, "
                    f"{end:%Y-%m-%d %H:%M})")
    result.counts = dict(sorted(tally.items()))
    return result


def _addresses(to: str) -> list[str]:
    return [a.strip().lower() for a in to.split(",") if a.strip()]


def check_walkins(
    expected: Mapping[str, Expected],
    bookings: Mapping[str, DbBooking],
    sink: Sequence[SinkMail],
    repeats: Mapping[str, str],
    status_events: Sequence[StatusEvent] = (),
) -> CheckResult:
    """Contact rules (docs/interface.md §4 "Ops walk-ins"), for every booking and its mail.

    Stored customer_email / customer_phone are what the inputs call for (the guest's, else
    the restaurant's contact_email, else walkin+<slug>@system.local; a blank phone becomes
    000-<slug>); no mail goes to an @system.local address; each mail goes to the booking's
    stored address (allocation_failed: the restaurant's contact); a repeated submission
    (`repeats`: its booking_id -> the owner's) has no booking row, no mail, no status event.
    An edit may add an address to a walk-in: a mail may go to any address the booking had.
    """
    result = CheckResult("walkins")
    tally: Counter[str] = Counter()

    def problem(kind: str, text: str) -> None:
        tally[kind] += 1
        result.problems.append(text)

    for bid, exp in sorted(expected.items()):
        if exp.source == "ops":
            tally["walkins"] += 1
            if is_synthetic(exp.customer_email):
                tally["walkins_synthetic_email"] += 1
            elif exp.customer_email == exp.restaurant_contact:
                tally["walkins_restaurant_email"] += 1
        db = bookings.get(bid)
        if db is None:
            continue  # final_states reports it
        if (db.customer_email or None) != exp.customer_email:
            problem("wrong_email", f"{bid} ({exp.source}): customer_email {db.customer_email!r}, "
                    f"expected {exp.customer_email!r}")
        if (db.customer_phone or None) != exp.customer_phone:
            problem("wrong_phone", f"{bid} ({exp.source}): customer_phone {db.customer_phone!r}, "
                    f"expected {exp.customer_phone!r}")
    for mail in sink:
        to = _addresses(mail.to)
        synthetic = [a for a in to if is_synthetic(a)]
        if synthetic:
            problem("mailed_synthetic", f"{mail.booking_id}: {mail.kind} mailed to {synthetic} "
                    f"({mail.file})")
        if mail.booking_id in repeats:
            problem("repeat_mailed", f"{mail.booking_id}: {mail.kind} mailed for a repeated "
                    f"submission of {repeats[mail.booking_id]} ({mail.file})")
            continue
        exp = expected.get(mail.booking_id)
        if exp is None or not to:
            continue
        wants = ([exp.restaurant_contact] if mail.kind == "allocation_failed"
                 else list(exp.customer_emails or (exp.customer_email,)))
        allowed = [w.strip().lower() for w in wants if _mailable(w)]
        if wants and wants[0] is not None and (len(to) != 1 or to[0] not in allowed):
            problem("wrong_recipient", f"{mail.booking_id}: {mail.kind} mailed to {to}, expected "
                    f"one of {allowed} ({mail.file})")
    status_of_repeats = Counter(ev.booking_id for ev in status_events if ev.booking_id in repeats)
    for bid, owner in sorted(repeats.items()):
        tally["repeated_submissions"] += 1
        if bid in bookings:
            problem("repeat_created", f"{bid}: a repeated submission of {owner} (same restaurant "
                    f"and idempotency_key) created booking row ({bookings[bid].status})")
        if status_of_repeats[bid]:
            problem("repeat_published", f"{bid}: {status_of_repeats[bid]} status events for a "
                    f"repeated submission of {owner}")
    result.counts = dict(sorted(tally.items()))
    return result


# Order of a booking's status events inside one episode (docs/interface.md §4, §5).
_EPISODE_ORDER = {"booking.pending": 0, "booking.allocation_failed": 1, "booking.confirmed": 2,
                  "booking.tables_changed": 3}


def check_versions(
    expected: Mapping[str, Expected], status_events: Sequence[StatusEvent]
) -> CheckResult:
    """booking_version (docs/interface.md §5 rev 2) grows with every event the service decides.

    Per booking: one version per event_id (a republish keeps it), distinct event_ids have
    distinct versions, and versions follow the decision order the inputs imply: episodes in
    the order of their causing changes; inside one, pending < allocation_failed < confirmed
    < tables_changed; the cancellation last. So the final state's event has the highest
    version. Skipped (ok, with a note) when no status event carries the field.
    """
    result = CheckResult("versions")
    tally: Counter[str] = Counter()
    versioned = [ev for ev in status_events if ev.booking_version is not None]
    if not versioned:
        result.counts = {"skipped": 1, "status_records": len(status_events),
                         "note": "no status event carries booking_version (not implemented yet)"}
        return result

    def problem(kind: str, text: str) -> None:
        tally[kind] += 1
        result.problems.append(text)

    unversioned = len(status_events) - len(versioned)
    if unversioned:
        problem("missing_version", f"{unversioned} status events without booking_version")
    by_booking: dict[str, dict[str, StatusEvent]] = defaultdict(dict)
    versions_of: dict[str, set[int]] = defaultdict(set)
    for ev in versioned:
        by_booking[ev.booking_id].setdefault(ev.event_id, ev)
        versions_of[ev.event_id].add(ev.booking_version)  # type: ignore[arg-type]
    for event_id, vs in sorted(versions_of.items()):
        if len(vs) > 1:
            problem("republished_other_version",
                    f"status event {event_id} published with versions {sorted(vs)}")
    cause_of_ref = {ev.pending_ref: ev.caused_by for ev in status_events
                    if ev.type == "booking.pending"}
    for bid, events in sorted(by_booking.items()):
        tally["bookings"] += 1
        seen: dict[int, str] = {}
        for ev in events.values():
            v = ev.booking_version
            assert v is not None
            if v in seen:
                problem("version_reused", f"{bid}: version {v} on two events "
                        f"({seen[v]}, {ev.event_id} {ev.type})")
            seen.setdefault(v, ev.event_id)
        exp = expected.get(bid)
        if exp is None:
            continue  # applied_once reports it
        keyed: list[tuple[tuple[float, int], StatusEvent]] = []
        for ev in events.values():
            if ev.type == "booking.cancelled":
                keyed.append(((math.inf, 0), ev))
                continue
            cause = cause_of_ref.get(ev.pending_ref)
            if cause not in exp.episode_causes or ev.type not in _EPISODE_ORDER:
                tally["events_unordered"] += 1  # an episode whose pending event is missing
                continue
            keyed.append(((exp.episode_causes.index(cause), _EPISODE_ORDER[ev.type]), ev))
        keyed.sort(key=lambda kv: (kv[0], kv[1].booking_version))
        groups: list[tuple[tuple[float, int], list[StatusEvent]]] = []
        for key, ev in keyed:
            if groups and groups[-1][0] == key:
                groups[-1][1].append(ev)
            else:
                groups.append((key, [ev]))
        for (_, before), (_, after) in zip(groups, groups[1:], strict=False):
            hi = max(before, key=lambda e: e.booking_version or 0)
            lo = min(after, key=lambda e: e.booking_version or 0)
            if (hi.booking_version or 0) >= (lo.booking_version or 0):
                problem("out_of_order",
                        f"{bid}: {hi.type} ({hi.pending_ref}) has version {hi.booking_version}, "
                        f"not below {lo.type} ({lo.pending_ref}) version {lo.booking_version}, "
                        "which the service decided after it")
        if keyed:
            top = max((ev for _, ev in keyed), key=lambda e: e.booking_version or 0)
            last_ref = next((r for r, c in cause_of_ref.items() if c == exp.last_cause), None)
            final_ok = (top.type == "booking.cancelled" if exp.cancelled
                        else top.pending_ref == last_ref and top.type != "booking.cancelled")
            if not final_ok:
                problem("final_not_highest",
                        f"{bid}: the highest version ({top.booking_version}) is {top.type} "
                        f"({top.pending_ref}), not the final state's event")
    result.counts = {"status_records": len(status_events), "versioned": len(versioned),
                     **dict(sorted(tally.items()))}
    return result


def check_applied_once(
    expected: Mapping[str, Expected], status_events: Sequence[StatusEvent]
) -> CheckResult:
    """No change applied twice, no decision taken twice, as the status topic shows them.

    A republished status event keeps its event_id and content (at-least-once, docs/interface.md §5);
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
