"""Deliver rendered emails over ONE reused SMTP connection (aiosmtplib).

The connection is opened on the first send, kept open between sends, checked with NOOP
when it has been idle for a while, and dropped after any failure that may have left it in
an unknown state; the next send reconnects. Failures are classified for the caller:

- TransientEmailError: worth retrying later (connection refused/reset/timeout, 4xx replies,
  problems while connecting, logging in or negotiating TLS).
- PermanentEmailError: retrying this message will not help (5xx replies to MAIL/RCPT/DATA,
  a synthetic `@system.local` recipient, a message without sender or recipients).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from types import TracebackType
from typing import Literal, Self

import aiosmtplib

from config.settings import Settings
from mail.render import is_synthetic_address


@dataclass(frozen=True)
class SmtpRelay:
    """Where mail is handed over: all the sender needs of the settings."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: Literal["none", "starttls", "tls"] = "none"

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpRelay:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_username or None,
                   password or None, settings.smtp_tls)

    def __repr__(self) -> str:  # never the password
        return f"SmtpRelay({self.host}:{self.port}, tls={self.tls}, user={self.username!r})"

log = logging.getLogger(__name__)


class EmailSendError(Exception):
    """A send that did not deliver. `code` is the SMTP reply code when there was one."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientEmailError(EmailSendError):
    """Try again later: the server or the connection, not the message, was the problem."""


class PermanentEmailError(EmailSendError):
    """Do not retry: the server refused this message for good, or it must never be sent."""


class SmtpSender:
    """Async context manager around one lazily opened, reused SMTP connection.

    Sends are serialised (one SMTP transaction at a time on the one connection).
    """

    def __init__(
        self,
        relay: SmtpRelay,
        *,
        timeout_s: float = 15.0,
        idle_check_after_s: float = 30.0,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """`tls_context` overrides the default (system CAs, verified) for smtp_tls tls or
        starttls, e.g. to trust a private CA."""
        self._relay = relay
        self._timeout_s = timeout_s
        self._idle_check_after_s = idle_check_after_s
        # socket.getfqdn() (aiosmtplib's default) can stall on reverse DNS: avoid it.
        self._local_hostname = local_hostname or socket.gethostname() or "localhost"
        self._tls_context = tls_context
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0
        self._lock = asyncio.Lock()
        self.connections_opened = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def send(self, msg: EmailMessage) -> None:
        """Deliver `msg` to its To/Cc/Bcc recipients, or raise an EmailSendError subclass."""
        sender, recipients = _envelope(msg)
        async with self._lock:
            client = await self._connection()
            try:
                refused, _ = await client.send_message(msg, sender=sender, recipients=recipients)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                raise _classify_refusals(exc.recipients) from exc
            except aiosmtplib.SMTPResponseException as exc:
                error = _classify_reply(exc.code, exc.message, what="message refused")
                if isinstance(error, TransientEmailError):
                    self._drop()
                raise error from exc
            except ValueError as exc:
                # aiosmtplib could not parse an address: nothing was sent.
                raise PermanentEmailError(f"malformed message: {exc}") from exc
            except aiosmtplib.SMTPNotSupported as exc:
                # e.g. a non-ASCII address and no SMTPUTF8 on the server.
                raise PermanentEmailError(f"not supported by the server: {exc}") from exc
            except (OSError, TimeoutError, aiosmtplib.SMTPException) as exc:
                self._drop()
                raise TransientEmailError(f"SMTP connection failed: {_describe(exc)}") from exc
            except BaseException:
                # Cancelled mid-transaction: the connection's state is unknown.
                self._drop()
                raise
            self._last_used = time.monotonic()
            if refused:
                # Only possible with several recipients; the others have the message now, so
                # a retry would duplicate it. Report, do not raise.
                # Reply codes only: the addresses are guests' personal data.
                log.warning("some recipients refused %s: codes %s", msg["Message-ID"],
                            sorted({code for code, _ in refused.values()}))

    async def close(self) -> None:
        """QUIT politely if connected; safe to call more than once."""
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit(timeout=min(self._timeout_s, 5.0))
        except (OSError, TimeoutError, aiosmtplib.SMTPException):
            client.close()

    # --- connection management --------------------------------------------------------------

    async def _connection(self) -> aiosmtplib.SMTP:
        client = self._client
        if client is not None and client.is_connected:
            if time.monotonic() - self._last_used < self._idle_check_after_s:
                return client
            try:
                await client.noop()
                self._last_used = time.monotonic()
                return client
            except (OSError, TimeoutError, aiosmtplib.SMTPException) as exc:
                log.info("idle SMTP connection is gone (%s); reconnecting", _describe(exc))
        self._drop()
        return await self._connect()

    async def _connect(self) -> aiosmtplib.SMTP:
        relay = self._relay
        client = aiosmtplib.SMTP(
            hostname=relay.host,
            port=relay.port,
            username=relay.username,
            password=relay.password,
            local_hostname=self._local_hostname,
            timeout=self._timeout_s,
            use_tls=relay.tls == "tls",
            start_tls=relay.tls == "starttls",
            tls_context=self._tls_context if relay.tls != "none" else None,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPResponseException as exc:
            # Greeting, EHLO, STARTTLS or AUTH refused: a server or configuration problem,
            # not this message's, so it is retried rather than failing the email for good.
            raise TransientEmailError(
                f"SMTP server {relay.host}:{relay.port} refused the session: "
                f"{exc.code} {exc.message}",
                code=exc.code,
            ) from exc
        except (OSError, TimeoutError, aiosmtplib.SMTPException) as exc:
            raise TransientEmailError(
                f"cannot connect to SMTP server {relay.host}:{relay.port}: "
                f"{_describe(exc)}"
            ) from exc
        self._client = client
        self._last_used = time.monotonic()
        self.connections_opened += 1
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


# --- pure helpers ---------------------------------------------------------------------------


def _envelope(msg: EmailMessage) -> tuple[str, list[str]]:
    """Envelope sender and recipients; refuses synthetic addresses (last line of defence)."""
    senders = [addr for _, addr in getaddresses([str(v) for v in msg.get_all("From", [])])]
    recipients = [
        addr
        for _, addr in getaddresses(
            [str(v) for field in ("To", "Cc", "Bcc") for v in msg.get_all(field, [])]
        )
        if addr
    ]
    if not senders or not senders[0]:
        raise PermanentEmailError("message has no From address")
    if not recipients:
        raise PermanentEmailError("message has no recipient")
    synthetic = [addr for addr in recipients if is_synthetic_address(addr)]
    if synthetic:
        raise PermanentEmailError(f"refusing to mail synthetic address(es) {synthetic}")
    return senders[0], recipients


def _classify_reply(code: int, message: str, *, what: str) -> EmailSendError:
    text = f"{what}: {code} {message}"
    if 500 <= code < 600:
        return PermanentEmailError(text, code=code)
    return TransientEmailError(text, code=code)


def _classify_refusals(refusals: list[aiosmtplib.SMTPRecipientRefused]) -> EmailSendError:
    """Every recipient refused: permanent if any refusal is 5xx, else transient."""
    worst = max(refusals, key=lambda r: r.code)
    # Not the address: the error is stored, published and logged (guests' personal data).
    detail = "; ".join(f"{r.code} {r.message}" for r in refusals)
    return _classify_reply(worst.code, detail, what="recipient refused")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
