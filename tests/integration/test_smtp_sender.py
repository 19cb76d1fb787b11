"""SmtpSender against a real aiosmtpd server on a loopback port (no mocks).

The server runs in the test process (aiosmtpd's threaded Controller). "Server down" means
the controller is stopped and the port closed; "back up" is a new controller on the same
port with the same handler, so what it recorded survives the restart.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from mail.render import EmailBooking, EmailRestaurant, render_email
from mail.smtp import PermanentEmailError, SmtpRelay, SmtpSender, TransientEmailError

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
SENDER = "seatflow <no-reply@seatflow.test>"


@dataclass
class Delivered:
    peer: tuple[str, int]
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    encrypted: bool

    def parsed(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=default_policy)  # type: ignore[return-value]


class RecordingHandler:
    """Stores delivered envelopes; refuses recipients starting with `reject` (550) or
    `defer` (451)."""

    def __init__(self) -> None:
        self.delivered: list[Delivered] = []
        self.ehlo_count = 0
        self.noop_count = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.ehlo_count += 1
        return responses

    async def handle_NOOP(self, server, session, envelope, arg):
        self.noop_count += 1
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: mailbox unavailable"
        if local.startswith("defer"):
            return "451 4.3.0 Temporary lookup failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.delivered.append(
            Delivered(
                peer=session.peer,
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(envelope.original_content or envelope.content),
                encrypted=server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class SmtpServer:
    """A restartable aiosmtpd server on one fixed loopback port."""

    def __init__(self, handler: RecordingHandler, **controller_options: Any) -> None:
        self.handler = handler
        self.port = _free_port()
        self._controller_options = controller_options
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            self.handler, hostname=HOST, port=self.port, **self._controller_options
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(RecordingHandler())
    server.start()
    yield server
    server.stop()


def _settings(server: SmtpServer, tls: str = "none") -> SmtpRelay:
    return SmtpRelay(HOST, server.port, tls=tls)  # type: ignore[arg-type]


def _email(to: str, booking_id: str = "b-1001", kind: str = "confirmed") -> EmailMessage:
    booking = EmailBooking(
        booking_id=booking_id,
        restaurant_id="r-ember",
        pending_ref="ref-1",
        booking_date=date(2026, 12, 1),
        start_time=time(19, 0),
        end_time=time(20, 15),
        party_size=4,
        customer_name="Ada Lovelace",
        customer_email=to,
        table_ids=["t4", "t5"],
        notes=None,
    )
    restaurant = EmailRestaurant(
        name="Ember & Oak",
        timezone="Europe/London",
        contact_email="hello@ember.example",
        contact_phone=None,
    )
    return render_email(kind, booking, restaurant, to=to, sender=SENDER)


async def test_delivered_message_arrives_with_headers_intact(smtp_server: SmtpServer) -> None:
    msg = _email("ada@example.com")

    async with SmtpSender(_settings(smtp_server)) as sender:
        await sender.send(msg)

    [delivered] = smtp_server.handler.delivered
    assert delivered.mail_from == "no-reply@seatflow.test"
    assert delivered.rcpt_tos == ["ada@example.com"]
    received = delivered.parsed()
    for header in ("Message-ID", "X-Seatflow-Kind", "X-Seatflow-Booking", "Subject", "To"):
        assert received[header] == msg[header], header
    assert received["X-Seatflow-Kind"] == "confirmed"
    assert received["X-Seatflow-Booking"] == "b-1001"
    calendar_parts = [p for p in received.walk() if p.get_content_type() == "text/calendar"]
    assert len(calendar_parts) == 1


async def test_two_sends_reuse_one_connection(smtp_server: SmtpServer) -> None:
    async with SmtpSender(_settings(smtp_server)) as sender:
        await sender.send(_email("ada@example.com", booking_id="b-1"))
        await sender.send(_email("bob@example.com", booking_id="b-2"))
        assert sender.connections_opened == 1

    first, second = smtp_server.handler.delivered
    assert first.peer == second.peer  # same client socket
    assert smtp_server.handler.ehlo_count == 1
    assert [d.parsed()["X-Seatflow-Booking"] for d in (first, second)] == ["b-1", "b-2"]


async def test_server_down_is_transient_and_same_sender_recovers(
    smtp_server: SmtpServer,
) -> None:
    async with SmtpSender(_settings(smtp_server), timeout_s=2.0) as sender:
        await sender.send(_email("ada@example.com", booking_id="b-before"))

        smtp_server.stop()
        with pytest.raises(TransientEmailError):
            await sender.send(_email("ada@example.com", booking_id="b-during"))
        # Still down: still transient, not a crash from a half-closed client.
        with pytest.raises(TransientEmailError):
            await sender.send(_email("ada@example.com", booking_id="b-during"))

        smtp_server.start()
        await sender.send(_email("ada@example.com", booking_id="b-after"))

    booking_ids = [d.parsed()["X-Seatflow-Booking"] for d in smtp_server.handler.delivered]
    assert booking_ids == ["b-before", "b-after"]


async def test_connection_closed_by_server_is_replaced_without_an_error(
    smtp_server: SmtpServer,
) -> None:
    async with SmtpSender(_settings(smtp_server)) as sender:
        await sender.send(_email("ada@example.com", booking_id="b-1"))
        smtp_server.stop()  # closes the server side of our connection
        smtp_server.start()
        await asyncio.sleep(0.05)  # let our loop see the close, as it would between sends
        await sender.send(_email("ada@example.com", booking_id="b-2"))
        assert sender.connections_opened == 2

    assert [d.parsed()["X-Seatflow-Booking"] for d in smtp_server.handler.delivered] == [
        "b-1",
        "b-2",
    ]


async def test_never_started_server_is_transient() -> None:
    closed = SmtpServer(RecordingHandler())  # port picked, nothing listening
    async with SmtpSender(_settings(closed), timeout_s=2.0) as sender:
        with pytest.raises(TransientEmailError, match="cannot connect"):
            await sender.send(_email("ada@example.com"))
        assert not sender.is_connected


async def test_idle_connection_is_checked_with_noop_and_replaced_after_restart(
    smtp_server: SmtpServer,
) -> None:
    # idle_check_after_s=0: every send on a reused connection NOOP-checks it first.
    async with SmtpSender(_settings(smtp_server), idle_check_after_s=0.0) as sender:
        await sender.send(_email("ada@example.com", booking_id="b-1"))
        await sender.send(_email("ada@example.com", booking_id="b-2"))
        assert smtp_server.handler.noop_count == 1
        assert sender.connections_opened == 1

        smtp_server.stop()
        smtp_server.start()
        await sender.send(_email("ada@example.com", booking_id="b-3"))
        assert sender.connections_opened == 2

    assert [d.parsed()["X-Seatflow-Booking"] for d in smtp_server.handler.delivered] == [
        "b-1",
        "b-2",
        "b-3",
    ]


async def test_550_recipient_is_permanent_with_code_and_connection_survives(
    smtp_server: SmtpServer,
) -> None:
    async with SmtpSender(_settings(smtp_server)) as sender:
        with pytest.raises(PermanentEmailError, match="mailbox unavailable") as caught:
            await sender.send(_email("reject-me@example.com"))
        assert caught.value.code == 550

        await sender.send(_email("ada@example.com"))
        assert sender.connections_opened == 1

    assert [d.rcpt_tos for d in smtp_server.handler.delivered] == [["ada@example.com"]]


async def test_4xx_recipient_is_transient(smtp_server: SmtpServer) -> None:
    async with SmtpSender(_settings(smtp_server)) as sender:
        with pytest.raises(TransientEmailError) as caught:
            await sender.send(_email("defer-me@example.com"))
    assert caught.value.code == 451
    assert smtp_server.handler.delivered == []


@pytest.mark.parametrize(
    "address", ["walkin+req7f3a@system.local", "Walkin+X@SYSTEM.LOCAL"], ids=["lower", "upper"]
)
async def test_synthetic_address_is_refused_without_touching_the_server(
    smtp_server: SmtpServer, address: str
) -> None:
    async with SmtpSender(_settings(smtp_server)) as sender:
        with pytest.raises(PermanentEmailError, match="synthetic"):
            await sender.send(_email(address))
        assert sender.connections_opened == 0

    assert smtp_server.handler.delivered == []
    assert smtp_server.handler.ehlo_count == 0


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (made with the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={HOST}",
         "-addext", f"subjectAltName=IP:{HOST}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_tls_modes_deliver_encrypted(certificate: tuple[Path, Path], mode: str) -> None:
    server_context = _server_context(certificate)
    options: dict[str, Any] = (
        {"tls_context": server_context, "require_starttls": True}
        if mode == "starttls"
        else {"ssl_context": server_context}
    )
    server = SmtpServer(RecordingHandler(), **options)
    server.start()
    try:
        trust_our_cert = ssl.create_default_context(cafile=str(certificate[0]))
        async with SmtpSender(_settings(server, mode), tls_context=trust_our_cert) as sender:
            await sender.send(_email("ada@example.com"))
    finally:
        server.stop()

    [delivered] = server.handler.delivered
    assert delivered.encrypted
    assert delivered.parsed()["X-Seatflow-Kind"] == "confirmed"


async def test_untrusted_certificate_is_transient(certificate: tuple[Path, Path]) -> None:
    server = SmtpServer(RecordingHandler(), ssl_context=_server_context(certificate))
    server.start()
    try:
        # Default verification against the system CAs: our self-signed cert is refused.
        async with SmtpSender(_settings(server, "tls"), timeout_s=2.0) as sender:
            with pytest.raises(TransientEmailError, match="cannot connect"):
                await sender.send(_email("ada@example.com"))
    finally:
        server.stop()
    assert server.handler.delivered == []
