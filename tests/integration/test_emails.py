"""Emails through the real broker, PostgreSQL and SMTP sink (docs/interface.md §4 "Emails", §5).

The sink is shared by the whole session: every assertion filters by booking id, and a test
that stops the sink or makes it refuse recipients restores it in a `finally`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from mail.render import SUBJECTS, message_id_for
from models.events import NotificationRecord
from producers.publisher import make_cancel
from tests.integration.conftest import PROMPT_WINDOW_MS, Harness, restaurant
from tests.integration.test_lifecycle import (
    created,
    email_sent,
    ops_of,
    status_types,
    updated,
    wait_topic,
)
from tests.support.workers import WorkerProcess

GUEST_KINDS = {"request_received", "confirmed", "modification_pending",
               "modification_confirmed", "cancelled"}
CALENDAR_KINDS = {"confirmed", "modification_confirmed"}


def recipient(msg: EmailMessage) -> str:
    return msg["To"].addresses[0].addr_spec


def assert_contract_email(msg: EmailMessage, kind: str, booking_id: str, to: str) -> None:
    """One email as docs/interface.md §4 describes it: subject, headers, multipart, .ics or not."""
    assert msg["X-Seatflow-Kind"] == kind
    assert msg["X-Seatflow-Booking"] == booking_id
    assert msg["Subject"] == SUBJECTS[kind]
    assert recipient(msg) == to
    assert msg["X-Envelope-To"] == to  # the SMTP envelope, not only the header
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", msg["Message-ID"])
    assert msg.is_multipart()
    types = [p.get_content_type() for p in msg.walk()]
    assert "text/plain" in types and "text/html" in types, types
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip()
    has_ics = "text/calendar" in types
    assert has_ics == (kind in CALENDAR_KINDS), (kind, types)
    if has_ics:
        (ics,) = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
        assert ics.get_filename().endswith(".ics")
        assert b"BEGIN:VEVENT" in ics.get_payload(decode=True)


def kinds_of(h: Harness, booking_id: str) -> list[str]:
    return [m["X-Seatflow-Kind"] for m in h.mails(booking_id)]


async def wait_mails(h: Harness, booking_id: str, count: int, timeout: float = 15.0) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = h.mails(booking_id)
        if len(mails) >= count:
            return mails
        await asyncio.sleep(0.1)
    raise AssertionError(f"{booking_id}: {count} mails expected, got {kinds_of(h, booking_id)}")


def queued_records(values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Notification records by kind; fails on two records for one decision."""
    by_kind: dict[str, dict[str, Any]] = {}
    for v in values:
        assert v["kind"] not in by_kind, f"two records for one decision: {values}"
        by_kind[v["kind"]] = v
    return by_kind


async def test_each_kind_arrives_once_as_the_contract_describes(paced_harness: Harness) -> None:
    """One table. a: confirmed -> edited onto b's slot (modification_pending, allocation_failed)
    -> b cancelled frees it (modification_confirmed); c: too big (request_received,
    allocation_failed).

    Paced worker: a and b are confirmed well inside the 5 s window (no request_received),
    a's edit and c stay pending past it, and the window is shorter than the retries, so each
    pending email is sent before the allocation_failed of its episode."""
    h = paced_harness
    rid = h.ids("r")
    a, b, c = h.ids("a"), h.ids("b"), h.ids("c")
    contact = f"host-{h.tag}@resto.example"
    await h.publish(
        restaurant(rid, tables=1, contact_email=contact),
        created(h, a, rid, start="19:00"),
        created(h, b, rid, start="21:00"),
        created(h, c, rid, start="19:00", party=3),
    )
    await h.wait_booking(a, email_sent("confirmed"))
    await h.wait_booking(b, email_sent("confirmed"))

    await h.publish(updated(a, rid, start="21:00"))  # c's retries run meanwhile
    await h.wait_booking(c, email_sent("request_received"))
    await h.wait_booking(c, email_sent("allocation_failed"))
    await h.wait_booking(a, email_sent("modification_pending"))
    await h.wait_booking(a, email_sent("allocation_failed"))
    await h.publish(make_cancel(b, rid))
    await h.wait_booking(a, email_sent("modification_confirmed"))
    await h.wait_booking(b, email_sent("cancelled"))
    await h.settle(a, b, c, restaurant_id=rid, emails=True)

    expected = {
        a: ["confirmed", "modification_pending", "allocation_failed", "modification_confirmed"],
        b: ["confirmed", "cancelled"],
        c: ["request_received", "allocation_failed"],
    }
    message_ids: set[str] = set()
    for bid, kinds in expected.items():
        mails = h.mails(bid)
        assert [m["X-Seatflow-Kind"] for m in mails] == kinds, bid
        statuses = await h.topic_values("booking_status", key=bid)
        notes = queued_records(await h.topic_values("notifications", key=bid))
        view = h.booking(bid)
        assert view is not None
        assert sorted(notes) == sorted(kinds), bid
        for msg in mails:
            kind = msg["X-Seatflow-Kind"]
            to = f"{bid}@guest.example" if kind in GUEST_KINDS else contact
            assert_contract_email(msg, kind, bid, to)
            message_ids.add(msg["Message-ID"])
            assert msg["Message-ID"] == message_id_for(bid, kind, notes[kind]["pending_ref"])
            # One record per decision, its id derived from (booking, kind, pending_ref).
            note = notes[kind]
            assert note["status"] == "queued" and note["to"] == to and note["channel"] == "email"
            assert note["notification_id"] == NotificationRecord.make_id(
                bid, kind, note["pending_ref"]
            )
            assert note["pending_ref"] in {s["pending_ref"] for s in statuses}
            # /bookings/{id} lists the email with its status and episode.
            listed = [(e["status"], e["pending_ref"]) for e in view["emails"] if e["kind"] == kind]
            assert listed == [("sent", note["pending_ref"])], view["emails"]
    assert len(message_ids) == sum(len(k) for k in expected.values())
    a_ops = await h.topic_values("ops_events", key=a)
    assert [o["context"]["modification"] for o in ops_of(a_ops, "auto_assign.failed")] == [True]
    c_ops = await h.topic_values("ops_events", key=c)
    assert [o["context"]["modification"] for o in ops_of(c_ops, "auto_assign.failed")] == [False]
    # Both of a's episodes: the confirmation and the modification have different refs.
    a_notes = queued_records(await h.topic_values("notifications", key=a))
    assert a_notes["confirmed"]["pending_ref"] != a_notes["modification_confirmed"]["pending_ref"]
    assert a_notes["modification_pending"]["pending_ref"] == (
        a_notes["modification_confirmed"]["pending_ref"]
    )


async def test_inline_window_fast_confirmation_only_slow_request_then_confirmed(
    paced_harness: Harness,
) -> None:
    # Paced worker: `fast` is confirmed well inside the 5 s window; `slow` cannot be before
    # the holder's cancel, which the test sends only after slow's pending email went out.
    h = paced_harness
    rid = h.ids("r")
    holder, fast, slow = h.ids("holder"), h.ids("fast"), h.ids("slow")
    await h.publish(restaurant(rid, tables=1), created(h, holder, rid, start="19:00"),
                    created(h, fast, rid, start="21:00"))
    await h.wait_booking(fast, email_sent("confirmed"))
    await h.publish(created(h, slow, rid, start="19:00"))
    # Still pending after the window: the guest hears the request was received.
    await h.wait_booking(slow, email_sent("request_received"))
    await h.publish(make_cancel(holder, rid))
    await h.wait_booking(slow, email_sent("confirmed"))
    await h.settle(fast, slow, restaurant_id=rid, emails=True)

    assert kinds_of(h, fast) == ["confirmed"]
    fast_view = h.booking(fast)
    assert fast_view is not None
    assert {(e["kind"], e["status"]) for e in fast_view["emails"]} == {
        ("request_received", "cancelled"), ("confirmed", "sent")
    }
    guest = f"{slow}@guest.example"
    assert [m["X-Seatflow-Kind"] for m in h.mails(slow) if recipient(m) == guest] == [
        "request_received", "confirmed"
    ]


async def test_redelivering_every_input_again_sends_nothing_new(prompt_harness: Harness) -> None:
    h = prompt_harness  # every confirmation inside the window: no pending emails
    rid, a, b = h.ids("r"), h.ids("a"), h.ids("b")
    inputs = [
        restaurant(rid),
        created(h, a, rid, start="19:00"),
        created(h, b, rid, start="20:00"),
    ]
    await h.publish(*inputs)
    await h.wait_booking(b, email_sent("confirmed"))
    later = [updated(a, rid, start="19:30"), make_cancel(b, rid)]
    await h.publish(*later)
    await h.wait_booking(a, email_sent("modification_confirmed"))
    await h.wait_booking(b, email_sent("cancelled"))
    await h.settle(a, b, restaurant_id=rid, emails=True)

    def snapshot() -> dict[str, Any]:
        return {bid: (kinds_of(h, bid), h.booking(bid)) for bid in (a, b)}

    async def published() -> list[list[dict[str, Any]]]:
        return [await h.topic_values(t, key=bid) for bid in (a, b)
                for t in ("booking_status", "notifications")]

    before, before_topics = snapshot(), await published()
    await h.publish(*inputs, *later)
    await h.settle(a, b, restaurant_id=rid, emails=True)
    assert snapshot() == before
    assert await published() == before_topics
    assert kinds_of(h, a) == ["confirmed", "modification_confirmed"]
    assert kinds_of(h, b) == ["confirmed", "cancelled"]


async def test_smtp_outage_delivers_each_email_exactly_once_after_it_returns(
    prompt_harness: Harness,
) -> None:
    h = prompt_harness  # confirmed inside the window: the confirmation is the only email
    sink = h.stack.mail_sink
    rid, a, b = h.ids("r"), h.ids("a"), h.ids("b")
    # ~6 s: the sender has failed 3 times by then and backs off 1, 2, 4 s; at 10 s its next
    # try would be 8 s later, doubling the test's length for nothing new.
    outage_s = 6.0
    sink.stop()
    try:
        started = time.monotonic()
        await h.publish(restaurant(rid), created(h, a, rid), created(h, b, rid, start="20:00"))
        # The sender tried and is backing off, not giving up.
        for bid in (a, b):
            view = await h.wait_booking(
                bid, lambda v: any(e["kind"] == "confirmed" and e["attempts"] >= 2
                                   for e in v["emails"]),
            )
            (mail,) = [e for e in view["emails"] if e["kind"] == "confirmed"]
            assert mail["status"] in ("due", "sending"), mail
        await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - started)))
        assert h.mails(a) == h.mails(b) == []
    finally:
        sink.start()
    for bid in (a, b):
        await h.wait_booking(bid, email_sent("confirmed"), timeout=20.0)
    await h.emails_settled()  # a send still under way has finished and been published
    assert kinds_of(h, a) == ["confirmed"]
    assert kinds_of(h, b) == ["confirmed"]
    for bid in (a, b):
        ops = await h.topic_values("ops_events", key=bid)
        assert len(ops_of(ops, "email.sent")) == 1
        assert ops_of(ops, "email.failed") == []
        # One decision, one record, however many attempts it took.
        notes = await h.topic_values("notifications", key=bid)
        assert [(n["kind"], n["status"]) for n in notes] == [("confirmed", "queued")]


async def test_permanent_rejection_marks_the_email_failed_once(prompt_harness: Harness) -> None:
    h = prompt_harness  # confirmed inside the window: the confirmation is the only email
    sink = h.stack.mail_sink
    rid, bid, witness = h.ids("r"), h.ids("b"), h.ids("witness")
    sink.reject_recipients(re.escape(f"{bid}@guest.example"), 550)
    # The witness's mail is refused temporarily, so the sender backs off and tries again.
    sink.reject_recipients(re.escape(f"{witness}@guest.example"), 451)
    try:
        await h.publish(restaurant(rid), created(h, bid, rid))
        view = await h.wait_booking(
            bid, lambda v: any(e["kind"] == "confirmed" and e["status"] == "failed"
                               for e in v["emails"]),
        )
        # The witness's first try comes after bid's, so its retry falls due after a retry
        # of bid's would have: once the witness has been tried twice, bid had its turn.
        await h.publish(created(h, witness, rid, start="21:00"))
        await h.wait_booking(
            witness, lambda v: any(e["kind"] == "confirmed" and e["attempts"] >= 2
                                   for e in v["emails"]),
        )
        await h.emails_settled()
        view = h.booking(bid)
    finally:
        sink.accept_all()
    assert view is not None
    (mail,) = [e for e in view["emails"] if e["kind"] == "confirmed"]
    assert mail["status"] == "failed" and mail["attempts"] == 1, mail
    assert view["status"] == "confirmed"  # the booking itself is unaffected
    ops = await wait_topic(h, "ops_events", bid, lambda v: ops_of(v, "email.failed") != [])
    (failed,) = ops_of(ops, "email.failed")
    assert failed["context"]["kind"] == "confirmed" and failed["severity"] == "error"
    assert ops_of(ops, "email.sent") == []
    assert h.mails(bid) == []


async def test_suppressed_emails_are_recorded_but_never_sent(
    start_worker: Callable[..., WorkerProcess], stack: Any,
) -> None:
    # Confirmed inside the (long) window: no request_received is decided at all.
    h = Harness(start_worker(suppress_emails=True, inline_confirm_window_ms=PROMPT_WINDOW_MS),
                stack)
    rid, bid = h.ids("r"), h.ids("b")
    await h.publish(restaurant(rid), created(h, bid, rid))
    await h.wait_booking(bid, lambda v: any(e["kind"] == "confirmed" and e["status"] ==
                                            "suppressed" for e in v["emails"]))
    await h.publish(make_cancel(bid, rid))
    await h.wait_booking(bid, lambda v: any(e["kind"] == "cancelled" and e["status"] ==
                                            "suppressed" for e in v["emails"]))
    await h.settle(bid, restaurant_id=rid, emails=True)
    notes = await wait_topic(h, "notifications", bid, lambda v: len(v) >= 2)
    assert {(n["kind"], n["status"]) for n in notes} == {
        ("confirmed", "suppressed"), ("cancelled", "suppressed")
    }
    assert len(notes) == 2
    ops = await wait_topic(h, "ops_events", bid, lambda v: len(ops_of(v, "email.suppressed")) >= 2)
    assert sorted(o["context"]["kind"] for o in ops_of(ops, "email.suppressed")) == [
        "cancelled", "confirmed"
    ]
    assert ops_of(ops, "email.sent") == []
    assert status_types(await h.topic_values("booking_status", key=bid)) == [
        "booking.pending", "booking.confirmed", "booking.cancelled"
    ]
    assert h.mails(bid) == []
