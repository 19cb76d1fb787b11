"""One Faust worker for the rebalance-loss choreography (run as a subprocess).

Record mode (default): every event the agent finishes is appended as
``partition offset value`` to ``--out`` (flushed per line), so a SIGKILL loses nothing that
was recorded. The test compares the union of all workers' records with what it produced.

Relay mode (``--relay``): the shape measured in docs/faust-rebalance.md. The agent does
``async for value in stream: await out_topic.send(value=value)`` to ``<topic>-out`` with
Faust's defaults (commit interval 2.8 s, ``stream_wait_empty``, acks); the test reads
``<topic>-out``. ``--out`` only gets one ``ready`` line at the first event (a start signal).

    python tests/integration/rebalance_worker.py --broker 127.0.0.1:9092 --topic t \
        --group g --out /tmp/w1.txt [--relay] [--no-fix] [--log-commits]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

# The repo root, so `streams.faust_fixes` imports when run as a plain script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True, help="host:port")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--no-fix", action="store_true", help="run faust unpatched")
    parser.add_argument("--work-ms", type=float, default=2.0, help="simulated work per event")
    parser.add_argument(
        "--commit-interval", type=float, default=None, help="default: 0.5 s, relay: Faust's 2.8"
    )
    parser.add_argument("--relay", action="store_true", help="relay each event to <topic>-out")
    parser.add_argument(
        "--log-commits", action="store_true", help="log commits, revocations, assignments, seeks"
    )
    parser.add_argument("--loglevel", default="WARNING")
    parser.add_argument(
        "--lose-every", type=int, default=0, help="harness self-check: skip every Nth number"
    )
    parser.add_argument("--take", type=int, default=0, help="consume in batches of N (stream.take)")
    return parser.parse_args(argv)


def build_app(args: argparse.Namespace):  # -> faust.App (faust imported lazily, after apply())
    import faust

    tuning: dict[str, object] = {}
    if args.commit_interval is not None or not args.relay:
        tuning["broker_commit_interval"] = args.commit_interval or 0.5
    if not args.relay:
        tuning["stream_wait_empty"] = False
    app = faust.App(
        args.group,
        broker=f"kafka://{args.broker}",
        value_serializer="raw",
        key_serializer="raw",
        # Fast group membership on Tansu (docs/infrastructure.md): ready in ~3.5 s, rebalance ~2 s.
        broker_session_timeout=4,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=4,
        **tuning,
        consumer_auto_offset_reset="earliest",
        topic_partitions=8,
        topic_allow_declare=False,
        web_enabled=False,
        store="memory://",
        datadir=str(args.out.parent / f"{args.out.stem}-data"),
    )
    topic = app.topic(args.topic, value_type=bytes, key_type=bytes, partitions=8)
    out = args.out.open("a", buffering=1)  # line-buffered: each record hits the file
    work_seconds = args.work_ms / 1000.0

    def write(event) -> None:  # type: ignore[no-untyped-def]
        message = event.message
        if args.lose_every and int(event.value) % args.lose_every == 0:
            return  # deliberately "lost" (processed and acked, never recorded)
        out.write(f"{message.partition} {message.offset} {event.value.decode()}\n")

    if args.relay:
        out_topic = app.topic(f"{args.topic}-out", value_type=bytes, partitions=8)

        @app.agent(topic)
        async def relay(stream):  # type: ignore[no-untyped-def]
            ready = False
            async for value in stream:
                if not ready:
                    out.write("ready\n")
                    ready = True
                if args.lose_every and int(value) % args.lose_every == 0:
                    continue  # deliberately "lost" (acked, never relayed)
                await out_topic.send(value=value)

    elif args.take:

        @app.agent(topic)
        async def record_batches(stream):  # type: ignore[no-untyped-def]
            async for values in stream.take(args.take, within=0.2):
                await asyncio.sleep(work_seconds * len(values))
                out.write("".join(f"- - {value.decode()}\n" for value in values))

    else:

        @app.agent(topic)
        async def record(stream):  # type: ignore[no-untyped-def]
            async for event in stream.events():
                await asyncio.sleep(work_seconds)
                write(event)

    return app


def log_offset_bookkeeping() -> None:
    """Print commits, revocations, assignments, seeks, skipped-event acks and inferred gaps."""
    import functools
    import time

    from faust.transport.drivers.aiokafka import Consumer

    def show(what: str, detail: object) -> None:
        print(f"{time.time():.3f} {what} {detail}", file=sys.stderr, flush=True)

    def by_partition(tps) -> list[str]:  # type: ignore[no-untyped-def]
        return sorted(f"{tp.topic[-3:]}/{tp.partition}" for tp in tps)

    original_commit = Consumer._commit
    original_revoked = Consumer.on_partitions_revoked
    original_assigned = Consumer.on_partitions_assigned
    original_seek = Consumer.perform_seek

    @functools.wraps(original_commit)
    async def _commit(self, offsets):  # type: ignore[no-untyped-def]
        shown = {tp.partition: offset for tp, offset in offsets.items()}
        ok = await original_commit(self, offsets)
        show("COMMIT", f"{dict(sorted(shown.items()))} ok={ok}")
        return ok

    @functools.wraps(original_revoked)
    async def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
        show("REVOKED", by_partition(revoked))
        await original_revoked(self, revoked)

    @functools.wraps(original_assigned)
    async def on_partitions_assigned(self, assigned, generation_id=0):  # type: ignore[no-untyped-def]
        show("ASSIGNED", f"{by_partition(assigned)} generation={generation_id}")
        await original_assigned(self, assigned, generation_id)

    @functools.wraps(original_seek)
    async def perform_seek(self):  # type: ignore[no-untyped-def]
        await original_seek(self)
        committed = {tp.partition: off for tp, off in self._committed_offset.items()}
        show("SEEK", dict(sorted(committed.items())))

    original_ack = Consumer.ack
    original_add_gap = Consumer._add_gap

    @functools.wraps(original_ack)
    def ack(self, message):  # type: ignore[no-untyped-def]
        current = self.app.consumer_generation_id
        if message.generation_id != current or not self.app.flow_control.is_active():
            # cause 1: an ack of an event the agent skipped (never processed)
            show(
                "SKIPPED-ACK",
                f"{message.tp.partition}@{message.offset} gen={message.generation_id}/{current} "
                f"flow={self.app.flow_control.is_active()} "
                f"committed={self._committed_offset.get(message.tp)}",
            )
        return original_ack(self, message)

    @functools.wraps(original_add_gap)
    async def _add_gap(self, tp, offset_from, offset_to):  # type: ignore[no-untyped-def]
        # cause 3: offsets inferred as a gap (treated as acked) from _read_offset
        show("GAP", f"{tp.partition} {offset_from}..{offset_to}")
        await original_add_gap(self, tp, offset_from, offset_to)

    Consumer.ack = ack
    Consumer._add_gap = _add_gap
    Consumer._commit = _commit
    Consumer.on_partitions_revoked = on_partitions_revoked
    Consumer.on_partitions_assigned = on_partitions_assigned
    Consumer.perform_seek = perform_seek


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.no_fix:
        from streams import faust_fixes

        faust_fixes.apply()
    if args.log_commits:  # after apply(): these wrappers call whatever is installed then
        log_offset_bookkeeping()
    app = build_app(args)
    from faust.worker import Worker

    Worker(app, loglevel=args.loglevel, quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
