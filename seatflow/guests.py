"""`seatflow guests erase` (docs/interface.md §8): erase one guest's personal data now.

The erasure and its `guest.erased` ops event commit in one PostgreSQL transaction; the
event is then published from the outbox, and deleted there once the broker has it. If the
broker cannot take it now, a worker's outbox relay publishes it later: the erasure itself
is done either way. Nothing printed here names the guest (the terminal may be logged).

Exit codes: 0 erased (or nothing left to erase), 1 the database is unreachable or the
booking is unknown, 2 bad usage.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from config.settings import Settings
from config.topics import TopicNames
from seatflow.console import EXIT_OK, EXIT_USAGE, fail
from services.privacy import Erasure, UnknownBooking, erase_guest
from storage.outbox import OutboxRow

PUBLISH_TIMEOUT_S = 15.0


def erase(settings: Settings, *, email: str | None, booking_id: str | None,
          restaurant_id: str | None) -> int:
    if email is not None and "@" not in email.strip():
        return fail("--email: not an email address", EXIT_USAGE)
    if booking_id is not None and not booking_id.strip():
        return fail("--booking: empty booking id", EXIT_USAGE)
    if booking_id is not None and restaurant_id is not None:
        return fail("--restaurant goes with --email (a booking names its restaurant)",
                    EXIT_USAGE)
    url = settings.database_url
    if not url:
        if not (settings.embedded_pgdata / "postmaster.pid").exists():
            return fail("database: SEATFLOW_DATABASE_URL is unset and the embedded PostgreSQL"
                        " is not running (start `seatflow dev`, or set SEATFLOW_DATABASE_URL)")
        from seatflow.database import database_url

        url = database_url(settings)
    try:
        erasure, published = asyncio.run(_erase(settings, url, email=email,
                                                booking_id=booking_id,
                                                restaurant_id=restaurant_id))
    except UnknownBooking:
        return fail(f"--booking: no booking {booking_id!r}; nothing erased")
    except (OSError, TimeoutError) as exc:
        return fail(f"database: cannot reach PostgreSQL ({type(exc).__name__})")
    print(_summary(erasure), flush=True)
    topic = TopicNames(settings.topic_prefix).ops_events
    if published:
        print(f"guest.erased published to {topic}", flush=True)
    else:
        print(f"guest.erased is in the outbox: the broker did not take it now; a running "
              f"worker publishes it to {topic}", flush=True)
    return EXIT_OK


def _summary(erasure: Erasure) -> str:
    if not erasure.booking_ids and not erasure.stored_copies and not erasure.customers:
        return "no personal data of this guest is stored (never, or erased before)"
    ids = ", ".join(erasure.booking_ids) or "none"
    return (f"erased: {erasure.bookings} booking(s) now (bookings of this guest: {ids}); "
            f"{erasure.notifications} email record(s), {erasure.customers} customer "
            f"record(s), {erasure.stored_copies} stored cop(ies) of unpublished or parked "
            "records")


async def _erase(settings: Settings, url: str, **who: str | None) -> tuple[Erasure, bool]:
    import asyncpg

    from storage import db
    from storage.uow import Database

    try:
        pool = await asyncio.wait_for(db.create_pool(url, size=1), 10)
    except asyncpg.PostgresError as exc:
        raise OSError(str(exc)) from exc
    database = Database(pool)
    try:
        async with database.transaction() as uow:
            erasure, rows = await erase_guest(uow, now=datetime.now(UTC), **who)
        published = await _publish(settings, rows)
        if published:
            async with database.transaction() as uow:
                await uow.outbox.delete([r.id for r in rows if r.id is not None])
    finally:
        await database.close()
    return erasure, published


async def _publish(settings: Settings, rows: list[OutboxRow]) -> bool:
    """Publish the ops event now if the broker answers; False leaves it to the relay."""
    from aiokafka.errors import KafkaError

    from producers.publisher import Publisher

    topics = TopicNames(settings.topic_prefix)

    async def send() -> None:
        async with Publisher(settings, client_id="seatflow-guests") as publisher:
            for row in rows:
                await publisher.publish_raw(topics.name(row.topic),
                                            row.key.encode() if row.key else None, row.payload)
            await publisher.flush()

    try:
        await asyncio.wait_for(send(), PUBLISH_TIMEOUT_S)
    except (KafkaError, OSError, TimeoutError):
        return False
    return True
