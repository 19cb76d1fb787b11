"""Real `seatflow worker` processes for behaviour tests, and a harness to drive them.

Session workers, each on its own prefix and database, shared by the behaviour tests (each
test uses its own restaurant and booking ids, `harness.ids`). Pick the one whose timing the
behaviour under test needs — never a window that only works on an idle machine:

- `prompt_harness` (`prompt_worker`): inline window 20 s. For tests that assert a booking
  confirmed (or cancelled) *inside* the window gets no pending email: 20 s is far beyond
  any latency of a loaded machine, and the test does not wait it out (the confirmation
  cancels the held email). Never use it for a pending email that must go out.
- `paced_harness` (`paced_worker`): window 5 s, retry delays 3 s + 3 s. For tests that need
  both a confirmation inside the window and a pending email after it, or that must act
  (edit, cancel) while a booking waits for a retry: every step has seconds, not
  milliseconds. The window is shorter than the retries, so a pending email is always sent
  before the `allocation_failed` that ends its episode.
- `harness` (`worker`): window 300 ms, retries 200 + 400 ms. Fast, for tests that need a
  pending email or used-up retries and assert nothing about what happens inside the
  window: a confirmation may land inside 300 ms or not.

`start_worker(settings | **overrides)` starts more (other settings, or several in one group).
The worker processes and their settings are plain helpers in `tests.support.workers`.

"Nothing else happened" is proven with sentinels, not sleeps (`Harness.changes_applied`,
`allocations_decided`, `emails_settled`, `settle`): an input the worker provably handles
after the thing under test, whose effect the test waits for.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from config.settings import Settings
from models.events import BookingChange
from models.restaurant import RestaurantConfig
from producers.publisher import Publisher, make_cancel, make_change
from storage import db
from storage.uow import Database
from tests.support.kafka import json_values, partition_count, partition_for, read_topic
from tests.support.workers import WorkerProcess, worker_settings

# Every worker the session started, and those the whole session shares (kept to the end).
_STARTED: list[WorkerProcess] = []
_SHARED: set[int] = set()


def _stop_all(workers: list[WorkerProcess]) -> None:
    # SIGTERM all first, then wait: shutdowns overlap instead of adding up.
    for w in workers:
        if w.process is not None and w.process.poll() is None:
            w.process.send_signal(signal.SIGTERM)
    for w in workers:
        w.stop(timeout=15)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """A small pool on the test's own database, for tests of the service and storage layers
    without a worker (a module may override it: a larger pool, or data loaded first)."""
    assert settings.database_url is not None
    database = Database(await db.create_pool(settings.database_url, size=2))
    yield database
    await database.close()


@pytest.fixture(scope="session")
def start_worker(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., WorkerProcess]]:
    root = tmp_path_factory.mktemp("workers")

    def start(settings: Settings | None = None, *, shared: bool = False,
              **overrides: Any) -> WorkerProcess:
        s = settings or worker_settings(stack, root, **overrides)
        w = WorkerProcess(s, root / f"{s.topic_prefix}{len(_STARTED)}.log")
        _STARTED.append(w)
        if shared:
            _SHARED.add(id(w))
        return w.start(timeout=60.0, until_consuming=True)

    yield start
    _stop_all(_STARTED)


@pytest.fixture(scope="module", autouse=True)
def _stop_the_modules_own_workers() -> Iterator[None]:
    """A worker a test module started for itself stops when the module ends. Kept to the end
    of the session, ~20 idle workers polling the broker took more than a core and made the
    suite crawl on a busy machine."""
    first = len(_STARTED)
    yield
    _stop_all([w for w in _STARTED[first:] if id(w) not in _SHARED])


# A window no plausible latency reaches: a confirmation certainly lands inside it.
PROMPT_WINDOW_MS = 20_000
# Seconds for every step, and a window shorter than the retries (see the module docstring).
PACED_WINDOW_MS = 5_000
PACED_RETRY_DELAYS_MS = [3_000, 3_000]


@pytest.fixture(scope="session")
def worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    """Window 300 ms, retries 200 + 400 ms: nothing may depend on landing inside them."""
    return start_worker(shared=True)


@pytest.fixture(scope="session")
def prompt_worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker(inline_confirm_window_ms=PROMPT_WINDOW_MS, shared=True)


@pytest.fixture(scope="session")
def paced_worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker(
        inline_confirm_window_ms=PACED_WINDOW_MS,
        auto_assign_retry_delays_ms=list(PACED_RETRY_DELAYS_MS),
        shared=True,
    )


def restaurant(restaurant_id: str, *, contact_email: str | None = "host@resto.example",
               tables: int = 4, **extra: Any) -> RestaurantConfig:
    """A small restaurant: `tables` two-tops in a row (adjacent), dinner 17:00-23:00."""
    cfg = {
        "restaurant_id": restaurant_id,
        "name": f"Resto {restaurant_id}",
        "slug": restaurant_id,
        "timezone": "Europe/London",
        "contact_email": contact_email,
        "tables": [
            {"table_id": f"t{i}", "number": str(i), "zone": "main", "capacity": 2,
             "min_party": 1, "max_party": 2}
            for i in range(1, tables + 1)
        ],
        "adjacency": [[f"t{i}", f"t{i + 1}"] for i in range(1, tables)],
        "services": [{"name": "dinner", "start": "17:00", "end": "23:00", "allow_overrun": True}],
        **extra,
    }
    return RestaurantConfig.model_validate(cfg)


@dataclass
class Harness:
    """Drives one worker: publish inputs, then wait for what PostgreSQL/topics/SMTP show."""

    worker: WorkerProcess
    stack: Any
    tag: str = field(default_factory=lambda: secrets.token_hex(3))

    def ids(self, name: str) -> str:
        return f"{name}-{self.tag}"

    @property
    def settings(self) -> Settings:
        return self.worker.settings

    async def publish(self, *items: Any) -> None:
        async with Publisher(self.settings) as pub:
            for item in items:
                if isinstance(item, RestaurantConfig):
                    await pub.publish_restaurant(item)
                else:
                    await pub.publish_change(item)
            await pub.flush()

    def booking(self, booking_id: str) -> dict[str, Any] | None:
        status, body = self.worker.get(f"/bookings/{booking_id}")
        return body if status == 200 else None

    async def wait_booking(
        self, booking_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await asyncio.to_thread(self.booking, booking_id)
            if last is not None and predicate(last):
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"booking {booking_id} never matched; last seen: {last}")

    def mails(self, booking_id: str) -> list[EmailMessage]:
        return [
            m for m in self.stack.mail_sink.messages() if m["X-Seatflow-Booking"] == booking_id
        ]

    async def topic_values(self, name: str, *, key: str | None = None,
                           min_count: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every value of the topic so far (`min_count` counts all keys, not only `key`)."""
        topic = getattr(self.worker.topics, name)
        records = await read_topic(self.settings.kafka_bootstrap, topic, min_count=min_count,
                                   timeout=timeout)
        if key is not None:
            records = [r for r in records if r.key == key.encode()]
        return json_values(records)

    async def wait_topic(
        self,
        name: str,
        key: str,
        predicate: Callable[[list[dict[str, Any]]], Any],
        timeout: float = 15.0,
    ) -> list[dict[str, Any]]:
        """The topic's values for `key` once `predicate` holds on them (AssertionError if never)."""
        deadline = time.monotonic() + timeout
        values: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            values = await self.topic_values(name, key=key, timeout=2.0)
            if predicate(values):
                return values
            await asyncio.sleep(0.2)
        raise AssertionError(f"{name} for {key} never matched; last seen: {values}")

    # --- sentinels: "nothing else happened", proven instead of slept on -------------------
    #
    # The worker handles each input topic in order per partition, one batch at a time: it
    # commits a batch's transaction, then publishes what the batch decided and waits for the
    # broker's acks, then takes the next batch. So when a sentinel that sits behind the
    # thing under test shows its effect, the thing under test has been handled; and when a
    # second sentinel, published only after the first showed, shows too, the first one's
    # batch — and every batch before it — has also finished publishing.
    #
    # Sentinel bookings live in a restaurant of their own (no email address anywhere, so
    # they never reach SMTP), each on a date nobody else uses.

    _sentinel_rid: str | None = field(default=None, init=False)
    _sentinel_count: int = field(default=0, init=False)
    _partitions: int | None = field(default=None, init=False)

    def _next_sentinel(self) -> tuple[str, str]:
        """A fresh sentinel booking id and a date no other booking of this harness uses."""
        self._sentinel_count += 1
        n = self._sentinel_count
        return f"zz-sentinel-{self.tag}-{n}", (SENTINEL_FIRST_DAY + timedelta(days=n)).isoformat()

    def _sentinel_created(self, booking_id: str, restaurant_id: str, day: str) -> BookingChange:
        return make_change(
            "booking.created", booking_id, restaurant_id, booking_date=day, start_time="17:00",
            party_size=1, customer_name="Sentinel", customer_email=None,
        )

    async def _sentinel_restaurant(self) -> str:
        """The sentinel restaurant, known to the worker (a sentinel booking of a restaurant
        the worker has not seen yet would wait for it instead of being applied in order)."""
        if self._sentinel_rid is None:
            rid = f"zz-sentinel-{self.tag}"
            first, day = self._next_sentinel()
            await self.publish(
                restaurant(rid, contact_email=None, tables=2),
                self._sentinel_created(first, rid, day),
            )
            await self.wait_booking(first, lambda b: True)
            self._sentinel_rid = rid
        return self._sentinel_rid

    async def _booking_changes_partitions(self) -> int:
        if self._partitions is None:
            self._partitions = await partition_count(
                self.settings.kafka_bootstrap, self.worker.topics.booking_changes
            )
        return self._partitions

    async def publish_restaurant(self, cfg: RestaurantConfig) -> None:
        """Publish `cfg` and wait until the worker has stored it, so changes published after
        this are applied as they come (a change for an unknown restaurant is parked, and
        released later in a batch of its own, apart from the changes that followed it)."""
        await self.publish(cfg)
        bid, day = self._next_sentinel()
        await self.publish(self._sentinel_created(bid, cfg.restaurant_id, day))
        await self.wait_booking(bid, lambda b: True)

    async def changes_applied(self, *booking_ids: str, every_partition: bool = False) -> None:
        """Every change published so far for `booking_ids` (or, with `every_partition`, every
        change at all) has been applied, and everything applying it published is on the broker.

        Changes are keyed by booking_id: a sentinel booking whose id falls on the same
        partition is applied after them; a second sentinel after that one's batch.
        """
        rid = await self._sentinel_restaurant()
        count = await self._booking_changes_partitions()
        wanted = (set(range(count)) if every_partition
                  else {partition_for(b, count) for b in booking_ids})
        behind: list[BookingChange] = []
        for partition in sorted(wanted):
            while True:
                bid, day = self._next_sentinel()
                if partition_for(bid, count) == partition:
                    behind.append(self._sentinel_created(bid, rid, day))
                    break
        await self.publish(*behind)
        for change in behind:
            await self.wait_booking(change.booking.booking_id, lambda b: True)
        bid, day = self._next_sentinel()
        await self.publish(self._sentinel_created(bid, rid, day))
        await self.wait_booking(bid, lambda b: True)

    async def _decided_sentinel(self, restaurant_id: str) -> None:
        """A booking of `restaurant_id` on a free date, once the allocator has decided it."""
        bid, day = self._next_sentinel()
        changes = [self._sentinel_created(bid, restaurant_id, day)]
        if not self.settings.feature_auto_assign_on_booking:
            # New bookings are not allocated then; an edit of the time always is.
            changes.append(make_change(
                "booking.updated", bid, restaurant_id, booking_date=day, start_time="17:15",
                party_size=1, customer_name="Sentinel", customer_email=None,
            ))
        await self.publish(*changes)
        await self.wait_booking(bid, lambda b: b["attempts"] >= 1)

    async def allocations_decided(self, restaurant_id: str) -> None:
        """Every allocation request for `restaurant_id` published so far — including the ones
        asked for by changes already applied — has been decided, and what deciding published
        is on the broker.

        Allocation requests are keyed by restaurant: a sentinel booking of that restaurant is
        decided after them; a second one (of the sentinel restaurant) after that one's batch.
        Not for a retry the timer has yet to enqueue: wait for what ends the schedule (or
        for a later-scheduled witness) instead.
        """
        await self._decided_sentinel(restaurant_id)
        await self._decided_sentinel(await self._sentinel_restaurant())

    async def emails_settled(self) -> None:
        """Every email already due (not held) has been decided and, if sent, recorded, and
        what the sender published about it is on the broker.

        The sender works in rounds: claim every due row (oldest first), then send them one
        by one, then claim again. A sentinel row made due now is claimed in a later round
        than any row due before it; once a second sentinel, made due after the first was
        claimed, is claimed too, the first one's round has finished all its sends.
        """
        rid = await self._sentinel_restaurant()
        for _ in range(2):
            bid, day = self._next_sentinel()
            # Created and cancelled: the `cancelled` email is due at once, on any worker; with
            # no address it is skipped by the claim itself, without SMTP.
            await self.publish(self._sentinel_created(bid, rid, day), make_cancel(bid, rid))
            await self.wait_booking(
                bid, lambda b: any(e["kind"] == "cancelled" and e["status"] == "skipped"
                                   for e in b["emails"])
            )

    async def settle(self, *booking_ids: str, restaurant_id: str | None = None,
                     emails: bool = False) -> None:
        """Everything the changes published so far for `booking_ids` lead to has happened:
        applied; allocation decided (`restaurant_id`); due emails sent (`emails`)."""
        if booking_ids:
            await self.changes_applied(*booking_ids)
        if restaurant_id is not None:
            await self.allocations_decided(restaurant_id)
        if emails:
            await self.emails_settled()


# Sentinel bookings' dates: after every date a test uses.
SENTINEL_FIRST_DAY = date(2033, 1, 1)


@pytest.fixture
def harness(worker: WorkerProcess, stack: Any) -> Harness:
    return Harness(worker, stack)


@pytest.fixture
def prompt_harness(prompt_worker: WorkerProcess, stack: Any) -> Harness:
    return Harness(prompt_worker, stack)


@pytest.fixture
def paced_harness(paced_worker: WorkerProcess, stack: Any) -> Harness:
    return Harness(paced_worker, stack)
