"""Kafka TLS and SASL settings (docs/interface.md §7): bad combinations fail at start naming
the setting, every client gets the same options, and the password never shows."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from config.kafka import KafkaTlsError, client_options, ssl_context
from config.settings import Settings
from models.common import format_error
from streams.app import broker_credentials

PASSWORD = "s3cr3t-kafka-pw"


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        settings(monkeypatch, **env)
    return format_error(caught.value)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seatflow-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


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
