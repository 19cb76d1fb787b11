"""One Faust worker for the rebalance-loss choreography (run as a subprocess).

Every event the agent finishes is appended as ``partition offset value`` to ``--out``
(flushed per line), so a SIGKILL loses nothing that was recorded. The test compares the
union of all workers' records with what it produced.

    python tests/integration/rebalance_worker.py --broker 127.0.0.1:9092 --topic t \
        --group g --out /tmp/w1.txt [--no-fix]
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
    parser.add_argument("--commit-interval", type=float, default=0.5)
    parser.add_argument("--loglevel", default="WARNING")
    parser.add_argument(
        "--lose-every", type=int, default=0, help="harness self-check: skip every Nth number"
    )
    parser.add_argument("--take", type=int, default=0, help="consume in batches of N (stream.take)")
    return parser.parse_args(argv)


def build_app(args: argparse.Namespace):  # -> faust.App (faust imported lazily, after apply())
    import faust

    app = faust.App(
        args.group,
        broker=f"kafka://{args.broker}",
        value_serializer="raw",
        key_serializer="raw",
        # Fast group membership on Tansu (INFRA.md): ready in ~3.5 s, rebalance ~2 s.
        broker_session_timeout=4,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=4,
        broker_commit_interval=args.commit_interval,
        stream_wait_empty=False,
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

    if args.take:

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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.no_fix:
        from streams import faust_fixes

        faust_fixes.apply()
    app = build_app(args)
    from faust.worker import Worker

    Worker(app, loglevel=args.loglevel, quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
