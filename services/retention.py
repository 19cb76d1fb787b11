"""Retention: append-only bookkeeping is pruned once it can no longer matter.

- ids of applied change events, of allocation requests acted on, and idempotent submissions:
  after the dedupe window (it must outlast the retention of the topics a record can be
  replayed from, or a replay would be applied again);
- final email records of bookings whose date is long past;
- guests' personal data in bookings whose date is past its retention (services.privacy:
  erased, the booking's facts kept).
Published outbox rows are deleted as soon as they are published (storage.outbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.privacy import expire_batch
from storage.uow import UnitOfWork


@dataclass(frozen=True)
class RetentionPolicy:
    dedupe: timedelta
    email_records: timedelta
    batch_rows: int
    guest_data: timedelta  # guests' personal data, after the booking's date


DEDUPE_TABLES = ("processed_events", "allocation_requests_done", "submissions")


async def prune_batch(uow: UnitOfWork, policy: RetentionPolicy, now: datetime) -> dict[str, int]:
    """One small batch per table; returns the rows deleted per table. Call again while any
    table returned a full batch."""
    deleted = {
        table: await uow.retention.prune_older_than(table, now - policy.dedupe,
                                                    limit=policy.batch_rows)
        for table in DEDUPE_TABLES
    }
    deleted["notifications"] = await uow.retention.prune_email_records(
        (now - policy.email_records).date(), limit=policy.batch_rows
    )
    deleted["guest_data"] = await expire_batch(
        uow, before_day=(now - policy.guest_data).date(), limit=policy.batch_rows, now=now
    )
    return deleted
