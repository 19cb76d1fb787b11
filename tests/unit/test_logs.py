"""Worker logging (seatflow/logs.py): concise by default, everything with --verbose, JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from seatflow import logs

TOUCHED = ["", *logs.OWN_LOGGERS, *logs.FOREIGN, *(name for name, _ in logs.MILESTONES)]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers),
                    list(logging.getLogger(name).filters)) for name in TOUCHED}
    yield
    for name, (level, handlers, filters) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.filters[:] = filters


def emit_a_start_up() -> None:
    logging.getLogger("mode.services").info("[^--Consumer]: Starting...")
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group")
    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /health HTTP/1.1" 200')
    logging.getLogger("mail.log").info("('127.0.0.1', 35282) >> b'DATA'")  # aiosmtpd
    logging.getLogger("faust.tables.recovery").info("[^---Recovery]: Resuming flow...")
    logging.getLogger("faust.tables.recovery").info("[^---Recovery]: Worker ready")
    logging.getLogger("streams.admin").info("created topic seatflow.booking-status")
    logging.getLogger("aiokafka.conn").warning("Unable to connect to 127.0.0.1:19092")
    logging.getLogger("agents.emails").debug("claimed 3 rows")


def test_concise_keeps_seatflow_and_warnings_and_the_ready_line() -> None:
    out = io.StringIO()
    logs.configure("text", stream=out)

    emit_a_start_up()

    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert "streams.admin: created topic seatflow.booking-status" in lines[1]
    assert lines[0].endswith("faust.tables.recovery: [^---Recovery]: Worker ready")
    assert " WARNING aiokafka.conn: Unable to connect" in lines[2]


def test_verbose_shows_every_logger_at_info() -> None:
    out = io.StringIO()
    logs.configure("text", verbose=True, stream=out)

    emit_a_start_up()

    text = out.getvalue()
    assert len(text.splitlines()) == 8
    for expected in ("[^--Consumer]: Starting...", "Joined group", "GET /health", "b'DATA'",
                     "Resuming flow...", "Worker ready"):
        assert expected in text
    assert "claimed 3 rows" not in text  # DEBUG stays out


def test_json_lines_carry_the_ids_and_the_traceback() -> None:
    out = io.StringIO()
    logs.configure("json", stream=out)
    log = logging.getLogger("agents.emails")

    log.warning("email %s for %s: refused", "confirmed", "b-1",
                extra={"booking_id": "b-1", "restaurant_id": "r-ember"})
    log.info("outbox relay published %d leftover records", 3)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("email claim failed", extra={"restaurant_id": "r-ember"})
    logging.getLogger("mode.services").info("[^--Producer]: Starting...")

    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(objects) == 3
    first, second, third = objects
    assert first["level"] == "WARNING" and first["logger"] == "agents.emails"
    assert first["message"] == "email confirmed for b-1: refused"
    assert (first["booking_id"], first["restaurant_id"]) == ("b-1", "r-ember")
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert "booking_id" not in second and "restaurant_id" not in second
    assert third["restaurant_id"] == "r-ember" and "booking_id" not in third
    assert "RuntimeError: boom" in third["exception"]


def test_configuring_again_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure("text", stream=first)
    logs.configure("json", stream=second)

    logging.getLogger("seatflow.worker").info("hello")

    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "hello"
