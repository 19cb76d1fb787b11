"""`seatflow dev --demo`: once the worker answers, play a short scripted evening at the sample
restaurant so the mail folder, `seatflow watch` and the day view have something to show.

Tomorrow (so no start has passed): a dozen guest bookings over lunch and dinner, a walk-in
entered by staff, an edit that moves a booking, a cancellation, and a party of sixteen
that no combination of tables seats (it waits in the pending list, retries, and ends in
an `allocation_failed` email to the restaurant).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from config.settings import Settings
from models.events import BookingChange

# Between two events: slow enough to follow in `seatflow watch`, quick enough to be done soon.
PAUSE_S = 0.4
READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Guest:
    key: str  # names the booking in the script
    time: str
    party: int
    name: str
    email: str | None = None


EVENING = [
    Guest("lunch-1", "12:15", 2, "Ada Lovelace", "ada@example.com"),
    Guest("lunch-2", "12:30", 4, "Charles Babbage", "charles@example.com"),
    Guest("lunch-3", "13:00", 3, "Mary Somerville", "mary@example.com"),
    Guest("early-1", "17:30", 2, "Grace Hopper", "grace@example.com"),
    Guest("early-2", "18:00", 5, "Alan Turing", "alan@example.com"),
    Guest("dinner-1", "18:30", 2, "Katherine Johnson", "katherine@example.com"),
    Guest("dinner-2", "19:00", 6, "Emmy Noether", "emmy@example.com"),
    Guest("dinner-3", "19:00", 4, "John von Neumann", "john@example.com"),
    Guest("dinner-4", "19:15", 2, "Hedy Lamarr", "hedy@example.com"),
    Guest("dinner-5", "19:30", 8, "Claude Shannon", "claude@example.com"),
    Guest("dinner-6", "19:30", 4, "Dorothy Vaughan", "dorothy@example.com"),
    Guest("dinner-7", "20:00", 2, "Edsger Dijkstra", "edsger@example.com"),
    Guest("late-1", "20:30", 3, "Barbara Liskov", "barbara@example.com"),
]
# Staff seat a couple who walked in (no email: notifications go to the restaurant).
WALK_IN = Guest("walk-in", "19:45", 2, "Walk-in at the bar")
# Moved later and grown: a modification, confirmed elsewhere on the grid.
EDIT = ("dinner-4", "20:15", 3)
CANCELLED = "lunch-3"
# Larger than any combination of tables: it waits in the pending list, retries, and ends in
# an allocation_failed email to the restaurant.
TOO_BIG = Guest("too-big", "19:30", 16, "Office party", "office@example.com")


def demo_day(today: date | None = None) -> date:
    return (today or date.today()) + timedelta(days=1)


def script(restaurant_id: str, day: date, tag: str) -> list[tuple[str, BookingChange]]:
    """(what it is, the change) in the order the demo publishes them."""
    from producers.publisher import make_cancel, make_change

    def booking_id(key: str) -> str:
        return f"demo-{tag}-{key}"

    def created(guest: Guest, **extra: Any) -> BookingChange:
        fields = {"channel": "demo", **extra}
        return make_change(
            "booking.created", booking_id(guest.key), restaurant_id,
            booking_date=day.isoformat(), start_time=guest.time, party_size=guest.party,
            customer_name=guest.name, customer_email=guest.email, **fields)

    steps: list[tuple[str, BookingChange]] = [
        (f"{g.name}, {g.time}, party of {g.party}", created(g)) for g in EVENING]
    steps.append((f"walk-in, {WALK_IN.time}, party of {WALK_IN.party}",
                  created(WALK_IN, source="ops", channel="ops.walkin",
                          idempotency_key=f"demo-{tag}-walk-in")))
    key, new_time, new_party = EDIT
    guest = next(g for g in EVENING if g.key == key)
    steps.append((f"edit: {guest.name} moves to {new_time}, party of {new_party}",
                  make_change("booking.updated", booking_id(key), restaurant_id,
                              booking_date=day.isoformat(), start_time=new_time,
                              party_size=new_party, customer_name=guest.name,
                              customer_email=guest.email, channel="demo")))
    cancelled = next(g for g in EVENING if g.key == CANCELLED)
    steps.append((f"cancellation: {cancelled.name}",
                  make_cancel(booking_id(CANCELLED), restaurant_id)))
    steps.append((f"{TOO_BIG.name}, {TOO_BIG.time}, party of {TOO_BIG.party} (too big: stays pending)",
                  created(TOO_BIG)))
    return steps


async def play(settings: Settings, restaurant_id: str, day: date, *,
               say: Callable[[str], None] = print, pause_s: float = PAUSE_S) -> int:
    """Publish the script, one event every `pause_s`; how many were published."""
    from producers.publisher import Publisher

    steps = script(restaurant_id, day, secrets.token_hex(2))
    async with Publisher(settings, client_id="seatflow-demo") as publisher:
        for what, change in steps:
            if change.type == "booking.updated":
                # An edit of a confirmed booking is a modification (its own emails, its
                # own colour in the day view): wait for the confirmation first.
                await asyncio.to_thread(wait_until_confirmed, settings,
                                        change.booking.booking_id)
            await publisher.publish_change(change)
            await publisher.flush()
            say(f"demo: {what}  ({change.booking.booking_id})")
            await asyncio.sleep(pause_s)
    return len(steps)


def wait_until_confirmed(settings: Settings, booking_id: str,
                         timeout_s: float = READY_TIMEOUT_S) -> bool:
    from seatflow.api import ApiError, get_booking

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            booking = get_booking(settings, booking_id)
        except ApiError:
            booking = None
        if booking is not None and booking.get("status") == "confirmed":
            return True
        time.sleep(0.2)
    return False


def wait_until_healthy(url: str, timeout_s: float = READY_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def start_in_background(settings: Settings, restaurant_id: str, day_url: Callable[[date], str],
                        *, say: Callable[[str], None] = print) -> threading.Thread:
    """Play the evening from a daemon thread once /health answers 200 (the worker owns the
    main thread); what went wrong is said, never raised into the worker."""

    def run() -> None:
        if not wait_until_healthy(f"http://127.0.0.1:{settings.web_port}/health"):
            say("demo: the worker did not become healthy; no demo played")
            return
        day = demo_day()
        try:
            count = asyncio.run(play(settings, restaurant_id, day, say=say))
        except Exception as exc:  # noqa: BLE001 - a demo failing must not stop the worker
            say(f"demo: stopped: {type(exc).__name__}: {exc}")
            return
        say(f"demo: {count} events published for {restaurant_id} on {day.isoformat()}; "
            f"the day: {day_url(day)}")

    thread = threading.Thread(target=run, name="seatflow-demo", daemon=True)
    thread.start()
    return thread
