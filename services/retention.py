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

from collections.abc import Collection
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
# What one round prunes: the dedupe tables, email records, guests' personal data.
PRUNED = (*DEDUPE_TABLES, "notifications", "guest_data")


async def prune_batch(
    uow: UnitOfWork, policy: RetentionPolicy, now: datetime, tables: Collection[str] = PRUNED
) -> dict[str, int]:
    """One small batch for each of `tables`; returns the rows deleted per table. Call
    again for those that returned a full batch (`unfinished`) only: asking a table with
    nothing left again costs a search of it each time (for email records, a scan of the
    bookings) while another catches up (bench.soak)."""
    deleted: dict[str, int] = {}
    for table in DEDUPE_TABLES:
        if table in tables:
            deleted[table] = await uow.retention.prune_older_than(
                table, now - policy.dedupe, limit=policy.batch_rows)
    if "notifications" in tables:
        deleted["notifications"] = await uow.retention.prune_email_records(
            (now - policy.email_records).date(), limit=policy.batch_rows)
    if "guest_data" in tables:
        deleted["guest_data"] = await expire_batch(
            uow, before_day=(now - policy.guest_data).date(), limit=policy.batch_rows,
            now=now)
    return deleted


def unfinished(deleted: dict[str, int], policy: RetentionPolicy) -> list[str]:
    """The tables whose last batch was full: there may be more to prune."""
    return [table for table, n in deleted.items() if n >= policy.batch_rows]
