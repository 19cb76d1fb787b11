"""Kafka over TLS on this machine: Tansu 0.6.0 cannot serve TLS itself (docs/infrastructure.md),
so a small TLS-terminating proxy sits in front of a plaintext Tansu that advertises the
proxy's port; every client connection, bootstrap and after, goes through TLS.

`issue_ca` / `issue_cert` make throwaway certificates with `cryptography`;
`TlsProxy` runs in a thread of its own (the tests' blocking waits must not stall it);
`tls_broker(root)` puts the three together.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack import LOOPBACK, EmbeddedBroker, free_port, start_broker

HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _write(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, folder: Path,
           name: str) -> Issued:
    folder.mkdir(parents=True, exist_ok=True)
    issued = Issued(folder / f"{name}.pem", folder / f"{name}-key.pem")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return issued


def _builder(subject: str, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer).public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)))


def issue_ca(folder: Path, name: str = "ca") -> Issued:
    """A self-signed CA certificate and its key, as PEM files `name.pem`, `name-key.pem`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"seatflow test {name}")])
    cert = (_builder(f"seatflow test {name}", subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _write(cert, key, folder, name)


def issue_cert(ca: Issued, folder: Path, name: str = "broker", *, client: bool = False) -> Issued:
    """A server certificate for 127.0.0.1 and localhost (`client`: a client certificate),
    signed by `ca`."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
    cert = (_builder(name, ca_cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                  else x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return _write(cert, key, folder, name)


class TlsProxy:
    """Accepts TLS on 127.0.0.1:`port` (with `client_ca`: mutual TLS), forwards the
    plaintext to `upstream_port`.

    `handshakes` counts completed TLS handshakes, `refused` lists the reasons of failed ones
    (a plaintext client's bytes are not a TLS ClientHello)."""

    def __init__(self, upstream_port: int, server: Issued, port: int | None = None, *,
                 client_ca: Issued | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self.handshakes = 0
        self.refused: list[str] = []
        self._refusal = threading.Condition()
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(server.cert, server.key)
        if client_ca is not None:  # mutual TLS: only clients with a certificate of client_ca
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(client_ca.cert)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-proxy",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def wait_refused(self, more_than: int, timeout: float = 10.0) -> int:
        """How many handshakes were refused, once more than `more_than` (or at `timeout`):
        the client may see the connection close before the proxy has counted it."""
        with self._refusal:
            self._refusal.wait_for(lambda: len(self.refused) > more_than, timeout)
            return len(self.refused)

    def start(self) -> TlsProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, LOOPBACK, self.port), self._loop
        ).result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._open):
                writer.transport.abort()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The handshake is ours (not start_server's ssl=) so a refused one can be counted.
        try:
            await writer.start_tls(self._context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            writer.transport.abort()
            with self._refusal:
                self.refused.append(f"{type(exc).__name__}: {exc}")
                self._refusal.notify_all()
            return
        self.handshakes += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._open.difference_update((writer, up_writer))


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        sink.close()


@dataclass
class TlsBroker:
    """A plaintext Tansu behind a TLS proxy; clients use `bootstrap` with `ca.cert`."""

    ca: Issued
    proxy: TlsProxy
    broker: EmbeddedBroker

    @property
    def bootstrap(self) -> str:
        return self.proxy.bootstrap


@contextlib.contextmanager
def tls_broker(root: Path, *, mutual: bool = False) -> Iterator[TlsBroker]:
    """With `mutual`, clients need a certificate issued by `ca` (`issue_cert(client=True)`)."""
    ca = issue_ca(root / "pki")
    proxy = TlsProxy(free_port(), issue_cert(ca, root / "pki"),
                     client_ca=ca if mutual else None).start()
    try:
        broker = start_broker(proxy.upstream_port, log_path=root / "tls-broker.log",
                              advertised_port=proxy.port)
        try:
            yield TlsBroker(ca, proxy, broker)
        finally:
            broker.stop()
    finally:
        proxy.stop()
