"""The embedded SMTP sink: a real SMTP server that keeps every message as a readable .eml file.

It stands in for a mail relay in `seatflow dev` and in tests. Test controls: stop and start
it again on the same port (an outage), make it refuse some recipients (a permanent or
temporary failure), make it answer slowly (`set_delay`), and read back what arrived, in
arrival order.
"""

from __future__ import annotations

import asyncio
import email.policy
import itertools
import random
import re
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from devstack.ports import EmbeddedStartError, port_in_use

_MAIL_SUFFIX = ".eml"


@dataclass(frozen=True)
class _Rejection:
    pattern: re.Pattern[str]
    code: int

    def reply(self) -> str:
        if 400 <= self.code < 500:
            return f"{self.code} 4.2.0 Mailbox temporarily unavailable (seatflow sink)"
        return f"{self.code} 5.1.1 Mailbox unavailable (seatflow sink)"


class _StoreHandler:
    """aiosmtpd handler: RCPT may be refused by a test rule; DATA is written to a file."""

    def __init__(self, sink: MailSink) -> None:
        self._sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        rejection = self._sink._rejection_for(address)
        if rejection is not None:
            return rejection.reply()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        delay = self._sink._delay_s()
        if delay > 0:
            # Async: other connections keep being served meanwhile. A stop() during the
            # sleep drops the message unstored (the client sees no 250), like a real outage.
            await asyncio.sleep(delay)
        self._sink._store(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        return "250 Message accepted for delivery"


class MailSink:
    """SMTP server on host:port storing messages in mail_dir as `<ns-time>-<seq>.eml`."""

    def __init__(self, host: str, port: int, mail_dir: Path) -> None:
        self.host = host
        self.port = port
        self.mail_dir = Path(mail_dir)
        self._lock = threading.Lock()
        self._rejections: list[_Rejection] = []
        self._delay: tuple[float, float] | None = None
        self._seq = itertools.count()
        self._controller: Controller | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        if port_in_use(self.host, self.port):
            raise EmbeddedStartError(
                f"mail sink: port {self.port} is in use — stop the other process or set "
                "SEATFLOW_SMTP_PORT to a free port (or SEATFLOW_SMTP_HOST to a real relay)"
            )
        controller = Controller(
            _StoreHandler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="seatflow-sink.local",
            enable_SMTPUTF8=True,
        )
        try:
            controller.start()
        except Exception as exc:
            raise EmbeddedStartError(
                f"mail sink: could not listen on {self.host}:{self.port} ({exc}) — "
                "set SEATFLOW_SMTP_PORT to a free port"
            ) from exc
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    # --- test controls ---------------------------------------------------------------------

    def reject_recipients(self, pattern: str, code: int = 550) -> None:
        """Refuse RCPT for addresses matching the regex `pattern` (re.search, case-insensitive).

        5xx is a permanent failure, 4xx a temporary one. Rules add up; `accept_all` clears them.
        """
        if not 400 <= code < 600:
            raise ValueError(f"code must be a 4xx or 5xx SMTP reply, got {code}")
        with self._lock:
            self._rejections.append(_Rejection(re.compile(pattern, re.IGNORECASE), code))

    def accept_all(self) -> None:
        with self._lock:
            self._rejections.clear()

    def set_delay(self, low_s: float, high_s: float | None = None) -> None:
        """Answer each message's DATA only after `random.uniform(low_s, high_s)` seconds
        (`high_s` defaults to `low_s`): a slow mail server. `set_delay(0)` clears it.

        The delay is per message and asynchronous: concurrent connections wait side by side.
        It survives stop()/start().
        """
        high = low_s if high_s is None else high_s
        if low_s < 0 or high < low_s:
            raise ValueError(f"want 0 <= low_s <= high_s, got {low_s}, {high_s}")
        with self._lock:
            self._delay = None if high == 0 else (low_s, high)

    @property
    def delay(self) -> tuple[float, float] | None:
        """The current (low_s, high_s) of `set_delay`, or None."""
        with self._lock:
            return self._delay

    def messages(self) -> list[EmailMessage]:
        """Every stored message, parsed, in arrival order."""
        parser = BytesParser(policy=email.policy.default)
        result: list[EmailMessage] = []
        for path in self.message_files():
            with path.open("rb") as fh:
                message = parser.parse(fh)
            assert isinstance(message, EmailMessage)
            result.append(message)
        return result

    def message_files(self) -> list[Path]:
        if not self.mail_dir.exists():
            return []
        return sorted(p for p in self.mail_dir.iterdir() if p.suffix == _MAIL_SUFFIX)

    def clear(self) -> None:
        """Delete every stored message (tests sharing one sink may prefer filtering instead)."""
        for path in self.message_files():
            path.unlink(missing_ok=True)

    # --- internals -------------------------------------------------------------------------

    def _delay_s(self) -> float:
        with self._lock:
            delay = self._delay
        return random.uniform(*delay) if delay is not None else 0.0

    def _rejection_for(self, address: str) -> _Rejection | None:
        with self._lock:
            for rule in self._rejections:
                if rule.pattern.search(address):
                    return rule
        return None

    def _store(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> Path:
        # Envelope lines a person (or a test) can read; like the Delivered-To of a real MTA.
        envelope = (
            f"Return-Path: <{mail_from}>\r\nX-Envelope-To: {', '.join(rcpt_tos)}\r\n"
        ).encode()
        name = f"{time.time_ns():020d}-{next(self._seq):06d}{_MAIL_SUFFIX}"
        final = self.mail_dir / name
        partial = self.mail_dir / f".{name}.part"
        # Write then rename so a reader never sees half a message.
        with partial.open("wb") as fh:
            fh.write(envelope + content)
        partial.replace(final)
        return final


def start_mail_sink(host: str, port: int, mail_dir: Path) -> MailSink:
    """A real SMTP server (aiosmtpd, in a thread) that stores each message as an .eml file."""
    sink = MailSink(host, port, Path(mail_dir))
    sink.start()
    return sink
