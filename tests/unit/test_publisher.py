"""The background publisher (streams.runtime): committed rows go out in commit order, and what
commits while a send is under way, or within the linger of a caught-up publisher, goes out
in the same send (fewer, fuller record batches per partition)."""

from __future__ import annotations

import asyncio

import pytest

from config.settings import Settings
from config.topics import Topic, TopicNames
from storage.outbox import OutboxRow
from streams.runtime import Runtime


def rows(*keys: str) -> list[OutboxRow]:
    return [OutboxRow(Topic.BOOKING_STATUS, key, key.encode()) for key in keys]


class Sends:
    """A `send_many` that records each call; the first one waits until released."""

    def __init__(self, hold_first: bool) -> None:
        self.calls: list[list[bytes]] = []
        self.release = asyncio.Event()
        self.hold_first = hold_first
        self.arrived = asyncio.Event()

    async def __call__(self, records: list[tuple[str, bytes | None, bytes]]) -> list[object]:
        self.calls.append([value for _, _, value in records])
        self.arrived.set()
        if self.hold_first and len(self.calls) == 1:
            await self.release.wait()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return [done]


def runtime(linger_ms: float, sends: Sends) -> Runtime:
    settings = Settings().model_copy(update={"producer_linger_ms": linger_ms,
                                            "publish_in_background": True})
    async def one_by_one(*record: object) -> object:
        raise AssertionError("rows go out through send_many")

    return Runtime(settings=settings, topics=TopicNames("t."), database_url="",
                   send=one_by_one, send_many=sends)


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    pytest.fail(f"never happened: {what}")


def test_commits_queued_during_a_send_go_out_together_in_commit_order() -> None:
    async def scenario() -> list[list[bytes]]:
        sends = Sends(hold_first=True)
        rt = runtime(0, sends)
        await rt.publish_committed(rows("a1"))
        await asyncio.wait_for(sends.arrived.wait(), 10)  # the first send is under way (held)
        await rt.publish_committed(rows("b1", "b2"))
        await rt.publish_committed(rows("c1"))
        await rt.publish_committed(rows("d1"))
        sends.release.set()
        await until(lambda: sum(map(len, sends.calls)) == 5, "all five rows sent")
        return sends.calls

    calls = asyncio.run(scenario())
    assert calls == [[b"a1"], [b"b1", b"b2", b"c1", b"d1"]]


def test_a_caught_up_publisher_lingers_once_so_the_next_commit_joins_its_send() -> None:
    async def scenario() -> list[list[bytes]]:
        sends = Sends(hold_first=False)
        rt = runtime(500, sends)  # the second commit comes a few loop turns later: within it
        await rt.publish_committed(rows("a1"))
        await until(lambda: rt._outgoing is not None and rt._outgoing.empty(),
                    "the publisher took the first commit")
        await rt.publish_committed(rows("b1"))
        await asyncio.wait_for(sends.arrived.wait(), 10)
        return sends.calls

    assert asyncio.run(scenario()) == [[b"a1", b"b1"]]


def test_without_a_linger_a_caught_up_publisher_sends_at_once() -> None:
    async def scenario() -> list[list[bytes]]:
        sends = Sends(hold_first=False)
        rt = runtime(0, sends)
        await rt.publish_committed(rows("a1"))
        await asyncio.wait_for(sends.arrived.wait(), 10)
        await rt.publish_committed(rows("b1"))
        await until(lambda: len(sends.calls) == 2, "the second send")
        return sends.calls

    assert asyncio.run(scenario()) == [[b"a1"], [b"b1"]]


def test_delivered_rows_of_several_sends_are_deleted_from_the_outbox_in_one_transaction(
) -> None:
    async def scenario() -> tuple[int, list[list[int]]]:
        sends = Sends(hold_first=False)
        rt = runtime(0, sends)
        deletes: list[list[int]] = []

        async def forget(ids: list[int]) -> None:  # stands in for the DELETE transaction
            deletes.append(ids)

        rt._forget = forget  # type: ignore[method-assign]
        for i in (1, 2, 3):
            await rt.publish_committed([OutboxRow(Topic.BOOKING_STATUS, "k", b"v", id=i)])
            await until(lambda i=i: sum(map(len, sends.calls)) == i, f"row {i} sent")
        await until(lambda: rt._forgetter is not None, "a delete scheduled")
        await asyncio.wait_for(rt._forgetter, 10)  # type: ignore[arg-type]
        return len(sends.calls), deletes

    sends, deletes = asyncio.run(scenario())
    assert sends == 3  # three sends ...
    assert deletes == [[1, 2, 3]]  # ... one delete
