"""Defensive patches for faust-streaming 0.15.3 offset bookkeeping across rebalances.

Background and evidence: docs/faust-rebalance.md. Every patch here only ever makes Faust
commit *less far* (never further), so at-least-once delivery is kept: in the worst case an
event is processed twice, never skipped. Call :func:`apply` once, before the Faust app is
created; it is idempotent.
"""

from __future__ import annotations

import functools
from typing import Any

_APPLIED_FLAG = "_seatflow_rebalance_fixes"
_AWAITING_SEEK = "_seatflow_awaiting_seek"


def _awaiting_seek(consumer: Any) -> set[Any]:
    awaiting = consumer.__dict__.get(_AWAITING_SEEK)
    if awaiting is None:
        awaiting = consumer.__dict__[_AWAITING_SEEK] = set()
    return awaiting


def apply() -> None:
    """Patch ``faust.transport.consumer.Consumer`` (idempotent)."""
    from faust.transport.consumer import Consumer
    from mode.utils.futures import notify

    if getattr(Consumer, _APPLIED_FLAG, False):
        return

    original_ack = Consumer.ack
    original_revoked = Consumer.on_partitions_revoked
    original_assigned = Consumer.on_partitions_assigned
    original_perform_seek = Consumer.perform_seek
    original_new_offset = Consumer._new_offset

    # Cause 1: Stream._py_aiter (faust/streams.py ~L1287-1300 and the `finally` at ~L1330)
    # *acks* a message it skips because its generation_id is stale or flow control is
    # suspended -- i.e. an event fetched before the rebalance that the agent never
    # processed. That ack lands in Consumer._acked (consumer.py L825-853) and lets
    # _new_offset (L1097-1151) commit past it and past every unprocessed event before it.
    # An ack from an older generation says nothing about the new one: drop it. The same
    # for any ack of a tp awaiting its post-rebalance seek: a flow-control skip there still
    # carries the current generation (it only changes at the assignment) and, with the
    # committed offset popped, would otherwise be committed after the seek. Dropping is safe:
    # the seek re-reads everything from the committed offset anyway.
    @functools.wraps(original_ack)
    def ack(self: Any, message: Any) -> bool:
        generation = getattr(message, "generation_id", None)
        stale = generation is not None and generation != self.app.consumer_generation_id
        if stale or message.tp in _awaiting_seek(self):
            message.acked = True
            self._unacked_messages.discard(message)
            notify(self._waiting_for_ack)  # wake wait_empty() as the original ack does
            return False
        return original_ack(self, message)

    # Cause 2: on_partitions_revoked pops _committed_offset/_read_offset/_acked for every
    # revoked tp (consumer.py L657-662; aiokafka revokes *all* partitions, also the ones
    # the worker keeps). Until Recovery calls perform_seek (recovery.py L319-322, which
    # refills _committed_offset, consumer.py L565-580) the head-of-queue guard in
    # _new_offset (`if committed_offset:` L1138-1141) is off, so the commit timer can
    # commit whatever was acked in between. Refuse to compute a commit offset for a tp
    # between its revocation/assignment and the seek that follows.
    @functools.wraps(original_revoked)
    async def on_partitions_revoked(self: Any, revoked: Any) -> None:
        _awaiting_seek(self).update(revoked)
        await original_revoked(self, revoked)

    @functools.wraps(original_assigned)
    async def on_partitions_assigned(self: Any, assigned: Any, generation_id: int = 0) -> None:
        _awaiting_seek(self).update(assigned)
        await original_assigned(self, assigned, generation_id)

    @functools.wraps(original_perform_seek)
    async def perform_seek(self: Any) -> None:
        await original_perform_seek(self)
        _awaiting_seek(self).difference_update(self.assignment())

    @functools.wraps(original_new_offset)
    def _new_offset(self: Any, tp: Any) -> int | None:
        if tp in _awaiting_seek(self):
            return None
        return original_new_offset(self, tp)

    Consumer.ack = ack  # type: ignore[method-assign]
    Consumer.on_partitions_revoked = on_partitions_revoked  # type: ignore[method-assign]
    Consumer.on_partitions_assigned = on_partitions_assigned  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    setattr(Consumer, _APPLIED_FLAG, True)
