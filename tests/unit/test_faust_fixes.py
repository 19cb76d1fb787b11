"""streams/faust_fixes.py against faust's real Consumer offset bookkeeping, without a broker.

The consumer here is faust's own `faust.transport.consumer.Consumer` (ack, _acked,
_acked_index, _committed_offset, _read_offset, _new_offset, commit, on_partitions_revoked,
on_partitions_assigned, perform_seek). Only the broker I/O it declares abstract is stubbed:
`seek_to_committed` answers from a dict that plays the broker's committed offsets and `_commit`
records what would have been sent. The rebalance is driven in the order aiokafka's
ConsumerRebalanceListener and faust's Recovery drive it (revoke everything -> set the new
generation -> assign -> ... -> perform_seek).

Each mechanism of docs/faust-rebalance.md gets one scenario, run twice:
  * with the patched methods (what the app runs after `faust_fixes.apply()`), asserting that no
    commit ever covers an offset the agent has not processed;
  * with the patch for that mechanism taken out again, i.e. faust's original methods (the
    `__wrapped__` of each patch: `functools.wraps` keeps the function it replaced), asserting
    that the same scenario DOES commit past unprocessed events. That second test is what shows
    the first one can fail, and that it is this patch that makes it pass.
`apply()` patches the class globally and once; the unpatched variants are subclasses that put
the originals back, so the order in which tests run does not matter.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams import faust_fixes

TOPIC = "faust-fixes-test"
KEPT = TP(TOPIC, 0)  # stays with this worker across the rebalance
MOVED = TP(TOPIC, 1)  # goes to the other worker

# The methods faust_fixes.apply() replaces on faust.transport.consumer.Consumer.
PATCHED_METHODS = ("ack", "on_partitions_revoked", "on_partitions_assigned", "perform_seek",
                   "_new_offset")


class _ProducerStub:
    """`Consumer._commit_offsets` flushes the app's producer before committing."""

    async def flush(self) -> None:
        return None


class BrokerlessConsumer(Consumer):
    """faust's Consumer with only its abstract broker I/O replaced."""

    def __init__(self, app: faust.App, broker_committed: Mapping[TP, int]) -> None:
        self.current_assignment: set[TP] = set()
        self.broker_committed: dict[TP, int] = dict(broker_committed)
        self.processed: dict[TP, set[int]] = {}  # offsets the "agent" really handled
        # Each commit sent to the "broker", with what had been processed at that moment.
        self.commits: list[tuple[dict[TP, int], dict[TP, frozenset[int]]]] = []
        super().__init__(app.transport, callback=self._no_callback,
                         on_partitions_revoked=self._no_revoked_callback,
                         on_partitions_assigned=self._no_assigned_callback)

    async def _no_callback(self, message: Any) -> None:
        return None

    async def _no_revoked_callback(self, revoked: Any) -> None:
        return None

    async def _no_assigned_callback(self, assigned: Any, generation_id: int = 0) -> None:
        return None

    def assignment(self) -> set[TP]:
        return set(self.current_assignment)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return {tp: self.broker_committed[tp] for tp in self.current_assignment
                if tp in self.broker_committed}

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        snapshot = {tp: frozenset(done) for tp, done in self.processed.items()}
        self.commits.append((dict(offsets), snapshot))
        self.broker_committed.update(offsets)
        return True

    def _new_topicpartition(self, topic: str, partition: int) -> TP:
        return TP(topic, partition)

    # Broker I/O the scenarios never reach.
    def _unused(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the scenario should not reach the broker")

    _getmany = _seek = _to_message = create_topic = earliest_offsets = _unused
    highwater = highwaters = key_partition = position = seek_wait = _unused
    subscribe = topic_partitions = _unused


@functools.cache
def consumer_class(unpatched: frozenset[str] = frozenset()) -> type[BrokerlessConsumer]:
    """The consumer as the app runs it after `faust_fixes.apply()`, except that the methods
    named in `unpatched` are faust's own originals again."""
    faust_fixes.apply()
    if not unpatched:
        return BrokerlessConsumer
    originals = {name: getattr(Consumer, name).__wrapped__ for name in unpatched}
    return type("PartlyUnpatchedConsumer", (BrokerlessConsumer,), originals)


PATCHED = frozenset[str]()
WITHOUT_ACK_PATCH = frozenset({"ack"})
WITHOUT_SEEK_GUARD = frozenset({"on_partitions_revoked", "on_partitions_assigned",
                                "perform_seek", "_new_offset"})


async def new_consumer(cls: type[BrokerlessConsumer], broker_committed: Mapping[TP, int],
                       ) -> tuple[faust.App, BrokerlessConsumer]:
    """A fresh app (dummy broker URL, never started) and a consumer assigned KEPT and MOVED,
    seeked to `broker_committed`, in generation 1."""
    app = faust.App("seatflow-faust-fixes-test", broker="kafka://127.0.0.1:1")
    app.producer = _ProducerStub()  # type: ignore[assignment]
    topic = app.topic(TOPIC, value_serializer="raw")
    app.topics.add(topic)
    await app.topics._update_indices()  # what marks TOPIC as an acking topic
    consumer = cls(app, broker_committed)
    await rebalance(app, consumer, {KEPT, MOVED}, generation=1)
    await consumer.perform_seek()
    return app, consumer


async def rebalance(app: faust.App, consumer: BrokerlessConsumer, new_assignment: set[TP], *,
                    generation: int) -> None:
    """Revocation and assignment as aiokafka drives them; the seek (Recovery) is left to the
    caller, because the window before it is what mechanism 2 is about."""
    app.on_rebalance_start()
    await consumer.on_partitions_revoked(consumer.assignment())  # aiokafka revokes all
    app.consumer_generation_id = generation
    consumer.current_assignment = set(new_assignment)
    await consumer.on_partitions_assigned(set(new_assignment), generation)


def fetched(tp: TP, offset: int, generation: int) -> ConsumerMessage:
    """A message as the fetcher hands it on: stamped with the generation it was fetched in and
    referenced once (by its stream)."""
    message = ConsumerMessage(tp.topic, tp.partition, offset, timestamp=0.0, timestamp_type=0,
                              headers=[], key=None, value=b"", checksum=None,
                              generation_id=generation)
    message.incref()
    return message


def process(consumer: BrokerlessConsumer, message: ConsumerMessage) -> None:
    """The agent handled the event, then the stream acks it (Event.ack -> Message.ack)."""
    consumer.processed.setdefault(message.tp, set()).add(message.offset)
    message.ack(consumer)


def skip(consumer: BrokerlessConsumer, message: ConsumerMessage) -> None:
    """Stream._py_aiter skipped the event (stale generation_id) and acks it in its `finally`."""
    message.ack(consumer)


def commits_past_unprocessed(consumer: BrokerlessConsumer, start: Mapping[TP, int],
                             ) -> list[tuple[TP, int, list[int]]]:
    """Every commit that covered an offset not processed when it was sent:
    (tp, committed offset, the unprocessed offsets below it)."""
    unsafe = []
    for offsets, processed in consumer.commits:
        for tp, offset in offsets.items():
            missing = [o for o in range(start[tp], offset) if o not in processed.get(tp, ())]
            if missing:
                unsafe.append((tp, offset, missing))
    return unsafe


def test_unpatched_variant_runs_faust_own_methods() -> None:
    assert WITHOUT_ACK_PATCH | WITHOUT_SEEK_GUARD == set(PATCHED_METHODS)
    patched = consumer_class(PATCHED)
    unpatched = consumer_class(frozenset(PATCHED_METHODS))
    for name in PATCHED_METHODS:
        patched_code = getattr(patched, name).__code__.co_filename
        original_code = getattr(unpatched, name).__code__.co_filename
        assert patched_code.endswith("streams/faust_fixes.py"), name
        assert not original_code.endswith("streams/faust_fixes.py"), name
        assert getattr(unpatched, name) is getattr(Consumer, name).__wrapped__


# Mechanism 1: acks of events fetched in an older generation count towards the commit.
# KEPT is committed at 100. Events 100..104 were fetched in generation 1, the rebalance moves
# the worker to generation 2 before the agent gets to them, and the stream skips each (stale
# generation_id) and acks it. After the seek they are read again from 100.

async def stale_generation_scenario(cls: type[BrokerlessConsumer]) -> BrokerlessConsumer:
    app, consumer = await new_consumer(cls, {KEPT: 100, MOVED: 50})
    prefetched = [fetched(KEPT, offset, generation=1) for offset in range(100, 105)]
    await rebalance(app, consumer, {KEPT}, generation=2)
    await consumer.perform_seek()
    for message in prefetched:
        skip(consumer, message)
    await consumer.commit()  # the commit timer fires
    return consumer


async def test_stale_generation_acks_commit_past_unprocessed_events_without_the_patch() -> None:
    consumer = await stale_generation_scenario(consumer_class(WITHOUT_ACK_PATCH))
    assert commits_past_unprocessed(consumer, {KEPT: 100}) == [
        (KEPT, 105, [100, 101, 102, 103, 104])]


async def test_stale_generation_acks_are_not_committed() -> None:
    consumer = await stale_generation_scenario(consumer_class(PATCHED))
    assert consumer.commits == []
    assert consumer.broker_committed[KEPT] == 100
    # Read again in generation 2 and processed: now the commit may move past them.
    for offset in range(100, 105):
        process(consumer, fetched(KEPT, offset, generation=2))
    await consumer.commit()
    assert consumer.broker_committed[KEPT] == 105
    assert commits_past_unprocessed(consumer, {KEPT: 100}) == []


# Mechanism 2: between on_partitions_revoked (which pops _committed_offset, _read_offset,
# _acked for every partition, the kept ones too) and the seek, the head-of-queue guard in
# _new_offset (`if committed_offset:`) is off. KEPT is committed at 101; an agent with
# concurrency > 1 has 101, 102 and 103 in flight. 103 finishes first, during the rebalance,
# and wait_empty()/the commit timer commits before the seek.

async def revocation_window_scenario(cls: type[BrokerlessConsumer]) -> BrokerlessConsumer:
    app, consumer = await new_consumer(cls, {KEPT: 101, MOVED: 50})
    in_flight = {offset: fetched(KEPT, offset, generation=1) for offset in (101, 102, 103)}
    app.on_rebalance_start()
    await consumer.on_partitions_revoked(consumer.assignment())
    process(consumer, in_flight[103])  # acked in the old generation, before the new one
    await consumer.commit()  # inside the window: revoked, not yet assigned
    app.consumer_generation_id = 2
    consumer.current_assignment = {KEPT}
    await consumer.on_partitions_assigned({KEPT}, 2)
    await consumer.commit()  # still inside the window: assigned, not yet seeked
    return consumer


async def test_commit_in_the_revocation_window_skips_in_flight_events_without_the_patch() -> None:
    consumer = await revocation_window_scenario(consumer_class(WITHOUT_SEEK_GUARD))
    assert commits_past_unprocessed(consumer, {KEPT: 101}) == [(KEPT, 104, [101, 102])]


async def test_nothing_is_committed_between_revocation_and_seek() -> None:
    consumer = await revocation_window_scenario(consumer_class(PATCHED))
    assert consumer.commits == []
    await consumer.perform_seek()
    await consumer.commit()  # the guard is back: 101 and 102 are still missing
    assert consumer.commits == []
    # The seek to 101 makes the fetcher deliver 101.. again in generation 2 (the in-flight
    # generation 1 copies are dropped by the ack patch); the agent processes them.
    for offset in (101, 102, 103):
        process(consumer, fetched(KEPT, offset, generation=2))
    await consumer.commit()
    assert consumer.broker_committed[KEPT] == 104
    assert commits_past_unprocessed(consumer, {KEPT: 101}) == []



# Mechanism 1, second trigger: Stream._py_aiter also skips (and acks) an event that arrives
# while flow control is suspended. App._on_partitions_revoked suspends flow control *after*
# Consumer.on_partitions_revoked has popped the offsets, and the generation only changes at
# the assignment, so such an ack carries the current generation and lands in _acked with no
# committed offset to check it against. After the seek (committed offset 100 again) it is the
# head of _acked and gets committed, although the agent never saw event 100.

async def flow_control_skip_scenario(cls: type[BrokerlessConsumer]) -> BrokerlessConsumer:
    app, consumer = await new_consumer(cls, {KEPT: 100, MOVED: 50})
    delivered = fetched(KEPT, 100, generation=1)
    app.on_rebalance_start()
    await consumer.on_partitions_revoked(consumer.assignment())
    skip(consumer, delivered)  # flow control suspended: skipped, acked
    app.consumer_generation_id = 2
    consumer.current_assignment = {KEPT}
    await consumer.on_partitions_assigned({KEPT}, 2)
    await consumer.perform_seek()
    await consumer.commit()
    return consumer


async def test_flow_control_skip_in_the_revocation_commits_it_without_the_patch() -> None:
    consumer = await flow_control_skip_scenario(consumer_class(WITHOUT_ACK_PATCH))
    assert commits_past_unprocessed(consumer, {KEPT: 100}) == [(KEPT, 101, [100])]


async def test_flow_control_skip_in_the_revocation_is_not_committed() -> None:
    consumer = await flow_control_skip_scenario(consumer_class(PATCHED))
    assert consumer.commits == []
    process(consumer, fetched(KEPT, 100, generation=2))  # read again after the seek
    await consumer.commit()
    assert consumer.broker_committed[KEPT] == 101
    assert commits_past_unprocessed(consumer, {KEPT: 100}) == []


async def test_a_dropped_ack_wakes_wait_empty() -> None:
    # Consumer.wait_empty() sleeps on _waiting_for_ack between commits; the original ack
    # wakes it. A dropped ack must too, or every rebalance waits out the 1 s timeout.
    app, consumer = await new_consumer(consumer_class(PATCHED), {KEPT: 100, MOVED: 50})
    app.on_rebalance_start()
    await consumer.on_partitions_revoked(consumer.assignment())
    waiting = consumer._waiting_for_ack = asyncio.get_running_loop().create_future()
    skip(consumer, fetched(KEPT, 100, generation=1))
    assert waiting.done()
