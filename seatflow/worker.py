"""`seatflow worker`: create topics, then run one Faust worker until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from seatflow.settings import Settings


def run_worker(settings: Settings) -> None:
    import faust

    from streams.admin import ensure_topics
    from streams.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    (settings.home / "faust").mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(settings))
    # Faust's worker owns the event loop from here (signals, graceful shutdown).
    asyncio.set_event_loop(asyncio.new_event_loop())
    app, _ = create_app(settings)
    worker = faust.Worker(app, loglevel="INFO", override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
