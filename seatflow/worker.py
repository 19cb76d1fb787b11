"""`seatflow worker`: create topics, then run one Faust worker until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc

from config.settings import Settings

# The cyclic garbage collector, tuned for a long-running worker (bench/README "Garbage
# collection"). With the defaults (700, 10, 10) it took 12-15 % of the worker's CPU in the
# throughput runs and paused it at each full pass (15 per 20,000 changes, ~55 ms on average,
# up to 105), while finding almost nothing: ~3,000 objects in cycles per run. A young pass
# every 10,000 net allocations (under 1 ms on average) and full passes far apart keep cycles
# collected, and freezing what start-up built (modules, Faust, schemas) keeps it out of
# every pass.
GC_THRESHOLDS = (10_000, 20, 100)


def tune_garbage_collector() -> None:
    """Call once start-up has built the app, before the worker runs."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_worker(settings: Settings, *, verbose: bool = False) -> None:
    """`verbose`: every logger at INFO (Faust's start-up included); else seatflow's own
    events and everyone's warnings (seatflow/logs.py), as SEATFLOW_LOG_FORMAT says."""
    import faust

    from seatflow.bootstrap import bootstrap
    from seatflow.database import database_url
    from seatflow.logs import configure
    from streams.admin import ensure_topics

    # Before anything starts: never serve guests' data to the network unasked.
    settings.check_web_access()
    configure(settings.log_format, verbose=verbose)
    (settings.home / "faust").mkdir(parents=True, exist_ok=True)
    # The worker decides the database before Faust starts (embedded: started or attached).
    database = database_url(settings)
    asyncio.run(ensure_topics(settings))
    if settings.event_loop == "uvloop":
        import uvloop

        # A policy, not one loop: Faust's consumer thread makes its own loop from it too.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # Faust's worker owns the event loop from here (signals, graceful shutdown).
    asyncio.set_event_loop(asyncio.new_event_loop())
    app, _ = bootstrap(settings, database=database)
    tune_garbage_collector()
    # quiet: no "starting➢" spinner on the terminal unless everything is asked for.
    worker = faust.Worker(app, loglevel="INFO", override_logging=False, quiet=not verbose)
    if not verbose:
        worker.spinner = None  # it would still write terminal control codes
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
