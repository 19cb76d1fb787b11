"""Why Kafka cannot be reached, said in one line that names the setting to check.

aiokafka reports a failed bootstrap as "Unable to bootstrap from [...]" and leaves the cause
(an untrusted certificate, a plaintext listener, refused credentials) in a log line. Every
seatflow client starts through `start_client`, which turns that into `BrokerUnreachable`
with the cause, found by opening one connection to each bootstrap server the same way.
"""

from __future__ import annotations

import ssl
from typing import Any, Protocol

from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from config.kafka import client_options
from config.settings import Settings

PROBE_TIMEOUT_MS = 10_000
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH / _IP_ADDRESS_MISMATCH
_NAME_MISMATCH = {62, 64}


class BrokerUnreachable(KafkaConnectionError):
    """No bootstrap server could be used; str() says why and which setting to check."""


class _Startable(Protocol):
    async def start(self) -> None: ...


async def start_client(client: _Startable, settings: Settings) -> None:
    """`client.start()`, with a failed bootstrap explained (BrokerUnreachable)."""
    try:
        await client.start()
    except KafkaConnectionError as exc:
        raise BrokerUnreachable(await explain(settings)) from exc


async def explain(settings: Settings) -> str:
    """What goes wrong on a connection to each bootstrap server, as one line."""
    options = {k: v for k, v in client_options(settings).items() if k != "bootstrap_servers"}
    reasons = []
    for server in (s.strip() for s in settings.kafka_bootstrap.split(",")):
        if server:
            reasons.append(f"{server}: {await _probe(server, options, settings)}")
    text = "broker: cannot use SEATFLOW_KAFKA_BOOTSTRAP — " + "; ".join(reasons)
    if settings.kafka_sasl_password is not None:  # never echo a secret, whatever a broker says
        text = text.replace(settings.kafka_sasl_password.get_secret_value(), "**********")
    return text


async def _probe(server: str, options: dict[str, Any], settings: Settings) -> str:
    host, _, port = server.rpartition(":")
    protocol = settings.kafka_security_protocol
    try:
        conn = await create_conn(host.strip("[]"), int(port), request_timeout_ms=PROBE_TIMEOUT_MS,
                                 **options)
    except ssl.SSLError as exc:
        return _tls_failure(exc, host, settings)
    except (SaslAuthenticationFailed, IllegalSaslStateError) as exc:
        return (f"SASL {settings.kafka_sasl_mechanism} authentication failed ({exc}) — check "
                "SEATFLOW_KAFKA_SASL_USERNAME and SEATFLOW_KAFKA_SASL_PASSWORD")
    except UnsupportedSaslMechanismError as exc:
        return f"{exc} — check SEATFLOW_KAFKA_SASL_MECHANISM"
    except TimeoutError:
        why = " (a plaintext listener never answers a TLS client)" if protocol.endswith("SSL") else ""
        return (f"no answer in {PROBE_TIMEOUT_MS // 1000} s{why} — check the address and "
                f"SEATFLOW_KAFKA_SECURITY_PROTOCOL ({protocol})")
    except KafkaConnectionError as exc:
        # A TLS alert after the handshake (TLS 1.3 checks the client certificate then)
        # arrives as the cause of a closed connection.
        if isinstance(exc.__cause__, ssl.SSLError):
            return _tls_failure(exc.__cause__, host, settings)
        if not protocol.endswith("SSL"):
            hint = ("a TLS listener closes a plaintext client: set "
                    "SEATFLOW_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL")
        elif settings.kafka_ssl_certfile is None:
            hint = ("if the broker wants a client certificate, set SEATFLOW_KAFKA_SSL_CERTFILE "
                    "and SEATFLOW_KAFKA_SSL_KEYFILE; else see the broker's log")
        else:
            hint = "see the broker's log"
        return f"the connection closed during the first request ({exc}) — {hint}"
    except OSError as exc:
        return f"cannot connect ({exc.strerror or exc})"
    except Exception as exc:  # noqa: BLE001 - whatever else: say what it was
        return f"{type(exc).__name__}: {exc}"
    conn.close()
    return "answers now (the failure was transient)"


def _tls_failure(exc: ssl.SSLError, host: str, settings: Settings) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code in _NAME_MISMATCH:
            return (f"TLS: the broker's certificate does not name {host} ({exc.verify_message}); "
                    "SEATFLOW_KAFKA_BOOTSTRAP must use a name the certificate lists")
        cafile = settings.kafka_ssl_cafile or "unset: the system CAs"
        return (f"TLS: certificate verify failed: {exc.verify_message} — "
                f"SEATFLOW_KAFKA_SSL_CAFILE ({cafile}) must hold the CA that signed the "
                "broker's certificate")
    reason = exc.reason or str(exc)
    if "ALERT" not in reason:
        hint = ("is it a plaintext listener? SEATFLOW_KAFKA_SECURITY_PROTOCOL is "
                f"{settings.kafka_security_protocol}")
    elif settings.kafka_ssl_certfile is None:
        hint = ("the broker refused the handshake; if it wants a client certificate, set "
                "SEATFLOW_KAFKA_SSL_CERTFILE and SEATFLOW_KAFKA_SSL_KEYFILE")
    else:
        hint = ("the broker refused the client certificate "
                "(SEATFLOW_KAFKA_SSL_CERTFILE / SEATFLOW_KAFKA_SSL_KEYFILE)")
    return f"TLS handshake failed ({reason}) — {hint}"
