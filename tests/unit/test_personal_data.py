"""Guests' data and secrets (docs/deployment.md "Personal data"), the pure parts: who may
read the HTTP API, where it binds, what settings, errors and /health never show, and how
personal data is kept out of error text and scrubbed from stored copies."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr, ValidationError

from config.settings import Settings, UnsafeWebBind
from config.topics import TopicNames
from domain.notifications import decide_delivery
from domain.privacy import (
    ERASED,
    needles,
    redact,
    scrub_bytes,
    scrub_change,
    scrub_json,
    without_personal_data,
)
from mail.smtp import SmtpRelay, _classify_refusals
from models.common import format_error
from models.events import BookingChange
from producers.publisher import make_change
from seatflow import cli
from streams.runtime import Runtime
from streams.web import OPEN_PATHS, bearer_token_matches
from tests.support.settings_env import clear_settings_env, settings_with

SMTP_PASSWORD = "smtp-pw-Qx81zz"
SASL_PASSWORD = "kafka-pw-Vb27yy"
TOKEN = "tok-3f9a1c7e5d2b4a60"
DB_PASSWORD = "db-pw-Lm44ww"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    clear_settings_env(monkeypatch)
    return monkeypatch


SECRET_ENV = {
    "SEATFLOW_SMTP_USERNAME": "mailer",
    "SEATFLOW_SMTP_PASSWORD": SMTP_PASSWORD,
    "SEATFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "SEATFLOW_KAFKA_SASL_MECHANISM": "PLAIN",
    "SEATFLOW_KAFKA_SASL_USERNAME": "seatflow",
    "SEATFLOW_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
    "SEATFLOW_API_TOKEN": TOKEN,
    "SEATFLOW_DATABASE_URL": f"postgresql://seatflow:{DB_PASSWORD}@db.internal:5432/seatflow",
}
SECRETS = (SMTP_PASSWORD, SASL_PASSWORD, TOKEN, DB_PASSWORD)


def shows_no_secret(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


# --- settings: secrets never show ---------------------------------------------------------------


def test_settings_repr_str_and_json_show_no_secret(clean_env: pytest.MonkeyPatch) -> None:
    s = settings_with(clean_env, **SECRET_ENV)
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump()["smtp_password"])):
        assert shows_no_secret(text), text
    # ...yet the service still gets them.
    assert s.smtp_password is not None and s.smtp_password.get_secret_value() == SMTP_PASSWORD
    relay = SmtpRelay.from_settings(s)
    assert relay.password == SMTP_PASSWORD and SMTP_PASSWORD not in repr(relay)


@pytest.mark.parametrize("bad", [
    {"SEATFLOW_SMTP_PORT": "not-a-port"},
    {"SEATFLOW_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},  # a SASL password without SASL
    {"SEATFLOW_API_TOKEN": "short-" + SMTP_PASSWORD[:3]},
    {"SEATFLOW_API_TOKEN": TOKEN + " with spaces"},
])
def test_bad_settings_errors_quote_no_secret(clean_env: pytest.MonkeyPatch,
                                             bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as caught:
        settings_with(clean_env, **{**SECRET_ENV, **bad})
    for text in (str(caught.value), repr(caught.value), format_error(caught.value)):
        assert shows_no_secret(text) and (bad.get("SEATFLOW_API_TOKEN") or "?") not in text


def test_the_cli_refuses_bad_settings_without_quoting_secrets(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {**SECRET_ENV, "SEATFLOW_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}.items():
        clean_env.setenv(name, value)
    assert cli.main(["dlq", "tail"]) == 2
    err = capsys.readouterr().err
    assert "SEATFLOW_KAFKA_SASL_PASSWORD" in err and shows_no_secret(err)


def test_a_blank_secret_means_unset(clean_env: pytest.MonkeyPatch) -> None:
    s = settings_with(clean_env, SEATFLOW_API_TOKEN="", SEATFLOW_SMTP_PASSWORD="  ")
    assert s.api_token is None and s.smtp_password is None


def test_a_weak_token_is_refused_naming_the_setting(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError) as caught:
        settings_with(clean_env, SEATFLOW_API_TOKEN="abc123")
    assert "SEATFLOW_API_TOKEN" in format_error(caught.value)
    assert "abc123" not in str(caught.value)


# --- where the HTTP server binds --------------------------------------------------------------


def test_without_a_token_the_api_binds_loopback(clean_env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.api_token is None and s.web_bind == "127.0.0.1"
    s.check_web_access()  # fine: nobody else can reach it


def test_with_a_token_the_api_binds_every_interface(clean_env: pytest.MonkeyPatch) -> None:
    s = settings_with(clean_env, SEATFLOW_API_TOKEN=TOKEN)
    assert s.web_bind == "0.0.0.0"
    s.check_web_access()
    assert settings_with(clean_env, SEATFLOW_WEB_HOST="10.0.0.5").web_bind == "10.0.0.5"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "worker.internal"])
def test_a_wide_bind_without_a_token_is_refused_naming_both_settings(
    clean_env: pytest.MonkeyPatch, host: str
) -> None:
    s = settings_with(clean_env, SEATFLOW_WEB_HOST=host)
    with pytest.raises(UnsafeWebBind) as caught:
        s.check_web_access()
    message = str(caught.value)
    assert "SEATFLOW_WEB_HOST" in message and "SEATFLOW_API_TOKEN" in message
    assert "SEATFLOW_API_OPEN" in message
    # An operator with an authenticating proxy in front says so explicitly.
    settings_with(clean_env, SEATFLOW_API_OPEN="true").check_web_access()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"])
def test_loopback_binds_need_no_token(clean_env: pytest.MonkeyPatch, host: str) -> None:
    settings_with(clean_env, SEATFLOW_WEB_HOST=host).check_web_access()


# --- the token check ------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "ok"), [
    (f"Bearer {TOKEN}", True),
    (f"bearer {TOKEN}", True),  # the scheme is case-insensitive
    (f"  Bearer   {TOKEN}  ", True),
    (None, False),
    ("", False),
    ("Bearer", False),
    ("Bearer ", False),
    (f"Basic {TOKEN}", False),
    (f"Bearer {TOKEN}x", False),
    (f"Bearer {TOKEN[:-1]}", False),
    (f"Bearer {TOKEN.upper()}", False),
    ("Bearer tök-3f9a1c7e5d2b4a60", False),  # non-ASCII must not raise
    ("Bearer \udcff\ud800", False),  # nor undecodable bytes
    ("Bearer " + "a" * 100_000, False),
    (f"Bearer {TOKEN}\x00", False),
])
def test_bearer_token_check(header: str | None, ok: bool) -> None:
    assert bearer_token_matches(header, TOKEN) is ok


def test_only_health_and_metrics_are_open() -> None:
    assert OPEN_PATHS == {"/health", "/metrics"}


# --- /health names no host and no secret ----------------------------------------------------


class DatabaseDown:
    async def ping(self) -> None:
        raise OSError(f"could not connect to db.internal:5432 as seatflow:{DB_PASSWORD}")


def test_health_names_no_host_connection_string_or_secret(
    clean_env: pytest.MonkeyPatch,
) -> None:
    s = settings_with(clean_env, **SECRET_ENV)
    rt = Runtime(settings=s, topics=TopicNames("t."),
                 database_url=s.database_url or "")
    rt._database = DatabaseDown()  # type: ignore[assignment]
    rt.degraded["email-claim"] = "OSError: [Errno 111] Connect call failed ('10.9.8.7', 25)"

    async def broker_down() -> None:
        raise KafkaConnectionError("Unable to bootstrap from [('kafka1.internal', 9092)]")

    status = asyncio.run(rt.check_health(broker_down))
    text = json.dumps(status)
    assert status["status"] == "unavailable"
    assert status["database"] == "unreachable: OSError"
    assert status["waiting"] == {"email-claim": "OSError"}
    for leak in ("internal", "10.9.8.7", "9092", "5432", "postgresql://", *SECRETS):
        assert leak not in text, (leak, text)
    assert DB_PASSWORD not in repr(rt)


# --- personal data in error text and stored copies -------------------------------------------


def test_redact_removes_the_guest_and_any_address() -> None:
    text = ("550 5.1.1 <Ada.Lovelace@Example.com>: Recipient address rejected for Ada Lovelace;"
            " also cc other@example.org")
    out = redact(text, "ada.lovelace@example.com", "Ada Lovelace", None, "")
    assert "lovelace" not in out.lower() and "@" not in out
    assert out.startswith("550 5.1.1")


def test_smtp_refusals_name_codes_not_addresses() -> None:
    import aiosmtplib

    error = _classify_refusals([aiosmtplib.SMTPRecipientRefused(550, "no such user",
                                                                "ada@example.com")])
    assert "ada@example.com" not in str(error) and "550" in str(error)


def test_needles_ignore_blanks_and_tiny_values() -> None:
    assert needles([None, "", "  ", "Al", "Ada Lovelace", "ada@x.io", "Ada Lovelace"]) == [
        "Ada Lovelace", "ada@x.io"]


def test_scrub_json_nulls_personal_strings_but_keeps_ids() -> None:
    record = {"notification_id": "n-ada-lovelace", "booking_id": "b-Ada-Lovelace",
              "to": "ADA@x.io", "kind": "confirmed",
              "context": {"error": "refused ada@x.io", "attempts": 2, "list": ["Ada Lovelace"]}}
    out = scrub_json(record, needles(["Ada Lovelace", "ada@x.io"]))
    assert out == {"notification_id": "n-ada-lovelace", "booking_id": "b-Ada-Lovelace",
                   "to": None, "kind": "confirmed",
                   "context": {"error": None, "attempts": 2, "list": [None]}}


def test_a_scrubbed_parked_change_still_applies() -> None:
    change = make_change("booking.created", "b-1", "r-1", booking_date="2031-01-02",
                         start_time="19:00", party_size=2, customer_name="Ada Lovelace",
                         customer_email="ada@x.io", customer_phone="+44 1", notes="Ada's 40th")
    scrubbed = scrub_change(change.model_dump(mode="json"))
    again = BookingChange.model_validate(scrubbed)
    b = again.booking
    assert (b.customer_name, b.customer_email, b.customer_phone, b.notes) == (
        ERASED, None, None, None)
    assert (b.booking_id, b.party_size, again.event_id) == ("b-1", 2, change.event_id)
    assert scrub_change(scrubbed) == scrubbed  # a second erasure changes nothing


def test_scrub_bytes_is_case_insensitive() -> None:
    raw = b'{"customer_email": "ADA@x.io", "customer_name": "Ada Lovelace"}'
    out = scrub_bytes(raw, needles(["ada@x.io", "ada lovelace"]))
    assert out is not None and b"ada" not in out.lower()


def test_changes_to_an_erased_booking_carry_no_personal_data() -> None:
    change = make_change("booking.updated", "b-1", "r-1", booking_date="2031-01-02",
                         start_time="19:00", party_size=2, customer_name="Ada",
                         customer_email="ada@x.io", customer_phone="+44 1", notes="hi")
    b = without_personal_data(change).booking
    assert (b.customer_name, b.customer_email, b.customer_phone, b.notes) == (
        None, None, None, None)
    assert (b.booking_date, b.party_size) == (change.booking.booking_date, 2)


def test_no_email_leaves_for_an_erased_booking() -> None:
    for kind in ("confirmed", "cancelled", "allocation_failed", "request_received"):
        delivery = decide_delivery(kind, "host@resto.example", "confirmed", suppress=False,
                                   erased=True)
        assert (delivery.send, delivery.status, delivery.reason) == (
            False, "skipped", "personal_data_erased")
    assert decide_delivery("confirmed", "a@x.io", "confirmed", suppress=False).send


def test_secret_fields_are_secretstr() -> None:
    for name in ("smtp_password", "kafka_sasl_password", "api_token"):
        annotation = str(Settings.model_fields[name].annotation)
        assert SecretStr.__name__ in annotation, name


def test_compose_workers_serve_their_published_port_behind_the_token(
    clean_env: pytest.MonkeyPatch,
) -> None:
    import yaml

    from tests.unit.test_compose import COMPOSE_FILE, environment_of

    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    published = [svc for svc in services.values()
                 if any(str(p).endswith(":6066") for p in svc.get("ports", []))]
    assert published
    for svc in published:
        s = settings_with(clean_env, **environment_of(svc))
        s.check_web_access()
        assert s.api_token is not None and s.web_bind == "0.0.0.0"


def test_short_names_match_only_whole_words() -> None:
    record = {"status": "confirmed", "kind": "confirmed", "to": "con@x.io",
              "context": {"error": "refused Con"}}
    assert scrub_json(record, needles(["Con", "con@x.io"])) == {
        "status": "confirmed", "kind": "confirmed", "to": None, "context": {"error": None}}
    assert redact("connection to Con refused", "Con") == "connection to <redacted> refused"
    assert scrub_bytes(b'{"s": "confirmed", "n": "Con"}', ["Con"]) == (
        b'{"s": "confirmed", "n": "(erased)"}')
