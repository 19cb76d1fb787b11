"""Topic creation (docs/interface.md §1): every prefixed topic exists before anyone uses it."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config.kafka import client_options
from config.settings import Settings
from config.topics import TopicNames
from streams.connection import start_client

log = logging.getLogger(__name__)

_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36


class TopicCreationError(RuntimeError):
    pass


def topic_specs(settings: Settings, extra: Iterable[str] = ()) -> list[NewTopic]:
    """What `ensure_topics` creates: partitions and replication from settings; the
    restaurants topic compacted (latest configuration per restaurant wins)."""
    names = TopicNames(settings.topic_prefix)
    compacted = names.compacted()
    specs = []
    for topic in [*names.all(), *extra]:
        configs = {"cleanup.policy": "compact"} if topic in compacted else {}
        specs.append(
            NewTopic(
                name=topic,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=configs,
            )
        )
    return specs


async def ensure_topics(settings: Settings, extra: Iterable[str] = ()) -> None:
    """Create each missing topic. Idempotent; another worker creating the same topic at the
    same moment (TopicAlreadyExists) is fine. Existing topics are left as they are."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topic_specs(settings, extra) if spec.name not in existing]
        if not missing:
            return
        response = await admin.create_topics(missing)
        failures = []
        for topic, code, message in _topic_errors(response):
            if code == _NO_ERROR:
                log.info("created topic %s", topic)
            elif code != _TOPIC_ALREADY_EXISTS:
                failures.append(f"{topic}: error {code} {message or ''}".strip())
        if failures:
            raise TopicCreationError("could not create topics: " + "; ".join(failures))
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    # CreateTopicsResponse v1+ carries (topic, error_code, error_message); v0 has no message.
    result = []
    for entry in response.topic_errors:  # type: ignore[attr-defined]
        topic, code, *rest = entry
        result.append((topic, code, rest[0] if rest else None))
    return result
