"""How seatflow connects to Kafka: the one place that turns settings into the options every
client (Faust's, the admin client, producers, the CLI's readers) passes to aiokafka."""

from __future__ import annotations

import ssl
from typing import Any

from config.settings import Settings


class KafkaTlsError(ValueError):
    """The TLS files named in the settings cannot be used; the message names the setting."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying TLS context for SSL / SASL_SSL: the system CAs, or only
    SEATFLOW_KAFKA_SSL_CAFILE when set; a client certificate when one is given."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    cafile = settings.kafka_ssl_cafile
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaTlsError(f"SEATFLOW_KAFKA_SSL_CAFILE {cafile}: not a usable CA bundle "
                            f"({exc})") from exc
    if settings.kafka_ssl_certfile and settings.kafka_ssl_keyfile:
        try:
            context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                    str(settings.kafka_ssl_keyfile))
        except (OSError, ssl.SSLError) as exc:
            raise KafkaTlsError(
                f"SEATFLOW_KAFKA_SSL_CERTFILE / SEATFLOW_KAFKA_SSL_KEYFILE: not a usable "
                f"certificate and key ({exc})") from exc
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client: bootstrap servers and security."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings validated it
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options
