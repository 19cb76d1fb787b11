"""Settings from the environment (docs/interface.md §7): names, parsing, defaults, derived app id."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from config.settings import Settings
from tests.support.settings_env import clear_settings_env, settings_with


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting leaks in from the shell running the tests."""
    clear_settings_env(monkeypatch)
    return monkeypatch


def error_text(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        settings_with(monkeypatch, **env)
    return str(caught.value)


# --- defaults ----------------------------------------------------------------------------------


def test_contract_defaults() -> None:
    s = Settings()
    assert s.topic_prefix == "seatflow."
    assert s.topic_partitions == 8
    assert s.web_port == 6066
    assert s.inline_confirm_window_ms == 2000
    assert s.auto_assign_retry_delays_ms == [5000, 15000, 45000]
    assert s.retry_delays_s == [5.0, 15.0, 45.0]
    assert s.suppress_emails is False
    assert s.feature_auto_assign_on_booking is True
    assert s.smtp_tls == "none"


def test_unset_infrastructure_means_embedded() -> None:
    s = Settings()
    assert s.database_url is None  # the embedded PostgreSQL
    assert s.kafka_bootstrap.startswith("127.0.0.1:")
    assert s.smtp_host == "127.0.0.1"
    assert (s.smtp_username, s.smtp_password) == (None, None)


def test_every_contract_setting_is_read(clean_env: pytest.MonkeyPatch) -> None:
    s = settings_with(
        clean_env,
        SEATFLOW_KAFKA_BOOTSTRAP="kafka-1:9092,kafka-2:9092",
        SEATFLOW_DATABASE_URL="postgresql://u:p@db:5432/seatflow",
        SEATFLOW_SMTP_HOST="smtp.example",
        SEATFLOW_SMTP_PORT="2525",
        SEATFLOW_SMTP_USERNAME="mailer",
        SEATFLOW_SMTP_PASSWORD="secret",
        SEATFLOW_SMTP_TLS="starttls",
        SEATFLOW_EMAIL_FROM="Ember <bookings@ember.example>",
        SEATFLOW_TOPIC_PREFIX="acme.",
        SEATFLOW_TOPIC_PARTITIONS="3",
        SEATFLOW_APP_ID="acme-group",
        SEATFLOW_WEB_PORT="8080",
        SEATFLOW_INLINE_CONFIRM_WINDOW_MS="500",
        SEATFLOW_AUTO_ASSIGN_RETRY_DELAYS_MS="100,200",
        SUPPRESS_EMAILS="true",
        FEATURE_AUTO_ASSIGN_ON_BOOKING="false",
    )
    assert s.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    assert s.database_url == "postgresql://u:p@db:5432/seatflow"
    assert (s.smtp_host, s.smtp_port, s.smtp_tls) == ("smtp.example", 2525, "starttls")
    assert s.smtp_username == "mailer"
    assert s.smtp_password is not None and s.smtp_password.get_secret_value() == "secret"
    assert s.email_from == "Ember <bookings@ember.example>"
    assert (s.topic_prefix, s.topic_partitions, s.app_id) == ("acme.", 3, "acme-group")
    assert s.web_port == 8080
    assert s.inline_confirm_window_ms == 500
    assert s.retry_delays_s == [0.1, 0.2]
    assert (s.suppress_emails, s.feature_auto_assign_on_booking) == (True, False)


# --- retry delays ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "delays"),
    [
        ("5000,15000,45000", [5000, 15000, 45000]),
        (" 100 , 200 ", [100, 200]),
        ("250", [250]),
        ("0,0", [0, 0]),
    ],
)
def test_retry_delays_parse(clean_env: pytest.MonkeyPatch, raw: str, delays: list[int]) -> None:
    s = settings_with(clean_env, SEATFLOW_AUTO_ASSIGN_RETRY_DELAYS_MS=raw)
    assert s.auto_assign_retry_delays_ms == delays
    assert s.retry_delays_s == [d / 1000 for d in delays]


@pytest.mark.parametrize("raw", ["5s,15s", "5000;15000", "five", "1.5,2"])
def test_bad_retry_delays_name_the_setting(clean_env: pytest.MonkeyPatch, raw: str) -> None:
    text = error_text(clean_env, SEATFLOW_AUTO_ASSIGN_RETRY_DELAYS_MS=raw)
    assert "SEATFLOW_AUTO_ASSIGN_RETRY_DELAYS_MS" in text


def test_negative_retry_delay_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    text = error_text(clean_env, SEATFLOW_AUTO_ASSIGN_RETRY_DELAYS_MS="5000,-1")
    assert "SEATFLOW_AUTO_ASSIGN_RETRY_DELAYS_MS" in text


# --- booleans ----------------------------------------------------------------------------------

BOOLEANS = [
    ("true", True),
    ("TRUE", True),
    ("1", True),
    ("yes", True),
    ("false", False),
    ("False", False),
    ("0", False),
    ("no", False),
]


@pytest.mark.parametrize(("raw", "value"), BOOLEANS)
def test_suppress_emails(clean_env: pytest.MonkeyPatch, raw: str, value: bool) -> None:
    assert settings_with(clean_env, SUPPRESS_EMAILS=raw).suppress_emails is value


@pytest.mark.parametrize(("raw", "value"), BOOLEANS)
def test_feature_auto_assign(clean_env: pytest.MonkeyPatch, raw: str, value: bool) -> None:
    s = settings_with(clean_env, FEATURE_AUTO_ASSIGN_ON_BOOKING=raw)
    assert s.feature_auto_assign_on_booking is value


@pytest.mark.parametrize("name", ["SUPPRESS_EMAILS", "FEATURE_AUTO_ASSIGN_ON_BOOKING"])
def test_bad_boolean_names_the_setting(clean_env: pytest.MonkeyPatch, name: str) -> None:
    assert name in error_text(clean_env, **{name: "maybe"})


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("SEATFLOW_SMTP_TLS", "ssl"),
        ("SEATFLOW_TOPIC_PARTITIONS", "0"),
        ("SEATFLOW_INLINE_CONFIRM_WINDOW_MS", "-5"),
        ("SEATFLOW_WEB_PORT", "http"),
    ],
)
def test_other_bad_values_name_the_setting(
    clean_env: pytest.MonkeyPatch, name: str, raw: str
) -> None:
    assert name in error_text(clean_env, **{name: raw})


# --- app id ------------------------------------------------------------------------------------


def test_app_id_derives_from_the_prefix(clean_env: pytest.MonkeyPatch) -> None:
    default = Settings().app_id
    acme = settings_with(clean_env, SEATFLOW_TOPIC_PREFIX="acme.").app_id
    other = settings_with(clean_env, SEATFLOW_TOPIC_PREFIX="other.").app_id
    assert len({default, acme, other}) == 3, "two prefixes must never share a consumer group"
    assert acme.startswith("acme.")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", acme)


def test_app_id_is_a_valid_group_id_for_any_prefix(clean_env: pytest.MonkeyPatch) -> None:
    app_id = settings_with(clean_env, SEATFLOW_TOPIC_PREFIX="team a/bookings ").app_id
    assert re.fullmatch(r"[A-Za-z0-9._-]+", app_id)


def test_app_id_setting_overrides_the_derived_one(clean_env: pytest.MonkeyPatch) -> None:
    s = settings_with(clean_env, SEATFLOW_TOPIC_PREFIX="acme.", SEATFLOW_APP_ID="my-group")
    assert s.app_id == "my-group"
    assert s.topic_prefix == "acme."


def test_empty_prefix_gets_its_own_group(clean_env: pytest.MonkeyPatch) -> None:
    default = Settings().app_id
    assert settings_with(clean_env, SEATFLOW_TOPIC_PREFIX="").app_id != default


def test_prefixes_that_sanitise_alike_still_get_distinct_groups(
    clean_env: pytest.MonkeyPatch,
) -> None:
    spaced = settings_with(clean_env, SEATFLOW_TOPIC_PREFIX="a b.").app_id
    dashed = settings_with(clean_env, SEATFLOW_TOPIC_PREFIX="a-b.").app_id
    assert spaced != dashed
