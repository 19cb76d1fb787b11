"""Booking lifecycle through the real broker, PostgreSQL and SMTP (CONTRACT §4, §5)."""

from __future__ import annotations

from producers.publisher import make_cancel, make_change
from tests.integration.conftest import Harness, restaurant

DAY = "2030-06-14"


def created(h: Harness, booking: str, rid: str, *, start: str = "19:00", party: int = 2, **kw):
    return make_change(
        "booking.created", booking, rid, booking_date=DAY, start_time=start, party_size=party,
        customer_name="Ada Lovelace", customer_email=f"{booking}@guest.example", **kw,
    )


async def test_created_with_capacity_is_confirmed_with_one_email(harness: Harness) -> None:
    rid, bid = harness.ids("r"), harness.ids("b")
    await harness.publish(restaurant(rid), created(harness, bid, rid))

    booking = await harness.wait_booking(bid, lambda b: b["status"] == "confirmed")
    assert len(booking["table_ids"]) == 1
    booking = await harness.wait_booking(
        bid, lambda b: any(e["kind"] == "confirmed" and e["status"] == "sent" for e in b["emails"])
    )
    statuses = await harness.topic_values("booking_status", key=bid, min_count=2)
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
