"""The trivial Faust relay, as its own process (see baselines.py): a Faust app built like
the worker's, one agent taking records in batches and sending each batch with one wait for
all its deliveries. Configured through the environment (RELAY_SOURCE, RELAY_EXPECTED,
RELAY_OUT and the SEATFLOW_* settings); writes its measurement as JSON to RELAY_OUT.

RELAY_FANOUT=k (the Faust floor of a change, baselines.faust_floor): for every record it
consumes the relay produces k records (a fraction carries over between batches), all of a
batch through the worker's own publishing path (streams.app.producer_send_many), with one
wait: Faust's cost for a change's records with none of seatflow's work."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import resource
import time
from pathlib import Path

from config.settings import Settings
from streams.admin import ensure_topics


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_faust_relay() -> None:
    """The relay process: a Faust app like the worker's, one agent, batched in and out."""
    import faust

    from streams.app import create_faust_app, producer_send_many

    settings = Settings()
    source, expected = os.environ["RELAY_SOURCE"], int(os.environ["RELAY_EXPECTED"])
    target_name = f"{settings.topic_prefix}faust-relay-out"
    asyncio.run(ensure_topics(settings, extra=[target_name]))
    (settings.home / "faust").mkdir(parents=True, exist_ok=True)
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_faust_app(settings)
    topic = app.topic(source, key_type=bytes, value_type=bytes)
    state: dict[str, float] = {"n": 0, "owed": 0.0, "produced": 0}
    fanout = float(os.environ["RELAY_FANOUT"]) if "RELAY_FANOUT" in os.environ else None
    send_many = producer_send_many(app)

    @app.agent(topic)
    async def relay(stream):  # type: ignore[no-untyped-def]
        producer = app.producer
        async for events in stream.take_events(settings.batch_size, settings.batch_within_s):
            if not state["n"]:
                state["t0"], state["cpu0"] = time.perf_counter(), _cpu_s()
            if fanout is not None:
                state["owed"] += fanout * len(events)
                count, state["owed"] = int(state["owed"]), state["owed"] % 1
                futures = await send_many([(target_name, e.key, e.value)
                                           for e in itertools.islice(
                                               itertools.cycle(events), count)])
            else:
                count = len(events)
                futures = [await producer.send(target_name, e.key, e.value, None, None, None)
                           for e in events]
            await asyncio.gather(*futures)
            state["n"] += len(events)
            state["produced"] += count
            if state["n"] >= expected:
                elapsed, cpu = time.perf_counter() - state["t0"], _cpu_s() - state["cpu0"]
                Path(os.environ["RELAY_OUT"]).write_text(json.dumps({  # noqa: ASYNC240 - once, at the end
                    "messages": int(state["n"]), "produced": int(state["produced"]),
                    "seconds": round(elapsed, 3),
                    "per_s": round(state["n"] / elapsed, 1), "cpu_s": round(cpu, 3),
                    "cpu_ms_per_record": round(cpu * 1000 / state["n"], 4),
                }))
                os._exit(0)  # measured; nothing else to do (a graceful stop takes seconds)

    worker = faust.Worker(app, loglevel="WARNING")
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    # Only os._exit after the measurement ends this process well.
    raise SystemExit("the Faust relay stopped before relaying every record")




if __name__ == "__main__":
    _run_faust_relay()
