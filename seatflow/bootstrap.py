"""The composition root: build one worker from settings.

Entrypoints call `bootstrap`; nothing imports this module otherwise. It is the one place
that knows every piece: it builds the policies from the settings, and registers the agents,
tasks, timers and web views on a Faust app.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import faust

from agents import allocator, changes, emails, housekeeping, restaurants
from config.settings import Settings
from config.topics import COMPACTED, Topic, TopicNames
from mail.smtp import SmtpRelay
from seatflow.database import database_url
from services.allocation import AllocationPolicy
from services.changes import ChangePolicy
from services.retention import RetentionPolicy
from streams import web
from streams.app import create_faust_app, input_topic, producer_send, producer_send_many
from streams.runtime import Runtime


@dataclass(frozen=True)
class Policies:
    changes: ChangePolicy
    allocation: AllocationPolicy
    retention: RetentionPolicy


def policies(settings: Settings) -> Policies:
    inline_window = timedelta(milliseconds=settings.inline_confirm_window_ms)
    return Policies(
        changes=ChangePolicy(auto_assign=settings.feature_auto_assign_on_booking,
                             inline_window=inline_window),
        allocation=AllocationPolicy(retry_delays_s=settings.retry_delays_s,
                                    inline_window=inline_window,
                                    repack=settings.allocation_repack,
                                    tidy_moves=settings.allocation_tidy_moves),
        retention=RetentionPolicy(dedupe=timedelta(days=settings.dedupe_retention_days),
                                  email_records=timedelta(
                                      days=settings.email_record_retention_days),
                                  batch_rows=settings.prune_batch_rows,
                                  guest_data=timedelta(
                                      days=settings.guest_data_retention_days)),
    )


def bootstrap(settings: Settings, *, database: str | None = None) -> tuple[faust.App, Runtime]:
    """A Faust app with everything a worker runs, and the runtime its parts share.
    `database`: a URL already decided by the caller (else `database_url(settings)`)."""
    app = create_faust_app(settings)
    topics = TopicNames(settings.topic_prefix)
    rt = Runtime(settings=settings, topics=topics,
                 database_url=database or database_url(settings))
    rt.send = producer_send(app)
    if settings.batched_sends:
        rt.send_many = producer_send_many(app)
    policy = policies(settings)

    def topic(t: Topic) -> faust.TopicT:
        config = {"cleanup.policy": "compact"} if t in COMPACTED else {}
        return input_topic(app, topics.name(t), **config)

    restaurants.register(app, rt, topic(Topic.RESTAURANTS), policy.changes)
    changes.register(app, rt, topic(Topic.BOOKING_CHANGES), policy.changes)
    allocator.register(app, rt, topic(Topic.ALLOCATION_REQUESTS), policy.allocation)
    emails.register(app, rt, SmtpRelay.from_settings(settings))
    housekeeping.register(app, rt, policy.retention)
    web.register(app, rt)
    return app, rt
