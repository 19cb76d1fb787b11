"""Erasing a guest's personal data (docs/interface.md §8 `seatflow guests erase`,
docs/deployment.md "Personal data") on a real PostgreSQL, broker and SMTP sink: afterwards
no text column of any table holds the guest's name, address, phone or notes, nothing more is
mailed about the guest's bookings, `guest.erased` is published with the count, and a second
erasure changes nothing."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from config.settings import Settings
from producers.publisher import make_cancel, make_change
from services.privacy import UnknownBooking, erase_guest
from storage.uow import Database
from tests.integration.conftest import Harness, restaurant
from tests.integration.test_lifecycle import DAY, email_sent, ops_of
from tests.support.privacy import traces_in_database
from tests.support.workers import REPO_ROOT, SEATFLOW_BIN, settings_env

NOW = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)


def guest(tag: str, name: str) -> dict[str, str]:
    return {"customer_name": f"{name} Quibblethorpe{tag}",
            "customer_email": f"{name.lower()}.q.{tag}@privacy.example",
            "customer_phone": f"+44 7700 {tag} {ord(name[0])}",
            "notes": f"{name} likes the window {tag}"}


def run_erase(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SEATFLOW_BIN), "guests", "erase", *args],
                          env=settings_env(settings), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


async def dump(url: str) -> dict[str, list[str]]:
    """Every row of every table, as text: to show a second erasure changes nothing."""
    conn = await asyncpg.connect(url)
    try:
        tables = [r[0] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE'")]
        return {t: sorted(r[0] for r in await conn.fetch(f'SELECT t::text FROM "{t}" t'))
                for t in tables}
    finally:
        await conn.close()


async def rows_of(url: str, *booking_ids: str) -> list[str]:
    """The bookings' rows and their email records, as text."""
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(
            "SELECT t::text FROM bookings t WHERE booking_id = ANY($1) UNION ALL"
            " SELECT n::text FROM notifications n WHERE booking_id = ANY($1) ORDER BY 1",
            list(booking_ids))]
    finally:
        await conn.close()


# --- through a worker and the command ------------------------------------------------------


async def test_erase_by_email_leaves_no_trace_sends_nothing_more_and_is_idempotent(
    prompt_harness: Harness,
) -> None:
    """Prompt worker (20 s inline window): b's request_received is still held when the
    guest is erased, so it must be dropped, not sent."""
    h = prompt_harness
    rid = h.ids("r")
    a, b, other = h.ids("a"), h.ids("b"), h.ids("other")
    zed, kim = guest(h.tag, "Zed"), guest(h.tag, "Kim")
    contact = f"host-{h.tag}@resto.example"

    def change(kind: str, bid: str, who: dict[str, str], *, start: str = "19:00",
               party: int = 2) -> Any:
        return make_change(kind, bid, rid, booking_date=DAY, start_time=start,
                           party_size=party, **who)

    await h.publish(restaurant(rid, tables=1, contact_email=contact),
                    change("booking.created", a, zed),
                    change("booking.created", b, zed, party=3),  # fits no table
                    change("booking.created", other, kim, start="21:00"))
    await h.wait_booking(a, email_sent("confirmed"))
    await h.wait_booking(other, email_sent("confirmed"))
    # b's retries are used up (the restaurant is told); its request_received is held.
    held = await h.wait_booking(b, email_sent("allocation_failed"))
    assert ("request_received", "held") in {(m["kind"], m["status"]) for m in held["emails"]}
    mailed_before = len(h.mails(a)) + len(h.mails(b))  # a: confirmed; b: allocation_failed
    assert mailed_before == 2

    done = run_erase(h.settings, "--email", zed["customer_email"].upper())
    assert done.returncode == 0, done
    assert "erased: 2 booking(s) now" in done.stdout
    assert zed["customer_email"] not in done.stdout + done.stderr

    # Upstream goes on: an edit that moves a (and sends the address again), b cancelled.
    await h.publish(change("booking.updated", a, zed, start="17:00"), make_cancel(b, rid))
    await h.wait_booking(a, lambda v: v["status"] == "confirmed" and v["start_time"] == "17:00")
    await h.wait_booking(b, lambda v: v["status"] == "cancelled")
    await h.settle(a, b, other, restaurant_id=rid, emails=True)

    for bid in (a, b):
        view = h.booking(bid)
        assert view is not None and view["personal_data_erased"] is True
        assert [view[k] for k in ("customer_name", "customer_email", "customer_phone",
                                  "notes")] == [None] * 4
        assert view["booking_date"] == DAY and view["party_size"] in (2, 3)
        # Nothing about the guest's bookings left the house after the erasure.
        for mail in view["emails"]:
            assert mail["status"] in ("sent", "cancelled", "skipped"), mail
            assert mail["recipient"] is None
        assert {m["reason"] for m in view["emails"] if m["status"] != "sent"} <= {
            "personal_data_erased", "superseded"}
    assert h.booking(a)["table_ids"]  # type: ignore[index]  # the facts go on
    assert len(h.mails(a)) + len(h.mails(b)) == mailed_before, (
        [m["X-Seatflow-Kind"] for m in h.mails(a) + h.mails(b)])
    assert h.mails(other)  # the other guest is untouched

    url = h.settings.database_url
    assert url is not None
    assert await traces_in_database(url, list(zed.values())) == []
    assert await traces_in_database(url, [kim["customer_email"]])  # kim's data stays

    ops = await h.topic_values("ops_events", min_count=1)
    erased = ops_of(ops, "guest.erased")
    assert [(e["context"]["count"], e["context"]["booking_ids"]) for e in erased] == [
        (2, sorted([a, b]))]
    assert zed["customer_email"].lower() not in json.dumps(erased).lower()

    # Again: nothing to erase, nothing changes, and it says so.
    before = await rows_of(url, a, b)
    again = run_erase(h.settings, "--email", zed["customer_email"])
    assert again.returncode == 0, again
    assert "no personal data of this guest is stored" in again.stdout
    assert await rows_of(url, a, b) == before
    ops = await h.topic_values("ops_events", min_count=1)
    # No key: the two events may sit on different partitions, in either order.
    assert sorted(e["context"]["count"] for e in ops_of(ops, "guest.erased")) == [0, 2]

    # By booking: the other guest's one booking.
    by_booking = run_erase(h.settings, "--booking", other)
    assert by_booking.returncode == 0 and "erased: 1 booking(s) now" in by_booking.stdout
    assert await traces_in_database(url, list(kim.values())) == []
    unknown = run_erase(h.settings, "--booking", h.ids("no-such-booking"))
    assert unknown.returncode == 1 and "--booking" in unknown.stderr


def test_erase_refuses_bad_usage(prompt_harness: Harness) -> None:
    settings = prompt_harness.settings
    for args in (["--email", "not-an-address"], ["--booking", " "],
                 ["--booking", "b-1", "--restaurant", "r-1"], ["--email", "a@b.c", "--booking",
                                                              "b-1"], []):
        done = run_erase(settings, *args)
        assert done.returncode == 2, (args, done)
        assert "Traceback" not in done.stderr


# --- every place PostgreSQL keeps a copy ------------------------------------------------------


async def seed(pool: asyncpg.Pool, bid: str, rid: str, who: dict[str, str], *,
               day: Any = None) -> None:
    """A booking of `who` with everything that can hold a copy of their data."""
    cid = await pool.fetchval(
        "INSERT INTO customers (restaurant_id, email, name, phone) VALUES ($1, $2, $3, $4)"
        " RETURNING customer_id", rid, who["customer_email"], who["customer_name"],
        who["customer_phone"])
    await pool.execute(
        "INSERT INTO bookings (booking_id, restaurant_id, status, episode_kind, booking_date,"
        " start_time, party_size, source, customer_id, customer_name, customer_email,"
        " customer_phone, notes) VALUES ($1, $2, 'confirmed', 'created', $3, '19:00', 2,"
        " 'guest', $4, $5, $6, $7, $8)", bid, rid, day or NOW.date(), cid,
        who["customer_name"], who["customer_email"], who["customer_phone"], who["notes"])
    await pool.executemany(
        "INSERT INTO notifications (notification_id, booking_id, restaurant_id, kind,"
        " pending_ref, recipient, status, due_at, last_error, context)"
        " VALUES ($1, $2, $3, $4, 'p', $5, $6, $7, $8, $9)",
        [(f"{bid}-sent", bid, rid, "confirmed", who["customer_email"], "sent", NOW, None, {}),
         (f"{bid}-failed", bid, rid, "cancelled", who["customer_email"], "failed", NOW,
          f"550 <{who['customer_email']}> unknown", {"note": who["customer_name"]}),
         (f"{bid}-held", bid, rid, "request_received", who["customer_email"], "held", NOW,
          None, {})])
    record = {"notification_id": f"{bid}-sent", "booking_id": bid, "restaurant_id": rid,
              "kind": "confirmed", "to": who["customer_email"], "status": "queued"}
    await pool.execute("INSERT INTO outbox (topic, key, payload) VALUES ('notifications', $1, $2)",
                       bid, json.dumps(record).encode())
    change = make_change("booking.updated", bid, rid, booking_date="2031-06-01",
                         start_time="20:00", party_size=2, **who)
    raw = change.model_dump_json().encode()
    # Parked with the message it came in (its bytes hold the guest's data too).
    await pool.execute(
        "INSERT INTO parked_changes (restaurant_id, booking_id, event_id, payload, source_topic,"
        " source_partition, source_offset, source_key, source_value) VALUES"
        " ($1, $2, $3, $4, 't.booking-changes', 0, 7, $2::text::bytea, $5)",
        rid, bid, change.event_id, change.model_dump(mode="json"), raw)
    await pool.execute(
        "INSERT INTO dead_letter_backlog (original_topic, original_partition, original_offset,"
        " original_key, original_value, header_names, header_values, stage, publish_error)"
        " VALUES ('t.booking-changes', 0, $1, $2, $3, $4, $5, 'process', 'too large')",
        abs(hash(bid)) % 10**9, bid.encode(), raw, ["x-dlq-exception-message"],
        [f"refused {who['customer_email']}".encode()])


async def test_erasure_reaches_every_stored_copy_and_a_second_one_changes_nothing(
    database: Database, settings: Settings,
) -> None:
    zed, kim = guest("s1", "Zed"), guest("s2", "Kim")
    pool = database.pool
    await seed(pool, "b-zed-1", "r-1", zed)
    await seed(pool, "b-kim-1", "r-1", kim)
    url = settings.database_url
    assert url is not None
    assert await traces_in_database(url, [zed["customer_email"]])  # the scan sees them

    async with database.transaction() as uow:
        erasure, rows = await erase_guest(uow, now=NOW, email=zed["customer_email"])
    assert (erasure.booking_ids, erasure.bookings, erasure.customers) == (["b-zed-1"], 1, 1)
    assert erasure.notifications == 3 and erasure.stored_copies == 3  # outbox, parked, dlq
    assert [r.value["event_type"] for r in rows] == ["guest.erased"]
    assert await traces_in_database(url, list(zed.values())) == []
    for value in kim.values():  # the other guest keeps everything
        assert len(await traces_in_database(url, [value])) >= 2
    statuses = dict(await pool.fetch(
        "SELECT notification_id, status FROM notifications WHERE booking_id = 'b-zed-1'"))
    assert statuses == {"b-zed-1-sent": "sent", "b-zed-1-failed": "failed",
                        "b-zed-1-held": "cancelled"}

    before = await dump(url)
    async with database.transaction() as uow:
        again, _ = await erase_guest(uow, now=NOW + timedelta(hours=1),
                                     email=zed["customer_email"])
    assert (again.bookings, again.notifications, again.customers, again.stored_copies) == (
        0, 0, 0, 0)
    after = await dump(url)
    # Only the second guest.erased event was added to the outbox.
    assert {t: v for t, v in after.items() if t != "outbox"} == {
        t: v for t, v in before.items() if t != "outbox"}
    with pytest.raises(UnknownBooking):
        async with database.transaction() as uow:
            await erase_guest(uow, now=NOW, booking_id="b-nobody")
