"""`seatflow worker`: create topics, then run one Faust worker until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from config.settings import Settings


def run_worker(settings: Settings) -> None:
    import faust

    from seatflow.bootstrap import bootstrap
    from seatflow.database import database_url
    from streams.admin import ensure_topics

    # Before anything starts: never serve guests' data to the network unasked.
    settings.check_web_access()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    worker = faust.Worker(app, loglevel="INFO", override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
