"""Booking lifecycle through the real broker, PostgreSQL and SMTP (docs/interface.md §4, §5)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from producers.publisher import make_cancel, make_change
from tests.integration.conftest import Harness, restaurant
from tests.support.workers import WorkerProcess

DAY = "2030-06-14"
# No longer used here: "nothing else happened" is proven with the harness's sentinels
# (`Harness.settle` and friends), not a sleep. Kept for modules that still import it.
SETTLE_S = 1.0


def created(h: Harness, booking: str, rid: str, *, start: str = "19:00", party: int = 2, **kw):
    return make_change(
        "booking.created", booking, rid, booking_date=DAY, start_time=start, party_size=party,
        customer_name="Ada Lovelace", customer_email=f"{booking}@guest.example", **kw,
    )


def updated(booking: str, rid: str, *, start: str = "19:00", party: int = 2,
            day: str = DAY, **kw):
    """The whole booking as it is after the edit (docs/interface.md §3)."""
    kw.setdefault("customer_name", "Ada Lovelace")
    kw.setdefault("customer_email", f"{booking}@guest.example")
    return make_change(
        "booking.updated", booking, rid, booking_date=day, start_time=start, party_size=party, **kw
    )


async def wait_topic(
    h: Harness,
    name: str,
    key: str,
    predicate: Callable[[list[dict[str, Any]]], Any],
    timeout: float = 15.0,
) -> list[dict[str, Any]]:
    """The topic's values for `key` once `predicate` holds on them (AssertionError if never)."""
    return await h.wait_topic(name, key, predicate, timeout)


def status_types(values: list[dict[str, Any]]) -> list[str]:
    return [v["type"] for v in values]


def ops_of(values: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [v for v in values if v["event_type"] == event_type]


def email_sent(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda b: any(e["kind"] == kind and e["status"] == "sent" for e in b["emails"])


async def test_created_with_capacity_is_confirmed_with_one_email(prompt_harness: Harness) -> None:
    harness = prompt_harness  # confirmed inside a window no latency reaches
    rid, bid = harness.ids("r"), harness.ids("b")
    await harness.publish(restaurant(rid), created(harness, bid, rid))

    booking = await harness.wait_booking(bid, lambda b: b["status"] == "confirmed")
    assert len(booking["table_ids"]) == 1
    booking = await harness.wait_booking(
        bid, lambda b: any(e["kind"] == "confirmed" and e["status"] == "sent" for e in b["emails"])
    )
    statuses = await wait_topic(harness, "booking_status", bid, lambda v: len(v) >= 2)
    assert [s["type"] for s in statuses] == ["booking.pending", "booking.confirmed"]
    assert statuses[1]["variant"] == "standard" and statuses[1]["reason"] == "created"
    assert statuses[0]["pending_ref"] == statuses[1]["pending_ref"] == booking["pending_ref"]
    kinds = {(e["kind"], e["status"]) for e in booking["emails"]}
    # Confirmed inside the inline window: the held request_received is cancelled.
    assert kinds == {("request_received", "cancelled"), ("confirmed", "sent")}
    mails = harness.mails(bid)
    assert [m["X-Seatflow-Kind"] for m in mails] == ["confirmed"]


async def test_full_restaurant_waits_then_confirms_when_a_cancellation_frees_a_table(
    harness: Harness,
) -> None:
    rid = harness.ids("r")
    first, second = harness.ids("first"), harness.ids("second")
    await harness.publish(restaurant(rid, tables=1), created(harness, first, rid))
    await harness.wait_booking(first, lambda b: b["status"] == "confirmed")
    await harness.publish(created(harness, second, rid))
    await harness.wait_booking(second, lambda b: b["status"] == "pending" and b["attempts"] >= 1)

    await harness.publish(make_cancel(first, rid))
    await harness.wait_booking(first, lambda b: b["status"] == "cancelled" and not b["table_ids"])
    confirmed = await harness.wait_booking(second, lambda b: b["status"] == "confirmed")
    assert confirmed["table_ids"] == ["t1"]


async def test_realigning_edit_of_confirmed_booking_goes_pending_then_confirmed_modified(
    prompt_harness: Harness,
) -> None:
    harness = prompt_harness  # both confirmations land inside the window
    # One table: the edited booking can only get t1 again if its own hold was released.
    rid, bid = harness.ids("r"), harness.ids("b")
    create = created(harness, bid, rid, start="19:00")
    await harness.publish(restaurant(rid, tables=1), create)
    first = await harness.wait_booking(bid, email_sent("confirmed"))
    assert first["table_ids"] == ["t1"]

    edit = updated(bid, rid, start="19:30")
    await harness.publish(edit)
    statuses = await wait_topic(harness, "booking_status", bid, lambda v: len(v) >= 4)
    assert status_types(statuses) == [
        "booking.pending", "booking.confirmed", "booking.pending", "booking.confirmed"
    ]
    pending, confirmed = statuses[2], statuses[3]
    assert pending["reason"] == "modification" and pending["caused_by"] == edit.event_id
    assert pending["pending_ref"] not in (None, first["pending_ref"])
    assert not pending.get("table_ids")  # the tables were cleared with the flip to pending
    assert confirmed["variant"] == "modified" and confirmed["table_ids"] == ["t1"]
    assert confirmed["pending_ref"] == pending["pending_ref"]
    assert statuses[1]["variant"] == "standard" and statuses[1]["caused_by"] == create.event_id

    booking = await harness.wait_booking(bid, email_sent("modification_confirmed"))
    assert booking["start_time"] == "19:30" and booking["pending_ref"] == pending["pending_ref"]
    ops = await wait_topic(
        harness, "ops_events", bid,
        lambda v: ops_of(v, "booking.modification.confirmed") != [],
    )
    assert len(ops_of(ops, "booking.modification.pending")) == 1
    assert [m["X-Seatflow-Kind"] for m in harness.mails(bid)] == [
        "confirmed", "modification_confirmed"
    ]


async def test_details_only_edit_changes_nothing_else(prompt_harness: Harness) -> None:
    harness = prompt_harness
    rid, bid = harness.ids("r"), harness.ids("b")
    await harness.publish(restaurant(rid), created(harness, bid, rid))
    before = await harness.wait_booking(bid, email_sent("confirmed"))

    await harness.publish(
        updated(bid, rid, customer_name="Ada King", notes="window seat please",
                customer_phone="+44 20 0000 0000")
    )
    await harness.wait_booking(bid, lambda b: b["customer_name"] == "Ada King")
    # Whatever the edit caused (a status event, an allocation, an email row) exists by now.
    await harness.settle(bid, restaurant_id=rid)
    after = harness.booking(bid)
    assert after is not None
    assert after["customer_phone"] == "+44 20 0000 0000"
    for field in ("status", "pending_ref", "table_ids", "end_time", "attempts"):
        assert after[field] == before[field], field
    statuses = await harness.topic_values("booking_status", key=bid)
    assert status_types(statuses) == ["booking.pending", "booking.confirmed"]
    assert {(e["kind"], e["status"]) for e in after["emails"]} == {
        ("request_received", "cancelled"), ("confirmed", "sent")
    }
    assert [m["X-Seatflow-Kind"] for m in harness.mails(bid)] == ["confirmed"]


async def test_retries_used_up_end_in_allocation_failed_for_the_restaurant(
    harness: Harness,
) -> None:
    rid = harness.ids("r")
    holder, bid = harness.ids("holder"), harness.ids("b")
    contact = f"host-{harness.tag}@resto.example"
    await harness.publish(
        restaurant(rid, tables=1, contact_email=contact), created(harness, holder, rid)
    )
    await harness.wait_booking(holder, lambda b: b["status"] == "confirmed")
    await harness.publish(created(harness, bid, rid))

    statuses = await wait_topic(
        harness, "booking_status", bid, lambda v: "booking.allocation_failed" in status_types(v)
    )
    assert status_types(statuses) == ["booking.pending", "booking.allocation_failed"]
    failed = statuses[1]
    assert failed["status"] == "pending" and failed["pending_ref"] == statuses[0]["pending_ref"]
    booking = await harness.wait_booking(bid, email_sent("allocation_failed"))
    assert booking["status"] == "pending" and booking["table_ids"] == []
    assert booking["attempts"] == 1 + len(harness.settings.auto_assign_retry_delays_ms)
    # Never confirmed: its request_received goes out once the (short) window has passed.
    await harness.wait_booking(bid, email_sent("request_received"))

    ops = await wait_topic(harness, "ops_events", bid, lambda v: ops_of(v, "auto_assign.failed"))
    (failure,) = ops_of(ops, "auto_assign.failed")
    assert failure["context"]["modification"] is False
    assert failure["context"]["attempts"] == 3
    assert len(ops_of(ops, "auto_assign.attempt")) == 3

    alerts = [m for m in harness.mails(bid) if m["X-Seatflow-Kind"] == "allocation_failed"]
    assert len(alerts) == 1 and alerts[0]["To"].addresses[0].addr_spec == contact
    # The guest was told once that the request was received, nothing else.
    assert sorted(m["X-Seatflow-Kind"] for m in harness.mails(bid)) == [
        "allocation_failed", "request_received"
    ]


async def test_duplicate_event_id_has_one_effect(prompt_harness: Harness) -> None:
    harness = prompt_harness
    rid, bid = harness.ids("r"), harness.ids("b")
    create = created(harness, bid, rid)
    # Twice in one batch, and once more after it has been applied.
    await harness.publish(restaurant(rid), create, create)
    await harness.wait_booking(bid, email_sent("confirmed"))
    await harness.publish(create)
    await harness.settle(bid, restaurant_id=rid, emails=True)

    statuses = await harness.topic_values("booking_status", key=bid)
    assert status_types(statuses) == ["booking.pending", "booking.confirmed"]
    assert [m["X-Seatflow-Kind"] for m in harness.mails(bid)] == ["confirmed"]
    booking = harness.booking(bid)
    assert booking is not None and len(booking["emails"]) == 2


async def test_booking_cancelled_while_waiting_for_a_retry_is_never_confirmed(
    paced_harness: Harness,
) -> None:
    harness = paced_harness  # 3 s until the retry: the cancel certainly lands before it
    rid = harness.ids("r")
    holder, bid, witness = harness.ids("holder"), harness.ids("b"), harness.ids("witness")
    await harness.publish(restaurant(rid, tables=1), created(harness, holder, rid))
    await harness.wait_booking(holder, lambda b: b["status"] == "confirmed")
    await harness.publish(created(harness, bid, rid))
    await harness.wait_booking(bid, lambda b: b["attempts"] >= 1 and b["alloc_state"] == "retry")

    # The witness (too big for any table) fails after bid did, so its retry falls due after
    # bid's would have: once the witness has been retried, bid's due retry had its turn.
    await harness.publish(make_cancel(bid, rid), created(harness, witness, rid, party=3))
    cancelled = await harness.wait_booking(bid, lambda b: b["status"] == "cancelled")
    assert cancelled["attempts"] == 1, "the cancel did not land while bid waited for a retry"
    await harness.wait_booking(witness, lambda b: b["attempts"] >= 1 and b["alloc_state"] == "retry")
    # Free the table too: neither the due retry nor the capacity sweep may pick it up.
    await harness.publish(make_cancel(holder, rid))
    await harness.wait_booking(holder, lambda b: b["status"] == "cancelled")
    await harness.allocations_decided(rid)  # the capacity sweep the cancel asked for
    await harness.wait_booking(witness, lambda b: b["attempts"] >= 2)  # the retries' turn
    await harness.allocations_decided(rid)

    booking = harness.booking(bid)
    assert booking is not None
    assert booking["status"] == "cancelled" and booking["table_ids"] == []
    statuses = await harness.topic_values("booking_status", key=bid)
    assert status_types(statuses) == ["booking.pending", "booking.cancelled"]
    assert "confirmed" not in [m["X-Seatflow-Kind"] for m in harness.mails(bid)]


async def test_without_auto_assign_new_bookings_wait_but_modifications_are_allocated(
    start_worker: Callable[..., WorkerProcess], stack: Any,
) -> None:
    # Nothing is confirmed inside the window here; the short one only speeds the emails up.
    h = Harness(start_worker(feature_auto_assign_on_booking=False), stack)
    rid, bid = h.ids("r"), h.ids("b")
    await h.publish(restaurant(rid), created(h, bid, rid))

    booking = await h.wait_booking(bid, email_sent("request_received"))
    assert booking["status"] == "pending" and booking["table_ids"] == []
    assert booking["attempts"] == 0
    await h.settle(bid, restaurant_id=rid)  # an allocation the create asked for: decided
    booking = h.booking(bid)
    assert booking is not None and booking["attempts"] == 0 and booking["table_ids"] == []
    assert status_types(await h.topic_values("booking_status", key=bid)) == ["booking.pending"]

    await h.publish(updated(bid, rid, start="20:00"))
    booking = await h.wait_booking(bid, lambda b: b["status"] == "confirmed")
    assert len(booking["table_ids"]) == 1 and booking["start_time"] == "20:00"
    statuses = await h.topic_values("booking_status", key=bid)
    assert status_types(statuses) == ["booking.pending", "booking.pending", "booking.confirmed"]
    assert statuses[1]["reason"] == "modification"

    # Released capacity is no back door: a new booking of that date still waits.
    waiting = h.ids("waiting")
    await h.publish(created(h, waiting, rid, start="20:00"))
    await h.wait_booking(waiting, email_sent("request_received"))
    await h.publish(make_cancel(bid, rid))
    await h.wait_booking(bid, lambda b: b["status"] == "cancelled")
    await h.allocations_decided(rid)  # the capacity sweep the cancel asked for
    booking = h.booking(waiting)
    assert booking is not None and booking["status"] == "pending" and booking["table_ids"] == []


async def test_booking_for_a_restaurant_that_arrives_later_waits_then_is_processed(
    prompt_harness: Harness,
) -> None:
    harness = prompt_harness  # confirmed inside the window once the restaurant is known
    rid, bid = harness.ids("r"), harness.ids("b")
    await harness.publish(created(harness, bid, rid))
    await harness.changes_applied(bid)
    assert harness.booking(bid) is None  # handled: waiting, not applied

    await harness.publish(restaurant(rid))
    booking = await harness.wait_booking(bid, email_sent("confirmed"))
    assert len(booking["table_ids"]) == 1
    dead = await harness.topic_values("dead_letters", key=bid)
    assert dead == []
    assert [m["X-Seatflow-Kind"] for m in harness.mails(bid)] == ["confirmed"]


async def test_booking_whose_start_has_passed_is_not_allocated(harness: Harness) -> None:
    rid, bid = harness.ids("r"), harness.ids("b")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    await harness.publish(
        restaurant(rid),
        make_change(
            "booking.created", bid, rid, booking_date=yesterday, start_time="19:00", party_size=2,
            customer_name="Late Larry", customer_email=f"{bid}@guest.example",
        ),
    )
    # A start that has passed cannot be cured by a retry: the first failure ends the episode.
    await harness.wait_booking(bid, lambda b: b["attempts"] >= 1 and b["alloc_state"] != "queued")
    await harness.settle(bid, restaurant_id=rid)
    booking = harness.booking(bid)
    assert booking is not None
    assert booking["status"] == "pending" and booking["table_ids"] == []
    assert booking["last_failure"] == "start_passed"
    statuses = await harness.topic_values("booking_status", key=bid)
    assert "booking.confirmed" not in status_types(statuses)


async def test_realigning_edit_during_retries_starts_a_new_episode_only_it_can_fail(
    paced_harness: Harness,
) -> None:
    harness = paced_harness  # 3 s until the retry: the edit certainly lands before it
    rid = harness.ids("r")
    holder, bid = harness.ids("holder"), harness.ids("b")
    await harness.publish(restaurant(rid, tables=1), created(harness, holder, rid))
    await harness.wait_booking(holder, lambda b: b["status"] == "confirmed")
    await harness.publish(created(harness, bid, rid))
    first = await harness.wait_booking(bid, lambda b: b["alloc_state"] == "retry")

    edit = updated(bid, rid, start="19:15")  # still overlaps the holder
    await harness.publish(edit)
    # The end of the schedule: the (new) episode's retries are used up.
    await wait_topic(
        harness, "booking_status", bid, lambda v: "booking.allocation_failed" in status_types(v)
    )
    await harness.wait_booking(bid, lambda b: b["alloc_state"] == "exhausted")
    await harness.settle(bid, restaurant_id=rid)
    statuses = await harness.topic_values("booking_status", key=bid)
    assert status_types(statuses) == [
        "booking.pending", "booking.pending", "booking.allocation_failed"
    ]
    new_ref = statuses[1]["pending_ref"]
    assert new_ref != first["pending_ref"] and statuses[1]["caused_by"] == edit.event_id
    assert statuses[2]["pending_ref"] == new_ref
    ops = await harness.topic_values("ops_events", key=bid)
    (failure,) = ops_of(ops, "auto_assign.failed")
    assert failure["context"]["attempts"] == 3 and failure["context"]["pending_ref"] == new_ref
    booking = await harness.wait_booking(bid, email_sent("allocation_failed"))
    assert booking["pending_ref"] == new_ref
    await harness.wait_booking(bid, email_sent("request_received"))
    assert [e["pending_ref"] for e in booking["emails"] if e["kind"] == "allocation_failed"] == [
        new_ref
    ]
    # Pending all along: the guest heard once that the request was received.
    assert sorted(m["X-Seatflow-Kind"] for m in harness.mails(bid)) == [
        "allocation_failed", "request_received"
    ]


async def test_created_and_edited_in_one_go_is_allocated_once_for_the_edit(
    prompt_harness: Harness,
) -> None:
    harness = prompt_harness
    rid, bid = harness.ids("r"), harness.ids("b")
    create = created(harness, bid, rid, start="19:00")
    edit = updated(bid, rid, start="20:00")
    # The restaurant first: with both changes parked for it, a release racing the edit
    # could allocate the create on its own.
    await harness.publish_restaurant(restaurant(rid, tables=1))
    await harness.publish(create, edit)
    booking = await harness.wait_booking(bid, email_sent("confirmed"))
    await harness.settle(bid, restaurant_id=rid, emails=True)  # the stale request too
    booking = harness.booking(bid)
    assert booking is not None
    assert booking["start_time"] == "20:00" and booking["table_ids"] == ["t1"]
    statuses = await harness.topic_values("booking_status", key=bid)
    assert status_types(statuses) == ["booking.pending", "booking.pending", "booking.confirmed"]
    assert statuses[2]["pending_ref"] == statuses[1]["pending_ref"] != statuses[0]["pending_ref"]
    assert [m["X-Seatflow-Kind"] for m in harness.mails(bid)] == ["confirmed"]


async def test_created_and_cancelled_in_one_go_is_never_confirmed(
    prompt_harness: Harness,
) -> None:
    harness = prompt_harness  # cancelled inside the window: no request_received
    rid, bid = harness.ids("r"), harness.ids("b")
    await harness.publish_restaurant(restaurant(rid))  # see the test above
    await harness.publish(created(harness, bid, rid), make_cancel(bid, rid))
    await harness.wait_booking(bid, email_sent("cancelled"))
    await harness.settle(bid, restaurant_id=rid, emails=True)  # the create's request too
    booking = harness.booking(bid)
    assert booking is not None and booking["status"] == "cancelled" and booking["table_ids"] == []
    statuses = await harness.topic_values("booking_status", key=bid)
    assert status_types(statuses) == ["booking.pending", "booking.cancelled"]
    assert [m["X-Seatflow-Kind"] for m in harness.mails(bid)] == ["cancelled"]
