"""The dead-letter guard every agent loop runs its batches through.

Faust acks a message whose agent raised and moves on (INFRA.md), so nothing may raise out
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from models.common import format_error
from services.outbox import OpsNote, OutboxRow, ops_row
from streams.deadletter import SourceMessage, build_dead_letter
from streams.runtime import Runtime

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


class DecodeError(ValueError):
    """The bytes are not a JSON object."""


class SchemaError(ValueError):
    """Valid JSON that breaks the contract; the message names the fields."""


def decode_json(raw: bytes | None) -> dict:
    if raw is None:
        raise DecodeError("message has no value")
    try:
        # Strict UTF-8 first: json.loads(bytes) would also take UTF-16/32 and encoded surrogates.
        data = json.loads(raw.decode("utf-8"))
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
        handle: Callable[[list[M]], Awaitable[None]],
    ) -> None:
        self.rt = rt
        self.name = name
        self.model = model
        self.handle = handle

    def decode(self, src: SourceMessage) -> M:
        data = decode_json(src.value)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            raise SchemaError(format_error(exc)) from exc
        except (ValueError, TypeError, RecursionError) as exc:  # a validator that did not wrap
            raise SchemaError(f"{type(exc).__name__}: {exc}") from exc

    async def run(self, sources: Sequence[SourceMessage]) -> None:
        good: list[Decoded[M]] = []
        poison: list[tuple[SourceMessage, str, BaseException]] = []
        for src in sources:
            self.rt.metrics.consumed.labels(topic=self.name).inc()
            try:
                good.append(Decoded(src, self.decode(src)))
            except DecodeError as exc:
                poison.append((src, "decode", exc))
            except SchemaError as exc:
                poison.append((src, "validate", exc))
        if good:
            with self.rt.metrics.batch_seconds.labels(agent=self.name).time():
                await self._handle(good, poison)
        if poison:
            await self.dead_letter(poison)

    async def _handle(
        self, items: list[Decoded[M]], poison: list[tuple[SourceMessage, str, BaseException]]
    ) -> None:
        """Handle `items` as one batch; on a non-transient failure split it in halves (in
        order) until the failing message stands alone, and mark only that one poison."""
        try:
            await self.rt.until_done(self.name, lambda: self.handle([d.model for d in items]))
            return
        except Exception as exc:  # noqa: BLE001 - narrowed below
            if len(items) == 1:
                poison.append((items[0].source, "process", exc))
                return
            log.warning("%s: batch of %d failed (%r); splitting it", self.name, len(items), exc)
        half = len(items) // 2
        await self._handle(items[:half], poison)
        await self._handle(items[half:], poison)

    async def dead_letter(self, poison: list[tuple[SourceMessage, str, BaseException]]) -> None:
        """Publish dead letters (original key and bytes, contract headers) and one
        `dead_letter.published` ops event each; returns once the broker has them all."""
        now = datetime.now(UTC)
        letters = []
        notes: list[OutboxRow] = []
        for src, stage, exc in poison:
            log.warning("%s: dead-lettering %s[%d]@%d at stage %s: %s", self.name, src.topic,
                        src.partition, src.offset, stage, exc)
            letters.append(build_dead_letter(src, stage, exc, now))  # type: ignore[arg-type]
            note = OpsNote(
                "dead_letter.published",
                "warning",
                {
                    "stage": stage,
                    "original_topic": src.topic,
                    "original_partition": src.partition,
                    "original_offset": src.offset,
                    "exception_class": type(exc).__name__,
                    "exception_message": str(exc)[:500],
                },
            )
            key = src.key.decode("utf-8", "replace") if src.key is not None else None
            notes.append(ops_row(note, now, booking_id=key))
        assert self.rt.send is not None

        async def publish() -> None:
            futures = [
                await self.rt.send(self.rt.topics.dead_letters, letter.key, letter.value,
                                   letter.headers)
                for letter in letters
            ]
            await asyncio.gather(*futures)
            await self.rt.publish_rows(notes)

        await self.rt.until_done(f"{self.name}.dead-letter", publish)
        for _, stage, _ in poison:
            self.rt.metrics.dead_letters.labels(topic=self.name, stage=stage).inc()


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
