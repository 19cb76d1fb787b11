"""The dead-letter guard every agent loop runs its batches through.

Faust acks a message whose agent raised and moves on (docs/infrastructure.md), so nothing may raise out
of an agent: each message is decoded (stage `decode`), validated (`validate`) and the
good ones handled as one batch (`process`). Transient infrastructure errors retry the
same batch; any other failure is narrowed down message by message, in order, and only
the message that fails on its own is dead-lettered. Events are acked only after their
batch is durably handled or dead-lettered, so a crash mid-batch loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from domain.model import OpsNote
from domain.privacy import redact
from models.common import format_error
from services.outbox import ops_row
from storage.dead_letters import RefusedDeadLetter
from storage.outbox import OutboxRow
from streams.deadletter import (
    DeadLetter,
    DeadLetterStage,
    SourceMessage,
    build_dead_letter,
    dead_letter_size,
    fit_dead_letter,
)
from streams.runtime import Runtime, is_transient_kafka

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


class DecodeError(ValueError):
    """The bytes are not a JSON object."""


class SchemaError(ValueError):
    """Valid JSON that breaks the contract; the message names the fields."""


def _not_json(constant: str) -> float:
    # Python's parser takes NaN, Infinity and -Infinity; RFC 8259 JSON has no such values.
    raise ValueError(f"{constant} is not JSON (RFC 8259)")


def decode_json(raw: bytes | None) -> dict:
    if raw is None:
        raise DecodeError("message has no value")
    try:
        # Strict UTF-8 first: json.loads(bytes) would also take UTF-16/32 and encoded surrogates.
        data = json.loads(raw.decode("utf-8"), parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and Python's int-digits limit; RecursionError
        # is deep nesting. Anything escaping here would crash the agent and lose its batch.
        raise DecodeError(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DecodeError(f"expected a JSON object, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class Decoded(Generic[M]):
    source: SourceMessage
    model: M


@dataclass(frozen=True)
class Poison:
    """A message that could not be processed, the stage it failed at, and why."""

    source: SourceMessage
    stage: DeadLetterStage
    error: BaseException


# What a topic's record key names, for the ops event of its dead letters.
KeyField = Literal["booking_id", "restaurant_id"]
# Ids longer than this are not copied from a key into an ops event (a hostile key may be huge).
MAX_ID_IN_OPS_EVENT = 200
# Backlogged dead letters are retried with this backoff (seconds), up to the last.
BACKLOG_BACKOFF_S = (5.0, 30.0, 120.0, 600.0)


def _loggable(p: Poison) -> str:
    """Why a message was dead-lettered, for the log. Decode and validate errors are ours and
    name fields (a malformed time or date is quoted; an address in its place is not); any
    other exception's message may quote the input (guests' data), so only its class is
    logged (the dead letter's headers carry it all)."""
    if p.stage in ("decode", "validate"):
        return redact(str(p.error))
    return f"{type(p.error).__name__} (message in the dead letter's x-dlq-exception-message)"


def source_of(event: object) -> SourceMessage:
    msg = event.message  # type: ignore[attr-defined]
    return SourceMessage(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        timestamp_ms=int(msg.timestamp * 1000) if msg.timestamp else None,
        key=msg.key,
        value=msg.value,
        headers=[(k, v) for k, v in (msg.headers or [])],
    )


class BatchGuard(Generic[M]):
    def __init__(
        self,
        rt: Runtime,
        name: str,
        model: type[M],
        handle: Callable[..., Awaitable[None]],
        *,
        key_field: KeyField,
        with_sources: bool = False,
    ) -> None:
        """`handle(models)`, or with `with_sources` `handle(models, sources)`: the messages
        they came in, in the same order."""
        self.rt = rt
        self.name = name
        self.model = model
        self.handle = handle
        self.key_field = key_field
        self.with_sources = with_sources

    def decode(self, src: SourceMessage) -> M:
        limit = self.rt.settings.max_input_bytes
        if src.value is not None and len(src.value) > limit:
            # Not parsed at all: no valid input is anywhere near this size.
            raise DecodeError(
                f"message of {len(src.value)} bytes is over the limit of {limit} bytes"
                " (SEATFLOW_MAX_INPUT_BYTES)"
            )
        data = decode_json(src.value)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            raise SchemaError(format_error(exc)) from exc
        except (ValueError, TypeError, RecursionError) as exc:  # a validator that did not wrap
            raise SchemaError(f"{type(exc).__name__}: {exc}") from exc

    async def run(self, sources: Sequence[SourceMessage]) -> None:
        good: list[Decoded[M]] = []
        poison: list[Poison] = []
        self.rt.metrics.consumed.labels(topic=self.name).inc(len(sources))
        age = self.rt.metrics.record_age_seconds.labels(agent=self.name)
        now_ms = time.time() * 1000
        for src in sources:
            if src.timestamp_ms is not None:
                age.observe(max(0.0, now_ms - src.timestamp_ms) / 1000)
            try:
                good.append(Decoded(src, self.decode(src)))
            except DecodeError as exc:
                poison.append(Poison(src, "decode", exc))
            except SchemaError as exc:
                poison.append(Poison(src, "validate", exc))
        if good:
            with self.rt.metrics.batch_seconds.labels(agent=self.name).time():
                await self._handle(good, poison)
        if poison:
            await self.dead_letter(poison)

    async def _handle(self, items: list[Decoded[M]], poison: list[Poison]) -> None:
        """Handle `items` as one batch; on a non-transient failure split it in halves (in
        order) until the failing message stands alone, and mark only that one poison."""
        try:
            await self.rt.until_done(self.name, lambda: self._call(items))
            return
        except Exception as exc:  # noqa: BLE001 - narrowed below
            if len(items) == 1:
                poison.append(Poison(items[0].source, "process", exc))
                return
            # The class only: a message may quote the input (guests' data).
            log.warning("%s: batch of %d failed (%s); splitting it", self.name, len(items),
                        type(exc).__name__)
        half = len(items) // 2
        await self._handle(items[:half], poison)
        await self._handle(items[half:], poison)

    def _call(self, items: list[Decoded[M]]) -> Awaitable[None]:
        models = [d.model for d in items]
        if self.with_sources:
            return self.handle(models, [d.source for d in items])
        return self.handle(models)

    async def dead_letter(self, poison: list[Poison]) -> None:
        """Publish dead letters (original key and bytes, contract headers; a value too large
        for one record cut to fit) and one ops event each; returns once each is on the
        topic or, if the topic refused it for good, stored in PostgreSQL for a relay to
        retry (`dead_letter_backlog`). Nothing here raises for a bad message."""
        now = datetime.now(UTC)
        letters = []
        for p in poison:
            src = p.source
            log.warning("%s: dead-lettering %s[%d]@%d at stage %s: %s", self.name, src.topic,
                        src.partition, src.offset, p.stage, _loggable(p),
                        extra={self.key_field: _id_from_key(src.key)})
            letters.append(build_dead_letter(src, p.stage, p.error, now))
        refused = await self.rt.until_done(
            f"{self.name}.dead-letter", lambda: self._publish(letters)
        )
        if refused:
            rows = [backlog_row(poison[i], letters[i], error) for i, error in refused.items()]
            await self.rt.until_done(
                f"{self.name}.dead-letter-backlog", lambda: self._backlog(rows)
            )
        notes = [dead_letter_ops_row(p, refused.get(i), now, self.key_field)
                 for i, p in enumerate(poison)]
        await self.rt.until_done(f"{self.name}.dead-letter", lambda: self.rt.publish_rows(notes))
        for p in poison:
            self.rt.metrics.dead_letters.labels(topic=self.name, stage=p.stage).inc()

    async def _publish(self, letters: list[DeadLetter]) -> dict[int, str]:
        """Send every letter; returns {index: why} for those the topic refused for good.
        A transient error raises (the caller retries the whole round)."""
        topic = self.rt.topics.dead_letters
        max_bytes = self.rt.settings.kafka_max_request_bytes
        refused: dict[int, str] = {}
        sent: list[tuple[int, asyncio.Future]] = []
        assert self.rt.send is not None
        for i, letter in enumerate(letters):
            fitted = fit_dead_letter(letter, max_bytes)
            if fitted is None:
                refused[i] = (
                    f"needs {dead_letter_size(DeadLetter(letter.key, b'', letter.headers))}"
                    f" bytes without its value (key and headers); records may have {max_bytes}"
                    " (SEATFLOW_KAFKA_MAX_REQUEST_BYTES)"
                )
                continue
            try:
                sent.append((i, await self.rt.send(topic, fitted.key, fitted.value,
                                                   fitted.headers)))
            except Exception as exc:
                if is_transient_kafka(exc):
                    raise
                refused[i] = f"{type(exc).__name__}: {exc}"
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        for (i, _), outcome in zip(sent, results, strict=True):
            if isinstance(outcome, BaseException):
                if is_transient_kafka(outcome) or not isinstance(outcome, Exception):
                    raise outcome
                refused[i] = f"{type(outcome).__name__}: {outcome}"
        return refused

    async def _backlog(self, letters: list[RefusedDeadLetter]) -> None:
        async with (await self.rt.database()).transaction() as uow:
            await uow.dead_letters.add(letters)
        for d in letters:
            log.error("%s: dead letter of %s[%d]@%d refused by the topic (%s); kept in"
                      " PostgreSQL (dead_letter_backlog) for retry", self.name, d.original_topic,
                      d.original_partition, d.original_offset, d.publish_error)


def dead_letter_ops_row(p: Poison, refused: str | None, now: datetime, key_field: KeyField,
                        *, restaurant_id: str | None = None) -> OutboxRow:
    """The ops event of a dead letter: published, or kept in the backlog (`refused`: why).
    The record key names the booking or restaurant; `restaurant_id` when known otherwise."""
    src = p.source
    context = {
        "stage": p.stage,
        "original_topic": src.topic,
        "original_partition": src.partition,
        "original_offset": src.offset,
        "exception_class": type(p.error).__name__,
        "exception_message": str(p.error)[:500],
        "value_bytes": 0 if src.value is None else len(src.value),
    }
    if refused is not None:
        context["backlogged"] = refused
    note = OpsNote(
        "dead_letter.backlogged" if refused is not None else "dead_letter.published",
        "error" if refused is not None else "warning",
        context,
    )
    ids = {"restaurant_id": restaurant_id, key_field: _id_from_key(src.key)}
    return ops_row(note, now, **ids)


def _id_from_key(key: bytes | None) -> str | None:
    """The record key as an id for an ops event, when it can be one."""
    if key is None or len(key) > MAX_ID_IN_OPS_EVENT:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def backlog_row(p: Poison, letter: DeadLetter, error: str) -> RefusedDeadLetter:
    """A dead letter to keep in PostgreSQL (`dead_letter_backlog`); `error`: why it waits."""
    src = p.source
    return RefusedDeadLetter(src.topic, src.partition, src.offset, letter.key, letter.value,
                             list(letter.headers), p.stage, error)


def backlog_delay_s(attempts: int) -> float:
    return BACKLOG_BACKOFF_S[min(attempts, len(BACKLOG_BACKOFF_S)) - 1]


def guarded_agent(
    app: object, topic: object, guard: BatchGuard, *, batch_size: int, within_s: float
) -> object:
    """A Faust agent that feeds batches through `guard` and acks only after each batch."""

    @app.agent(topic, name=guard.name)  # type: ignore[attr-defined]
    async def agent(stream):  # type: ignore[no-untyped-def]
        # noack_take: a batch cancelled mid-way (shutdown, rebalance) is not acked.
        async for events in stream.noack_take(batch_size, within_s):
            await guard.run([source_of(e) for e in events])
            for event in events:
                await stream.ack(event)

    return agent
