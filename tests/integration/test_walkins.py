"""Ops walk-ins and idempotent submissions through the real stack (docs/interface.md §4 "Ops walk-ins").

Every walk-in here is confirmed at once and must get no pending email: the tests run on the
worker whose inline window no latency reaches (`prompt_harness`).
"""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from producers.publisher import make_change
from tests.integration.conftest import Harness, restaurant
from tests.integration.test_lifecycle import DAY, email_sent, ops_of, wait_topic

WORKER_PARTITIONS = 4  # worker_settings(topic_partitions=4)


def walkin(booking: str, rid: str, *, email: str | None = "", phone: str | None = "",
           key: str | None = None, start: str = "19:00", **kw: Any):
    return make_change(
        "booking.created", booking, rid, source="ops", channel="ops.walkin",
        idempotency_key=key, booking_date=DAY, start_time=start, party_size=2,
        customer_name="Walk In", customer_email=email, customer_phone=phone, **kw,
    )


def partition_of(booking_id: str) -> int:
    partitions = list(range(WORKER_PARTITIONS))
    return DefaultPartitioner()(booking_id.encode(), partitions, partitions)


def ids_on_two_partitions(h: Harness, name: str) -> tuple[str, str]:
    first = h.ids(f"{name}0")
    for i in range(1, 100):
        other = h.ids(f"{name}{i}")
        if partition_of(other) != partition_of(first):
            return first, other
    raise AssertionError("no booking id on another partition")


async def test_walkin_without_email_notifies_the_restaurant_contact(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid, bid = h.ids("r"), h.ids("w")
    contact = f"host-{h.tag}@resto.example"
    key = f"Desk-{h.tag}/1"
    await h.publish(restaurant(rid, contact_email=contact), walkin(bid, rid, email="  ", key=key))
    booking = await h.wait_booking(bid, email_sent("confirmed"))

    slug = "".join(ch for ch in key.lower() if ch.isascii() and ch.isalnum())[:24]
    assert booking["customer_email"] == contact
    assert booking["customer_phone"] == f"000-{slug}"
    (mail,) = h.mails(bid)
    assert mail["X-Seatflow-Kind"] == "confirmed"
    assert mail["To"].addresses[0].addr_spec == contact
    (note,) = await wait_topic(h, "notifications", bid, lambda v: len(v) >= 1)
    assert note["to"] == contact and note["status"] == "queued"


async def test_walkin_without_any_address_gets_a_synthetic_one_and_no_mail(
    prompt_harness: Harness,
) -> None:
    h = prompt_harness
    rid, bid = h.ids("r"), h.ids("W_x.y")  # no key: the slug comes from the booking id
    await h.publish(restaurant(rid, contact_email=None), walkin(bid, rid, email=None, phone=None))
    booking = await h.wait_booking(
        bid, lambda b: any(e["kind"] == "confirmed" and e["status"] == "skipped"
                           for e in b["emails"])
    )
    slug = "".join(ch for ch in bid.lower() if ch.isascii() and ch.isalnum())[:24]
    assert booking["status"] == "confirmed"
    assert booking["customer_email"] == f"walkin+{slug}@system.local"
    assert booking["customer_phone"] == f"000-{slug}"
    (mail_row,) = [e for e in booking["emails"] if e["kind"] == "confirmed"]
    assert mail_row["reason"] == "synthetic_address"

    await h.settle(bid, restaurant_id=rid, emails=True)
    (note,) = await wait_topic(h, "notifications", bid, lambda v: len(v) >= 1)
    assert note["status"] == "skipped" and note["reason"] == "synthetic_address"
    assert note["to"] == f"walkin+{slug}@system.local"
    assert h.mails(bid) == []
    assert not any(
        "system.local" in str(m["X-Envelope-To"]) for m in h.stack.mail_sink.messages()
    )


async def test_walkin_with_guest_details_keeps_them(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid, bid = h.ids("r"), h.ids("w")
    guest = f"{bid}@guest.example"
    await h.publish(restaurant(rid), walkin(bid, rid, email=guest, phone="+44 7700 900000",
                                            key=f"k-{h.tag}"))
    booking = await h.wait_booking(bid, email_sent("confirmed"))
    assert booking["customer_email"] == guest
    assert booking["customer_phone"] == "+44 7700 900000"
    (mail,) = h.mails(bid)
    assert mail["To"].addresses[0].addr_spec == guest


async def assert_duplicate_submission(h: Harness, owner: str, duplicate: str, key: str) -> None:
    """`duplicate` created nothing, sent nothing, and ops were told it repeats `owner`."""
    ops = await wait_topic(
        h, "ops_events", duplicate, lambda v: ops_of(v, "booking.duplicate_submission") != []
    )
    (note,) = ops_of(ops, "booking.duplicate_submission")
    assert note["context"]["existing_booking_id"] == owner
    assert note["context"]["idempotency_key"] == key
    await h.wait_booking(owner, email_sent("confirmed"))
    # The duplicate has been handled, and an email it might have queued has been sent.
    await h.settle(duplicate, owner, emails=True)
    assert h.booking(duplicate) is None
    assert await h.topic_values("booking_status", key=duplicate) == []
    assert await h.topic_values("notifications", key=duplicate) == []
    assert h.mails(duplicate) == []
    assert [m["X-Seatflow-Kind"] for m in h.mails(owner)] == ["confirmed"]


async def test_repeated_idempotency_key_creates_and_sends_nothing(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid, first, second = h.ids("r"), h.ids("w1"), h.ids("w2")
    key = f"req-{h.tag}"
    await h.publish(restaurant(rid), walkin(first, rid, email=f"{first}@guest.example", key=key))
    await h.wait_booking(first, lambda b: b["status"] == "confirmed")
    await h.publish(walkin(second, rid, email=f"{first}@guest.example", key=key, start="20:00"))
    await assert_duplicate_submission(h, first, second, key)


async def test_repeated_idempotency_key_on_different_partitions(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid = h.ids("r")
    first, second = ids_on_two_partitions(h, "p")
    assert partition_of(first) != partition_of(second)
    key = f"req-{h.tag}"
    # Both at once: whichever the worker applies first owns the key.
    await h.publish(
        restaurant(rid),
        walkin(first, rid, email=f"{first}@guest.example", key=key),
        walkin(second, rid, email=f"{second}@guest.example", key=key),
    )
    await h.changes_applied(first, second)  # both handled: the set of owners is final
    owners = [b for b in (first, second) if h.booking(b) is not None]
    (owner,) = owners
    duplicate = second if owner == first else first
    await assert_duplicate_submission(h, owner, duplicate, key)


async def test_walkin_edit_without_the_key_keeps_its_derived_contact(
    prompt_harness: Harness,
) -> None:
    """The slug belongs to the booking: an edit that does not repeat idempotency_key must not
    re-derive the synthetic address and phone from the booking id."""
    h = prompt_harness
    rid, bid = h.ids("r"), h.ids("w")
    key = f"desk-{h.tag}"
    await h.publish(restaurant(rid, contact_email=None), walkin(bid, rid, email=None, key=key))
    before = await h.wait_booking(bid, lambda b: b["status"] == "confirmed")
    assert before["customer_phone"] == f"000-desk{h.tag}"

    await h.publish(
        make_change(
            "booking.updated", bid, rid, source="ops", channel="ops.walkin", booking_date=DAY,
            start_time="19:00", party_size=2, customer_name="Walk In", customer_email="",
            customer_phone="", notes="by the window",
        )
    )
    await h.changes_applied(bid)  # the edit has been applied
    after = h.booking(bid)
    assert after is not None
    for field in ("customer_email", "customer_phone", "status", "pending_ref", "table_ids"):
        assert after[field] == before[field], field
