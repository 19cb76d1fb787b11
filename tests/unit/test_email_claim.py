"""services.emails.claim_due on an in-memory unit of work: which due rows are sent,
finalised or left for later, and what is announced. The SQL behind the same calls runs in
the integration tests (test_exactly_once.py, test_emails.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from models.restaurant import RestaurantConfig
from services import emails
from storage.notifications import Finalised
from storage.outbox import OutboxRow

NOW = datetime(2031, 3, 5, 18, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
CONFIG = RestaurantConfig.model_validate({
    "restaurant_id": "r-1", "name": "Resto", "slug": "resto",
    "tables": [{"table_id": "t1", "capacity": 2}],
})


def row(nid: str, kind: str, *, booking_status: str = "pending", recipient: str | None = None,
        status: str = "due", attempts: int = 0, erased: bool = False) -> dict[str, Any]:
    return {"notification_id": nid, "booking_id": f"b-{nid}", "restaurant_id": "r-1",
            "kind": kind, "pending_ref": "p-1", "recipient": recipient or f"{nid}@guest.example",
            "status": status, "due_at": NOW, "attempts": attempts,
            "booking_status": booking_status, "erased": erased}


class FakeNotifications:
    def __init__(self, due: list[dict[str, Any]]) -> None:
        self.due = due
        self.finalised: list[Finalised] = []
        self.leased: dict[str, str] = {}

    async def lock_due(self, *, now: datetime, limit: int) -> list[dict[str, Any]]:
        return self.due[:limit]

    async def finalise(self, rows: list[Finalised]) -> None:
        self.finalised += rows

    async def lease(self, tokens: dict[str, str], until: datetime) -> None:
        assert until == NOW + LEASE
        self.leased.update(tokens)


class FakeBookings:
    async def for_emails(self, booking_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {b: {"booking_id": b, "restaurant_id": "r-1", "pending_ref": "p-1",
                    "booking_date": date(2031, 3, 6), "start_time": time(19, 0),
                    "end_time": time(20, 0), "party_size": 2, "customer_name": "Ada",
                    "customer_email": f"{b}@guest.example", "notes": None,
                    "last_failure": None} for b in booking_ids}

    async def table_ids_of(self, booking_ids: list[str]) -> dict[str, tuple[str, ...]]:
        return {b: ("t1",) for b in booking_ids}


class FakeRestaurants:
    async def load(self, ids: list[str]) -> dict[str, RestaurantConfig]:
        return {"r-1": CONFIG}


class FakeOutbox:
    def __init__(self) -> None:
        self.rows: list[OutboxRow] = []

    async def add(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        self.rows += rows
        return rows


class FakeUnitOfWork:
    def __init__(self, due: list[dict[str, Any]]) -> None:
        self.notifications = FakeNotifications(due)
        self.bookings = FakeBookings()
        self.restaurants = FakeRestaurants()
        self.outbox = FakeOutbox()


async def claim(uow: FakeUnitOfWork, *, send_limit: int = 10, suppress: bool = False):
    return await emails.claim_due(uow, now=NOW, suppress=suppress,  # type: ignore[arg-type]
                                  send_limit=send_limit, lease=LEASE)


async def test_each_due_row_is_sent_or_closed_for_its_reason() -> None:
    uow = FakeUnitOfWork([
        row("sendable", "confirmed", booking_status="confirmed"),
        row("superseded", "request_received", booking_status="confirmed"),
        row("walkin", "confirmed", recipient="walkin+desk1@system.local"),
        row("still-pending", "request_received"),
    ])
    result = await claim(uow)
    assert [j.notification_id for j in result.jobs] == ["sendable", "still-pending"]
    assert set(uow.notifications.leased) == {"sendable", "still-pending"}
    assert len(set(uow.notifications.leased.values())) == 2  # a token per lease
    assert uow.notifications.finalised == [
        Finalised("superseded", "cancelled", "superseded"),
        Finalised("walkin", "skipped", "synthetic_address"),
    ]
    announced = [(r.value["notification_id"], r.value["status"]) for r in uow.outbox.rows]
    # A superseded email was never announced, so it is not announced now either.
    assert announced == [("sendable", "queued"), ("walkin", "skipped"), ("still-pending", "queued")]
    assert result.finalised == {"cancelled": 1, "skipped": 1}


async def test_only_as_many_rows_are_leased_as_connections_are_free() -> None:
    uow = FakeUnitOfWork([row(f"n{i}", "confirmed", booking_status="confirmed")
                          for i in range(5)])
    result = await claim(uow, send_limit=2)
    assert [j.notification_id for j in result.jobs] == ["n0", "n1"]
    assert set(uow.notifications.leased) == {"n0", "n1"}
    # The others are neither leased nor announced: the next claim takes them.
    assert [r.value["notification_id"] for r in uow.outbox.rows] == ["n0", "n1"]


async def test_a_retried_row_is_not_announced_again_and_suppression_sends_nothing() -> None:
    uow = FakeUnitOfWork([row("again", "confirmed", booking_status="confirmed", attempts=1)])
    result = await claim(uow)
    assert [j.attempts for j in result.jobs] == [2] and uow.outbox.rows == []
    quiet = FakeUnitOfWork([row("quiet", "confirmed", booking_status="confirmed")])
    result = await claim(quiet, suppress=True)
    assert result.jobs == [] and quiet.notifications.leased == {}
    assert [(r.topic.value, r.value.get("status") or r.value.get("event_type"))
            for r in quiet.outbox.rows] == [("notifications", "suppressed"),
                                            ("ops-events", "email.suppressed")]


async def test_nothing_is_mailed_about_a_booking_whose_guest_was_erased() -> None:
    # An allocation_failed row made after the erasure still has the restaurant's address.
    uow = FakeUnitOfWork([
        row("erased", "allocation_failed", recipient="host@resto.example", erased=True),
        row("kept", "confirmed", booking_status="confirmed"),
    ])
    result = await claim(uow)
    assert [j.notification_id for j in result.jobs] == ["kept"]
    assert uow.notifications.finalised == [
        Finalised("erased", "skipped", "personal_data_erased")]
    assert result.finalised == {"skipped": 1}


async def test_ops_events_about_emails_name_no_recipient() -> None:
    quiet = FakeUnitOfWork([row("quiet", "confirmed", booking_status="confirmed",
                                recipient="ada.private@guest.example")])
    await claim(quiet, suppress=True)
    ops = [r.value for r in quiet.outbox.rows if r.topic.value == "ops-events"]
    assert ops and all("ada.private" not in r.payload.decode() for r in quiet.outbox.rows
                       if r.topic.value == "ops-events")
    assert ops[0]["context"]["notification_id"] == "quiet"
