"""How a worker logs (docs/deployment.md "Logs"): concise for a person, JSON for a pipeline.

- Concise (default): seatflow's own loggers at INFO; everything else (Faust, mode,
  aiokafka, aiohttp's access log, …) at WARNING, except the one line that says a worker
  has its partitions and consumes ("Worker ready"). `--verbose`: every logger at INFO.
- `SEATFLOW_LOG_FORMAT=json`: one JSON object per line — `time` (UTC, ISO 8601), `level`,
  `logger`, `message`, and `booking_id` / `restaurant_id` when the log call names them
  (`extra={"booking_id": …}`), `exception` with the traceback when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]

# Top-level packages of the service: their loggers are the service's own.
OWN_LOGGERS = ("agents", "config", "devstack", "domain", "mail", "models", "producers",
               "seatflow", "services", "storage", "streams")
# Third-party loggers whose names fall under one of ours (aiosmtpd, the embedded mail sink,
# logs every SMTP command to "mail.log"): kept at WARNING like any third party.
FOREIGN = ("mail.log",)
# Third-party INFO lines worth a person's attention: (logger, text in the message).
MILESTONES = (("faust.tables.recovery", "Worker ready"),)
# Attributes a log call may attach with `extra=`, carried as JSON fields.
ID_FIELDS = ("booking_id", "restaurant_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_HANDLER_NAME = "seatflow"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        obj: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ID_FIELDS:
            value = getattr(record, name, None)
            if value:
                obj[name] = value
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exception"] = record.exc_text
        return json.dumps(obj, ensure_ascii=False, default=str)


class _Milestones(logging.Filter):
    """On a third-party logger kept at INFO: only its milestone lines and warnings pass."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        return any(text in message for text in self.texts)


def configure(fmt: LogFormat = "text", *, verbose: bool = False,
              stream: TextIO | None = None) -> logging.Handler:
    """Install seatflow's handler on the root logger (replacing one installed before) and
    set the levels; returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    for name in FOREIGN:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    milestones: dict[str, list[str]] = {}
    for name, text in MILESTONES:
        milestones.setdefault(name, []).append(text)
    for name, texts in milestones.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _Milestones)]:
            logger.removeFilter(old)
        logger.setLevel(logging.INFO)
        if not verbose:
            logger.addFilter(_Milestones(texts))
    return handler


def quiet_clients() -> None:
    """For a command that says in one line what went wrong with the broker: aiokafka's own
    connection errors would repeat it, with a traceback-like tail."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
