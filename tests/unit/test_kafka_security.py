"""Kafka TLS and SASL settings (docs/interface.md §7): bad combinations fail at start naming
the setting, every client gets the same options, and the password never shows."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.kafka import KafkaTlsError, client_options, ssl_context
from config.settings import Settings
from models.common import format_error
from streams import connection
from streams.app import broker_credentials
from tests.support.settings_env import clear_settings_env, settings_with
from tests.support.tls import issue_ca

PASSWORD = "s3cr3t-kafka-pw"


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    # (Clearing Settings.model_fields' names, as before, cleared nothing: those are attribute
    # names, not the SEATFLOW_* variables.)
    clear_settings_env(monkeypatch)
    return settings_with(monkeypatch, **env)


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        settings(monkeypatch, **env)
    return format_error(caught.value)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    ca = issue_ca(tmp_path)
    return ca.cert, ca.key


def test_plaintext_is_the_default_and_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch)
    assert client_options(s) == {"bootstrap_servers": s.kafka_bootstrap,
                                 "security_protocol": "PLAINTEXT"}
    assert broker_credentials(s) is None


@pytest.mark.parametrize(("env", "named"), [
    ({"SEATFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
     ["SEATFLOW_KAFKA_SASL_MECHANISM", "SEATFLOW_KAFKA_SASL_USERNAME",
      "SEATFLOW_KAFKA_SASL_PASSWORD"]),
    ({"SEATFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
      "SEATFLOW_KAFKA_SASL_MECHANISM": "PLAIN", "SEATFLOW_KAFKA_SASL_USERNAME": "u"},
     ["SEATFLOW_KAFKA_SASL_PASSWORD"]),
    ({"SEATFLOW_KAFKA_SASL_USERNAME": "u"}, ["SEATFLOW_KAFKA_SASL_USERNAME",
                                            "SEATFLOW_KAFKA_SECURITY_PROTOCOL"]),
    ({"SEATFLOW_KAFKA_SSL_CAFILE": "/etc/hosts"}, ["SEATFLOW_KAFKA_SSL_CAFILE",
                                                  "SEATFLOW_KAFKA_SECURITY_PROTOCOL"]),
    ({"SEATFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "SEATFLOW_KAFKA_SSL_CERTFILE": "/etc/hosts"},
     ["SEATFLOW_KAFKA_SSL_CERTFILE", "SEATFLOW_KAFKA_SSL_KEYFILE"]),
    ({"SEATFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "SEATFLOW_KAFKA_SSL_CAFILE": "/no/such.pem"},
     ["SEATFLOW_KAFKA_SSL_CAFILE", "/no/such.pem"]),
    ({"SEATFLOW_KAFKA_SECURITY_PROTOCOL": "TLS"}, ["SEATFLOW_KAFKA_SECURITY_PROTOCOL"]),
    ({"SEATFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SEATFLOW_KAFKA_SASL_MECHANISM": "MD5",
      "SEATFLOW_KAFKA_SASL_USERNAME": "u", "SEATFLOW_KAFKA_SASL_PASSWORD": "p"},
     ["SEATFLOW_KAFKA_SASL_MECHANISM"]),
])
def test_a_bad_combination_fails_at_start_naming_the_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: list[str]
) -> None:
    text = refusal(monkeypatch, **env)
    for name in named:
        assert name in text, text


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls_reaches_every_client_and_faust(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mechanism: str
) -> None:
    ca, _ = self_signed(tmp_path)
    s = settings(monkeypatch, SEATFLOW_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                 SEATFLOW_KAFKA_SASL_MECHANISM=mechanism, SEATFLOW_KAFKA_SASL_USERNAME="svc",
                 SEATFLOW_KAFKA_SASL_PASSWORD=PASSWORD, SEATFLOW_KAFKA_SSL_CAFILE=str(ca))
    options = client_options(s)
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"],
            options["sasl_plain_password"]) == (mechanism, "svc", PASSWORD)
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    creds = broker_credentials(s)
    assert creds is not None and creds.protocol.value == "SASL_SSL"
    assert creds.mechanism.value == mechanism
    # The secret stays out of every text form of the settings and the credentials.
    for text in (repr(s), str(s), s.model_dump_json(), repr(creds)):
        assert PASSWORD not in text


def test_a_client_certificate_is_loaded_and_a_broken_one_names_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    s = settings(monkeypatch, SEATFLOW_KAFKA_SECURITY_PROTOCOL="SSL",
                 SEATFLOW_KAFKA_SSL_CAFILE=str(cert), SEATFLOW_KAFKA_SSL_CERTFILE=str(cert),
                 SEATFLOW_KAFKA_SSL_KEYFILE=str(key))
    assert ssl_context(s) is not None
    key.write_text("not a key")
    with pytest.raises(KafkaTlsError, match="SEATFLOW_KAFKA_SSL_CERTFILE / SEATFLOW_KAFKA_SSL_KEYFILE"):
        ssl_context(s)
    cert.write_text("not a certificate")
    with pytest.raises(KafkaTlsError, match="SEATFLOW_KAFKA_SSL_CAFILE"):
        ssl_context(s)


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code, error.verify_message = code, message
    return error


def tls_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, reason)
    error.reason = reason
    return error


@pytest.mark.parametrize(("error", "env", "named"), [
    (verify_error(20, "unable to get local issuer certificate"), {},
     ["unable to get local issuer certificate", "SEATFLOW_KAFKA_SSL_CAFILE (unset: the system CAs)"]),
    (verify_error(62, "Hostname mismatch, certificate is not valid for 'kafka'."), {},
     ["does not name kafka", "SEATFLOW_KAFKA_BOOTSTRAP"]),
    (tls_error("WRONG_VERSION_NUMBER"), {}, ["plaintext listener",
                                            "SEATFLOW_KAFKA_SECURITY_PROTOCOL is SSL"]),
    (tls_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"), {}, ["SEATFLOW_KAFKA_SSL_CERTFILE"]),
    (tls_error("SSLV3_ALERT_BAD_CERTIFICATE"), {"client_cert": "yes"},
     ["refused the client certificate", "SEATFLOW_KAFKA_SSL_KEYFILE"]),
])
def test_a_tls_failure_names_the_setting_to_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: ssl.SSLError, env: dict[str, str],
    named: list[str],
) -> None:
    tls = {"SEATFLOW_KAFKA_SECURITY_PROTOCOL": "SSL"}
    if env:
        cert, key = self_signed(tmp_path)
        tls |= {"SEATFLOW_KAFKA_SSL_CERTFILE": str(cert), "SEATFLOW_KAFKA_SSL_KEYFILE": str(key)}
    text = connection._tls_failure(error, "kafka", settings(monkeypatch, **tls))
    for name in named:
        assert name in text, text


async def test_an_explanation_never_shows_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, SEATFLOW_KAFKA_BOOTSTRAP="k1:9093,k2:9093",
                 SEATFLOW_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                 SEATFLOW_KAFKA_SASL_MECHANISM="PLAIN", SEATFLOW_KAFKA_SASL_USERNAME="svc",
                 SEATFLOW_KAFKA_SASL_PASSWORD=PASSWORD)

    async def echoing_broker(server: str, options: dict, _: Settings) -> str:
        assert options["sasl_plain_password"] == PASSWORD  # the probe logs in like a client
        return f"refused user svc with password {PASSWORD}"

    monkeypatch.setattr(connection, "_probe", echoing_broker)
    text = await connection.explain(s)
    assert PASSWORD not in text
    assert text.startswith("broker: cannot use SEATFLOW_KAFKA_BOOTSTRAP — k1:9093: ")
    assert "; k2:9093: " in text
