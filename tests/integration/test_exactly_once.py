"""Exactly once under every condition (issue #11), through a real broker, PostgreSQL and SMTP.

Each test names the item of the issue it covers. Every wait is for an event; "nothing else
happened" is shown by a sentinel processed after the thing under test (same partition,
hence in order), or by the database state that rules the effect out.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from devstack import free_port, start_mail_sink
from mail.render import message_id_for
from producers.publisher import make_cancel, make_change
from seatflow import dlq
from tests.integration.conftest import Harness, restaurant
from tests.support.kafka import read_topic
from tests.support.workers import WorkerProcess, worker_settings

pytestmark = pytest.mark.integration

DAY = date(2031, 5, 9)
T = TypeVar("T")
PARTITIONS = 4  # worker_settings' topic_partitions


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str,
                     timeout: float = 30.0) -> T:
    """The first truthy value `probe` returns (AssertionError naming `what` if none)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what} (last probe: {last!r})")


def created(bid: str, rid: str, *, day: date = DAY, start: str = "19:00", party: int = 2,
            **kw: Any):
    kw.setdefault("customer_name", "Ada Lovelace")
    kw.setdefault("customer_email", f"{bid}@guest.example")
    return make_change("booking.created", bid, rid, booking_date=day.isoformat(),
                       start_time=start, party_size=party, **kw)


def updated(bid: str, rid: str, *, day: date = DAY, start: str = "19:00", party: int = 2,
            **kw: Any):
    return make_change("booking.updated", bid, rid, booking_date=day.isoformat(),
                       start_time=start, party_size=party, **kw)


def partition_of(key: bytes) -> int:
    partitions = list(range(PARTITIONS))
    return DefaultPartitioner()(key, partitions, partitions)


def same_partition_id(h: Harness, key: bytes, name: str) -> str:
    """A booking id whose record lands on the same partition as `key`."""
    for i in range(1000):
        candidate = h.ids(f"{name}{i}")
        if partition_of(candidate.encode()) == partition_of(key):
            return candidate
    raise AssertionError("no booking id on that partition")


async def publish_raw(h: Harness, topic: str, key: bytes | None, value: bytes,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
    """Publish as a hostile or unlucky upstream would: records far larger than the service
    may produce (the broker accepts them)."""
    producer = AIOKafkaProducer(bootstrap_servers=h.settings.kafka_bootstrap,
                                max_request_size=20_000_000, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def http_get(worker: WorkerProcess, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(worker.base_url + path, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def ops_events(h: Harness, key: str | None, event_type: str) -> list[dict[str, Any]]:
    values = await h.topic_values("ops_events", timeout=3.0)
    return [v for v in values if v["event_type"] == event_type
            and (key is None or key in (v.get("booking_id"), v.get("restaurant_id")))]


async def dead_letters_for(h: Harness, key: bytes):
    records = await read_topic(h.settings.kafka_bootstrap, h.worker.topics.dead_letters,
                               timeout=3.0)
    return [r for r in records if r.key == key]


# --- one worker for the tests that need no special infrastructure -------------------------


@pytest.fixture(scope="module")
def eo_worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    # Retries a minute apart: no retry schedule ever runs inside a test by itself.
    return start_worker(auto_assign_retry_delays_ms=[60_000, 60_000])


@pytest.fixture
def h(eo_worker: WorkerProcess, stack: Any) -> Harness:
    return Harness(eo_worker, stack)


# --- item 1: oversized messages ---------------------------------------------------------------


@pytest.mark.parametrize("size", [1_200_000, 5_000_000])
async def test_an_oversized_change_is_dead_lettered_cut_to_fit_and_its_partition_moves_on(
    h: Harness, size: int
) -> None:
    rid, bid = h.ids("r"), h.ids(f"big{size}")
    event = json.loads(created(bid, rid).model_dump_json())
    event["booking"]["notes"] = ""
    padding = size - len(json.dumps(event).encode())
    event["booking"]["notes"] = "x" * padding
    value = json.dumps(event).encode()
    assert len(value) == size
    await h.publish(restaurant(rid))
    await publish_raw(h, h.worker.topics.booking_changes, bid.encode(), value)
    # The next change on the same key (same partition) must be processed after it.
    await h.publish(created(bid, rid))

    await h.wait_booking(bid, lambda b: b["status"] == "confirmed", timeout=30)
    (letter,) = await eventually(lambda: dead_letters_for(h, bid.encode()), "a dead letter")
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["x-dlq-value-truncated"] == str(size)
    assert headers["x-dlq-stage"] == "decode"
    assert "SEATFLOW_MAX_INPUT_BYTES" in headers["x-dlq-exception-message"]
    assert value.startswith(letter.value) and 900_000 < len(letter.value) < size
    status, body = http_get(h.worker, "/health")
    assert status == 200 and json.loads(body)["dead_letter_backlog"] == 0


async def test_a_dead_letter_the_topic_refuses_waits_in_postgresql_visible_to_ops(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    rid = h.ids("r")
    huge_key = (h.ids("k") + "k" * 1_100_000).encode()  # no record of 1 MB can carry it
    good = same_partition_id(h, huge_key, "after")
    await h.publish(restaurant(rid))
    before = json.loads(http_get(h.worker, "/health")[1])["dead_letter_backlog"]
    await publish_raw(h, h.worker.topics.booking_changes, huge_key, b"not json",
                      headers=[("trace", b"t-1")])
    await h.publish(created(good, rid))

    # The partition moves on, and nothing about the refused letter is lost.
    await h.wait_booking(good, lambda b: b["status"] == "confirmed", timeout=30)
    health = await eventually(
        lambda: asyncio.to_thread(
            lambda: (lambda s, b: json.loads(b) if s == 200 else None)(
                *http_get(h.worker, "/health"))),
        "a 200 /health")
    assert health["dead_letter_backlog"] == before + 1
    metrics = http_get(h.worker, "/metrics")[1].decode()
    assert f"seatflow_dead_letter_backlog {float(before + 1)}" in metrics
    notes = await eventually(lambda: ops_events(h, None, "dead_letter.backlogged"),
                             "an ops event for the backlogged dead letter")
    assert notes[-1]["booking_id"] is None and notes[-1]["severity"] == "error"
    assert notes[-1]["context"]["original_partition"] == partition_of(huge_key)

    assert await dlq.tail_async(h.settings) == 0
    err = capsys.readouterr().err
    assert "dead_letter_backlog" in err and "decode" in err


# --- item 2: several workers, a slow mail server -----------------------------------------------


class SlowSmtp:
    """A real SMTP server that takes `delay_s` to accept each message, recording what it
    accepted (in arrival order) by Message-ID."""

    def __init__(self, delay_s: float) -> None:
        from aiosmtpd.controller import Controller

        self.delay_s = delay_s
        self.accepted: list[str] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.delay_s)
        content = envelope.original_content or envelope.content
        for line in content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                self.accepted.append(line.split(b":", 1)[1].strip().decode())
        return "250 OK"


async def test_several_workers_and_a_slow_mail_server_send_every_email_once(
    start_worker: Callable[..., WorkerProcess], stack: Any, tmp_path: Path
) -> None:
    smtp = SlowSmtp(delay_s=0.3)
    smtp.controller.start()
    try:
        # Leases of 4 s: the backlog (40 emails at 0.3 s) outlives many of them.
        base = worker_settings(stack, tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port,
                               email_lease_s=4.0, smtp_connections=2,
                               inline_confirm_window_ms=60_000)
        workers = [
            start_worker(base.model_copy(update={"web_port": free_port(),
                                                 "home": tmp_path / f"w{i}"}))
            for i in range(3)
        ]
        h = Harness(workers[0], stack)
        rid = h.ids("r")
        bookings = [h.ids(f"b{i}") for i in range(40)]
        await h.publish(restaurant(rid, tables=40),
                        *[created(b, rid, start=f"{17 + i % 6}:00") for i, b in enumerate(bookings)])

        def all_sent(view: dict[str, Any]) -> bool:
            return view["status"] == "confirmed" and any(
                e["kind"] == "confirmed" and e["status"] == "sent" for e in view["emails"])

        views = [await h.wait_booking(b, all_sent, timeout=120) for b in bookings]
        expected = {message_id_for(v["booking_id"], "confirmed", v["pending_ref"])
                    for v in views}
        repeats = {m: smtp.accepted.count(m) for m in set(smtp.accepted) if
                   smtp.accepted.count(m) > 1}
        assert repeats == {}, f"emails delivered more than once: {repeats}"
        assert expected <= set(smtp.accepted)
        logs = "\n".join(w.log_tail(400) for w in workers)
        assert "lease lost" not in logs
    finally:
        smtp.controller.stop()


async def test_a_sender_that_lost_its_lease_cannot_overwrite_the_new_holders_result(
    settings: Any,
) -> None:
    """The fence itself, on a real database: a late failure cannot flip a sent row."""
    from datetime import UTC, datetime

    from services import emails
    from storage import db
    from storage.uow import Database

    database = Database(await db.create_pool(settings.database_url, size=2))
    pool = database.pool
    try:
        now = datetime.now(UTC)
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO bookings (booking_id, restaurant_id, status, pending_ref,"
                " episode_kind, booking_date, start_time, party_size, customer_email, source)"
                " VALUES ('b-1', 'r-1', 'confirmed', 'p-1', 'created', $1, '19:00', 2,"
                " 'ada@example.com', 'guest')", DAY)
            await conn.execute(
                "INSERT INTO notifications (notification_id, booking_id, restaurant_id, kind,"
                " pending_ref, recipient, status, due_at) VALUES ('n-1', 'b-1', 'r-1',"
                " 'confirmed', 'p-1', 'ada@example.com', 'due', $1)", now)
        lease = timedelta(seconds=1)

        async def claim(at: datetime):
            async with database.transaction() as uow:
                return await emails.claim_due(uow, now=at, suppress=False, send_limit=1,
                                              lease=lease)

        (first,) = (await claim(now)).jobs
        assert (await claim(now + timedelta(milliseconds=500))).jobs == []  # still leased
        (second,) = (await claim(now + timedelta(seconds=2))).jobs  # the lease ran out
        assert second.lease_token != first.lease_token
        sent, late = emails.SendResult("sent"), emails.SendResult("retry", "late failure")
        async with database.transaction() as uow:
            assert await emails.record(uow, second, sent, now) is not None
        async with database.transaction() as uow:
            assert await emails.record(uow, first, late, now) is None
            assert await emails.record(uow, first, sent, now) is None
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT status, attempts FROM notifications")
        assert (row["status"], row["attempts"]) == ("sent", 2)
    finally:
        await pool.close()


# --- item 3: redelivered allocation requests ------------------------------------------------


async def test_a_redelivered_allocation_request_spends_no_retry(h: Harness) -> None:
    rid, holder, bid, sentinel = h.ids("r"), h.ids("holder"), h.ids("b"), h.ids("sentinel")
    await h.publish(restaurant(rid, tables=1), created(holder, rid))
    await h.wait_booking(holder, lambda b: b["status"] == "confirmed")
    await h.publish(created(bid, rid))
    await h.wait_booking(bid, lambda b: b["attempts"] == 1 and b["alloc_state"] == "retry")

    requests = await read_topic(h.settings.kafka_bootstrap, h.worker.topics.allocation_requests,
                                timeout=3.0)
    (mine,) = [r for r in requests if json.loads(r.value).get("booking_id") == bid]
    for _ in range(3):  # as a crash, a rebalance or the outbox relay would
        await publish_raw(h, h.worker.topics.allocation_requests, mine.key, mine.value)
    # Same restaurant, same allocation partition: decided after the three copies.
    await h.publish(created(sentinel, rid, start="22:00"))
    await h.wait_booking(sentinel, lambda b: b["status"] == "confirmed")

    view = h.booking(bid)
    assert view is not None
    assert (view["attempts"], view["alloc_state"], view["status"]) == (1, "retry", "pending")
    statuses = [v["type"] for v in await h.topic_values("booking_status", key=bid)]
    assert "booking.allocation_failed" not in statuses
    attempts = [v for v in await h.topic_values("ops_events", key=bid)
                if v["event_type"] == "auto_assign.attempt"]
    assert len(attempts) == 1


# --- item 4: bookings past midnight -----------------------------------------------------------


async def test_a_booking_past_midnight_blocks_its_table_on_the_next_date_until_released(
    h: Harness,
) -> None:
    rid, late, early = h.ids("bar"), h.ids("late"), h.ids("early")
    bar = restaurant(rid, tables=1, services=[
        {"name": "late", "start": "18:00", "end": "02:00", "allow_overrun": True}])
    await h.publish(bar, created(late, rid, start="23:30", end_time="01:00"))
    first = await h.wait_booking(late, lambda b: b["status"] == "confirmed")
    assert (first["booking_date"], first["end_time"], first["table_ids"]) == (
        DAY.isoformat(), "01:00", ["t1"])

    next_day = DAY + timedelta(days=1)
    await h.publish(created(early, rid, day=next_day, start="00:30", end_time="01:30"))
    waiting = await h.wait_booking(early, lambda b: b["attempts"] >= 1)
    assert waiting["status"] == "pending" and waiting["last_failure"] == "no_capacity"

    await h.publish(make_cancel(late, rid))  # frees t1 across midnight: retried at once
    seated = await h.wait_booking(early, lambda b: b["status"] == "confirmed")
    assert seated["table_ids"] == ["t1"] and seated["booking_date"] == next_day.isoformat()
    assert seated["attempts"] == 1  # the capacity sweep, not a retry
    dead = await h.topic_values("dead_letters", key=late)
    assert dead == []


# --- item 5: edits never erase contact details ---------------------------------------------


@pytest.mark.parametrize("source", ["ops", "guest"])
async def test_an_edit_with_blank_contact_details_keeps_the_stored_ones(
    h: Harness, source: str
) -> None:
    rid, bid = h.ids("r"), h.ids(f"c-{source}")
    await h.publish(restaurant(rid), created(bid, rid, source=source,
                                             customer_email="ada@guest.example",
                                             customer_phone="+44 20 7946 0001"))
    await h.wait_booking(bid, lambda b: b["status"] == "confirmed")
    await h.publish(updated(bid, rid, source=source, customer_name="Ada King",
                            customer_email="  ", customer_phone=None, notes="window seat"))
    after = await h.wait_booking(bid, lambda b: b["customer_name"] == "Ada King")
    assert after["customer_email"] == "ada@guest.example"
    assert after["customer_phone"] == "+44 20 7946 0001"
    assert after["status"] == "confirmed" and after["notes"] == "window seat"


# --- item 6: booking_version ----------------------------------------------------------------


async def test_every_status_event_carries_a_booking_version_that_grows(h: Harness) -> None:
    rid, bid = h.ids("r"), h.ids("v")
    await h.publish(restaurant(rid), created(bid, rid))
    await h.wait_booking(bid, lambda b: b["status"] == "confirmed")
    await h.publish(updated(bid, rid, start="20:00", customer_name="Ada"))
    await h.wait_booking(bid, lambda b: b["status"] == "confirmed" and b["start_time"] == "20:00")
    await h.publish(make_cancel(bid, rid))
    view = await h.wait_booking(bid, lambda b: b["status"] == "cancelled")

    events = await eventually(
        lambda: _if_len(h.topic_values("booking_status", key=bid), 5), "five status events")
    assert [(e["type"], e["booking_version"]) for e in events] == [
        ("booking.pending", 1), ("booking.confirmed", 2), ("booking.pending", 3),
        ("booking.confirmed", 4), ("booking.cancelled", 5),
    ]
    assert view["booking_version"] == 5


async def _if_len(values: Awaitable[list[Any]], count: int) -> list[Any] | None:
    found = await values
    return found if len(found) >= count else None


# --- item 7: dead-letter ops events name what the key names -------------------------------


async def test_dead_letter_ops_events_name_the_restaurant_for_restaurant_keyed_topics(
    h: Harness,
) -> None:
    rid = h.ids("bad-r")
    topics = h.worker.topics
    await publish_raw(h, topics.restaurants, rid.encode(), b'{"restaurant_id": "x"}')
    await publish_raw(h, topics.allocation_requests, rid.encode(), b"[1, 2]")
    notes = await eventually(
        lambda: _if_len(ops_events(h, rid, "dead_letter.published"), 2), "two ops events")
    assert sorted(n["context"]["original_topic"] for n in notes) == sorted(
        [topics.restaurants, topics.allocation_requests])
    for note in notes:
        assert note["restaurant_id"] == rid and note["booking_id"] is None


# --- item 10: held emails race the cancellation and the confirmation -----------------------


async def test_a_pending_email_not_yet_sent_never_leaves_after_a_cancel_or_a_confirm(
    start_worker: Callable[..., WorkerProcess], stack: Any, tmp_path: Path
) -> None:
    sink = start_mail_sink("127.0.0.1", free_port(), tmp_path / "mail")
    worker = start_worker(worker_settings(stack, tmp_path, smtp_port=sink.port,
                                          inline_confirm_window_ms=300,
                                          auto_assign_retry_delays_ms=[60_000]))
    h = Harness(worker, stack)
    rid, holder, cancelled, confirmed = (h.ids("r"), h.ids("holder"), h.ids("x"), h.ids("y"))
    try:
        await h.publish(restaurant(rid, tables=1), created(holder, rid))
        await h.wait_booking(holder, lambda b: any(
            e["kind"] == "confirmed" and e["status"] == "sent" for e in b["emails"]))
        sink.stop()  # the mail server is down when the inline window ends
        await h.publish(created(cancelled, rid), created(confirmed, rid))

        def waiting_to_retry(view: dict[str, Any]) -> bool:
            return any(e["kind"] == "request_received" and e["status"] == "due"
                       for e in view["emails"])

        for bid in (cancelled, confirmed):
            await h.wait_booking(bid, waiting_to_retry)
        # One after the other: published together, the holder's cancel (another key, maybe
        # another partition) can free the table first, and the one to cancel is then
        # rightly confirmed before its own cancel arrives (and owed a confirmation).
        await h.publish(make_cancel(cancelled, rid))
        await h.wait_booking(cancelled, lambda b: b["status"] == "cancelled")
        await h.publish(make_cancel(holder, rid))
        await h.wait_booking(confirmed, lambda b: b["status"] == "confirmed")
        sink.start()

        def settled(view: dict[str, Any]) -> bool:
            return all(e["status"] not in ("held", "due", "sending") for e in view["emails"])

        for bid, kind in ((cancelled, "cancelled"), (confirmed, "confirmed")):
            view = await h.wait_booking(bid, settled, timeout=60)
            states = {e["kind"]: e["status"] for e in view["emails"]}
            assert states == {"request_received": "cancelled", kind: "sent"}, states
            kinds = [m["X-Seatflow-Kind"] for m in sink.messages()
                     if m["X-Seatflow-Booking"] == bid]
            assert kinds == [kind]
    finally:
        sink.stop()


# --- item 11: input that is not JSON, text PostgreSQL cannot store, ids that cannot exist ----


async def test_json_constants_and_nul_are_dead_lettered_at_the_right_stage(h: Harness) -> None:
    rid, nan, nul = h.ids("r"), h.ids("nan"), h.ids("nul")
    await h.publish(restaurant(rid))
    topic = h.worker.topics.booking_changes
    event = json.loads(created(nan, rid).model_dump_json())
    raw = json.dumps(event).replace('"party_size": 2', '"party_size": NaN').encode()
    assert b"NaN" in raw
    await publish_raw(h, topic, nan.encode(), raw)
    event = json.loads(created(nul, rid).model_dump_json())
    event["booking"]["customer_name"] = "Ada\u0000Lovelace"
    await publish_raw(h, topic, nul.encode(), json.dumps(event).encode())

    (nan_letter,) = await eventually(lambda: dead_letters_for(h, nan.encode()), "NaN letter")
    (nul_letter,) = await eventually(lambda: dead_letters_for(h, nul.encode()), "NUL letter")
    assert dict(nan_letter.headers)["x-dlq-stage"] == b"decode"
    assert b"NaN is not JSON" in dict(nan_letter.headers)["x-dlq-exception-message"]
    assert dict(nul_letter.headers)["x-dlq-stage"] == b"validate"
    assert b"booking.customer_name" in dict(nul_letter.headers)["x-dlq-exception-message"]
    assert h.booking(nan) is None and h.booking(nul) is None


@pytest.mark.parametrize("path", ["%00", "a%00b", "%ED%A0%80", "x" * 300, "%FF%FE"])
def test_a_booking_id_that_cannot_exist_is_a_404(eo_worker: WorkerProcess, path: str) -> None:
    status, body = http_get(eo_worker, f"/bookings/{path}")
    assert status == 404, body[:200]


# --- item 12: a cancellation of an unknown booking ------------------------------------------


async def test_a_cancellation_of_an_unknown_booking_is_published_as_ignored(h: Harness) -> None:
    rid, ghost = h.ids("r"), h.ids("ghost")
    await h.publish(restaurant(rid), make_cancel(ghost, rid))
    (note,) = await eventually(lambda: ops_events(h, ghost, "booking.change_ignored"),
                               "a booking.change_ignored ops event")
    assert note["booking_id"] == ghost and note["restaurant_id"] == rid
    assert note["context"]["reason"] == "unknown_booking"
    # Nothing else: the same key's next change is processed after it, and creates the booking.
    await h.publish(created(ghost, rid))
    await h.wait_booking(ghost, lambda b: b["status"] == "confirmed")
    assert [v["type"] for v in await h.topic_values("booking_status", key=ghost)] == [
        "booking.pending", "booking.confirmed"]
