"""What a worker writes to its log (docs/deployment.md "Logs"): concise text by default, one
JSON object per line with SEATFLOW_LOG_FORMAT=json, ids where the event concerns one."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from producers.publisher import Publisher
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.integration


def test_the_default_log_is_concise(worker: WorkerProcess) -> None:
    text = worker.log_path.read_text(errors="replace")
    assert "Worker ready" in text  # the one line of Faust's start-up that is kept
    for chatter in ("[^--Consumer]: Starting", "[^--Producer]: Starting", "GET /health"):
        assert chatter not in text, chatter


async def test_json_lines_name_the_booking_a_dead_letter_came_from(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = await asyncio.to_thread(start_worker, log_format="json")
    key = f"b-garbage-{worker.settings.topic_prefix.rstrip('.')}"
    async with Publisher(worker.settings) as publisher:
        await publisher.publish_raw(worker.topics.booking_changes, key.encode(), b"{not json")

    deadline = time.monotonic() + 30
    while True:
        lines = [line for line in worker.log_path.read_text(errors="replace").splitlines()
                 if line.strip()]
        objects = [json.loads(line) for line in lines]  # every line is one JSON object
        mine = [o for o in objects if o.get("booking_id") == key]
        if mine:
            break
        assert time.monotonic() < deadline, f"no log line names {key}:\n" + "\n".join(lines)
        await asyncio.sleep(0.2)
    [line] = mine
    assert line["level"] == "WARNING" and "dead-lettering" in line["message"]
    assert {"time", "logger", "message"} <= set(line)
    assert any("Worker ready" in o["message"] for o in objects)
