"""The one settings object (docs/interface.md §7). Every knob the service reads comes from
here, from the environment."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Where the embedded stack keeps its state (PostgreSQL data, mail sink) unless told otherwise.
DEFAULT_HOME = Path(".seatflow")
EMBEDDED_KAFKA_PORT = 19092
EMBEDDED_SMTP_PORT = 8025


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    # Errors never quote what was given: it may be a password or a token.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    # --- infrastructure (unset -> embedded default) -------------------------------------
    kafka_bootstrap: str = Field(
        f"127.0.0.1:{EMBEDDED_KAFKA_PORT}", validation_alias=_env("SEATFLOW_KAFKA_BOOTSTRAP")
    )
    # Kafka security (what managed Kafka services require); docs/deployment.md "Managed Kafka".
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=_env("SEATFLOW_KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validation_alias=_env("SEATFLOW_KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(
        None, validation_alias=_env("SEATFLOW_KAFKA_SASL_USERNAME")
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, validation_alias=_env("SEATFLOW_KAFKA_SASL_PASSWORD")
    )
    kafka_ssl_cafile: Path | None = Field(None, validation_alias=_env("SEATFLOW_KAFKA_SSL_CAFILE"))
    kafka_ssl_certfile: Path | None = Field(
        None, validation_alias=_env("SEATFLOW_KAFKA_SSL_CERTFILE")
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, validation_alias=_env("SEATFLOW_KAFKA_SSL_KEYFILE")
    )
    # None -> the embedded PostgreSQL (pgserver) under `home`.
    database_url: str | None = Field(None, validation_alias=_env("SEATFLOW_DATABASE_URL"))
    smtp_host: str = Field("127.0.0.1", validation_alias=_env("SEATFLOW_SMTP_HOST"))
    smtp_port: int = Field(EMBEDDED_SMTP_PORT, validation_alias=_env("SEATFLOW_SMTP_PORT"))
    smtp_username: str | None = Field(None, validation_alias=_env("SEATFLOW_SMTP_USERNAME"))
    # A secret: shown as '**********' in the settings' repr, dumps and errors.
    smtp_password: SecretStr | None = Field(None, validation_alias=_env("SEATFLOW_SMTP_PASSWORD"))
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "none", validation_alias=_env("SEATFLOW_SMTP_TLS")
    )
    email_from: str = Field(
        "seatflow <no-reply@seatflow.local>", validation_alias=_env("SEATFLOW_EMAIL_FROM")
    )

    # --- topics and identity ---------------------------------------------------------------
    topic_prefix: str = Field("seatflow.", validation_alias=_env("SEATFLOW_TOPIC_PREFIX"))
    topic_partitions: int = Field(8, ge=1, validation_alias=_env("SEATFLOW_TOPIC_PARTITIONS"))
    topic_replication: int = Field(1, ge=1, validation_alias=_env("SEATFLOW_TOPIC_REPLICATION"))
    app_id_override: str | None = Field(None, validation_alias=_env("SEATFLOW_APP_ID"))
    web_port: int = Field(6066, validation_alias=_env("SEATFLOW_WEB_PORT"))
    # --- HTTP access (docs/deployment.md "Personal data") ----------------------------------
    # Unset: 127.0.0.1 without an API token, every interface with one (`web_bind`).
    web_host: str | None = Field(None, validation_alias=_env("SEATFLOW_WEB_HOST"))
    # Every endpoint but /health and /metrics wants `Authorization: Bearer <token>`.
    api_token: SecretStr | None = Field(None, validation_alias=_env("SEATFLOW_API_TOKEN"))
    # Serve a wider address without a token (an authenticating proxy in front).
    api_open: bool = Field(False, validation_alias=_env("SEATFLOW_API_OPEN"))
    # Where the commands that read the API find it; unset: this host's SEATFLOW_WEB_PORT.
    api_url: str | None = Field(None, validation_alias=_env("SEATFLOW_API_URL"))
    # Worker logs: `text` for a person, `json` (one object per line) for a log pipeline.
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=_env("SEATFLOW_LOG_FORMAT")
    )

    # --- behaviour ---------------------------------------------------------------------------
    inline_confirm_window_ms: int = Field(
        2000, ge=0, validation_alias=_env("SEATFLOW_INLINE_CONFIRM_WINDOW_MS")
    )
    auto_assign_retry_delays_ms: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [5000, 15000, 45000],
        validation_alias=_env("SEATFLOW_AUTO_ASSIGN_RETRY_DELAYS_MS"),
    )
    suppress_emails: bool = Field(False, validation_alias=_env("SUPPRESS_EMAILS"))
    feature_auto_assign_on_booking: bool = Field(
        True, validation_alias=_env("FEATURE_AUTO_ASSIGN_ON_BOOKING")
    )

    # Re-seat confirmed bookings (same times, other tables) when that makes room for a new one.
    # Each move is published as `booking.tables_changed` with the next booking_version.
    allocation_repack: bool = Field(True, validation_alias=_env("SEATFLOW_ALLOCATION_REPACK"))
    # Opt-in, beyond the contract: also move one confirmed booking when a new one could be
    # seated but the move wastes fewer seats (a four takes the four-top, not the six-top).
    # The contract (§4) promises moves only when a booking cannot otherwise be seated.
    allocation_tidy_moves: bool = Field(
        False, validation_alias=_env("SEATFLOW_ALLOCATION_TIDY_MOVES")
    )

    # --- tuning (not in the contract; defaults suit the embedded Tansu broker) -------------
    home: Path = Field(DEFAULT_HOME, validation_alias=_env("SEATFLOW_HOME"))
    # Tansu holds JoinGroup open for session_timeout/2 (docs/infrastructure.md): short timeouts make a
    # worker ready in ~3 s. On Apache Kafka raise them (e.g. 30 / 3 / 60).
    broker_session_timeout_s: float = Field(
        4.0, validation_alias=_env("SEATFLOW_BROKER_SESSION_TIMEOUT_S")
    )
    broker_heartbeat_interval_s: float = Field(
        1.0, validation_alias=_env("SEATFLOW_BROKER_HEARTBEAT_INTERVAL_S")
    )
    broker_rebalance_timeout_s: float = Field(
        4.0, validation_alias=_env("SEATFLOW_BROKER_REBALANCE_TIMEOUT_S")
    )
    # Faust hard-codes 1500 ms; a shorter wait keeps each hop's latency low (faust_tuning).
    consumer_fetch_max_wait_ms: int = Field(
        20, ge=1, validation_alias=_env("SEATFLOW_CONSUMER_FETCH_MAX_WAIT_MS")
    )
    # How long the worker's producer waits to fill record batches: per send of committed
    # rows (streams.runtime), and per record for Faust's own sends. Each batch costs a fetch
    # on Tansu in proportion to the batches a partition holds (docs/infrastructure.md).
    producer_linger_ms: float = Field(
        5.0, ge=0, validation_alias=_env("SEATFLOW_PRODUCER_LINGER_MS")
    )
    batch_size: int = Field(500, ge=1, validation_alias=_env("SEATFLOW_BATCH_SIZE"))
    batch_within_s: float = Field(0.02, gt=0, validation_alias=_env("SEATFLOW_BATCH_WITHIN_S"))
    db_pool_size: int = Field(8, ge=1, validation_alias=_env("SEATFLOW_DB_POOL_SIZE"))
    # Parallel SMTP connections per worker. Each sends one leased message at a time, so a
    # worker killed mid-send can repeat at most this many messages (one per connection).
    smtp_connections: int = Field(4, ge=1, le=64,
                                  validation_alias=_env("SEATFLOW_SMTP_CONNECTIONS"))
    # How long a claim on one email holds; a send is abandoned after half of it, so a
    # lease never expires under a live sender.
    email_lease_s: float = Field(60.0, ge=2.0, validation_alias=_env("SEATFLOW_EMAIL_LEASE_S"))
    # The largest record a worker produces (Kafka's max.request.size). Dead letters are cut
    # to fit it; keep it at or below the brokers' message.max.bytes.
    kafka_max_request_bytes: int = Field(
        1_000_000, ge=10_000, validation_alias=_env("SEATFLOW_KAFKA_MAX_REQUEST_BYTES")
    )
    # Input messages larger than this are dead-lettered (stage decode) without being parsed:
    # a valid booking change is a few kilobytes.
    max_input_bytes: int = Field(
        1_000_000, ge=1_000, validation_alias=_env("SEATFLOW_MAX_INPUT_BYTES")
    )
    timer_interval_s: float = Field(0.25, gt=0, validation_alias=_env("SEATFLOW_TIMER_INTERVAL_S"))
    # An agent hands its committed records to a background publisher instead of waiting for
    # the broker before its next batch (they are durable in the outbox already).
    publish_in_background: bool = Field(
        True, validation_alias=_env("SEATFLOW_PUBLISH_IN_BACKGROUND")
    )
    # Publish a transaction's records as one record batch per partition (aiokafka's batch
    # API) rather than one Faust send each. bench/results/levers.json says what it gives.
    batched_sends: bool = Field(True, validation_alias=_env("SEATFLOW_BATCHED_SENDS"))
    # The worker's event loop: uvloop (libuv) by default; asyncio's own as a fallback.
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", validation_alias=_env("SEATFLOW_EVENT_LOOP")
    )

    # --- retention of append-only bookkeeping ------------------------------------------------
    # Ids of applied events and allocation requests, and idempotent submissions, are kept this
    # long. It must outlast the retention of every topic a record can be replayed from
    # (booking-changes, allocation-requests, dead-letters): an event replayed after its id
    # was pruned would be applied again. Kafka's default topic retention is 7 days.
    dedupe_retention_days: float = Field(
        14.0, gt=0, validation_alias=_env("SEATFLOW_DEDUPE_RETENTION_DAYS")
    )
    # Email records (the notifications table) of bookings whose date is this far in the past.
    email_record_retention_days: float = Field(
        90.0, gt=0, validation_alias=_env("SEATFLOW_EMAIL_RECORD_RETENTION_DAYS")
    )
    # How often each worker prunes, and how many rows one pruning transaction deletes.
    prune_interval_s: float = Field(60.0, gt=0, validation_alias=_env("SEATFLOW_PRUNE_INTERVAL_S"))
    prune_batch_rows: int = Field(1000, ge=1, validation_alias=_env("SEATFLOW_PRUNE_BATCH_ROWS"))
    # Guests' names, emails, phones and notes are erased from bookings this many days after
    # the booking's date (the booking's facts stay). At least a day: a booking past midnight
    # still has guests at the table on the next date.
    guest_data_retention_days: float = Field(
        30.0, ge=1, validation_alias=_env("SEATFLOW_GUEST_DATA_RETENTION_DAYS")
    )

    @model_validator(mode="after")
    def _kafka_security_is_consistent(self) -> Self:
        """A combination Kafka would refuse (or that would silently not secure anything)
        fails here, at start, naming the settings involved."""
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol.endswith("SSL")
        given = {
            "SEATFLOW_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "SEATFLOW_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "SEATFLOW_KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        if sasl:
            missing = [name for name, value in given.items() if not value]
            if missing:
                raise ValueError(
                    f"SEATFLOW_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                    + ", ".join(missing)
                )
        else:
            stray = [name for name, value in given.items() if value]
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} set, but SEATFLOW_KAFKA_SECURITY_PROTOCOL={protocol} "
                    "does not use SASL (use SASL_SSL or SASL_PLAINTEXT)"
                )
        files = {
            "SEATFLOW_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "SEATFLOW_KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "SEATFLOW_KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
        }
        if not tls:
            stray = [name for name, value in files.items() if value]
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} set, but SEATFLOW_KAFKA_SECURITY_PROTOCOL={protocol} "
                    "does not use TLS (use SSL or SASL_SSL)"
                )
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError(
                "SEATFLOW_KAFKA_SSL_CERTFILE and SEATFLOW_KAFKA_SSL_KEYFILE go together "
                "(a client certificate and its private key)"
            )
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self

    @field_validator("api_token", "smtp_password", "kafka_sasl_password", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        # `SEATFLOW_API_TOKEN=` in a compose file or unit means "not set", not an empty secret.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("api_token")
    @classmethod
    def _token_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        # The messages never quote the token.
        if value is None:
            return value
        token = value.get_secret_value()
        if len(token) < MIN_API_TOKEN_CHARS:
            raise ValueError(f"SEATFLOW_API_TOKEN must be at least {MIN_API_TOKEN_CHARS} "
                             "characters (e.g. `openssl rand -hex 32`)")
        if not all("!" <= c <= "~" for c in token):
            raise ValueError("SEATFLOW_API_TOKEN must be printable ASCII without spaces "
                             "(it travels in an HTTP header)")
        return value

    @field_validator("auto_assign_retry_delays_ms", mode="before")
    @classmethod
    def _parse_delays(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return [int(p) for p in parts]
            except ValueError as exc:
                raise ValueError(
                    "SEATFLOW_AUTO_ASSIGN_RETRY_DELAYS_MS must be comma-separated milliseconds, "
                    f"got {value!r}"
                ) from exc
        return value

    @field_validator("auto_assign_retry_delays_ms")
    @classmethod
    def _delays_non_negative(cls, value: list[int]) -> list[int]:
        if any(d < 0 for d in value):
            raise ValueError("retry delays must be >= 0 ms")
        return value

    @property
    def app_id(self) -> str:
        """Consumer group id; derived from the prefix so deployments can share a cluster."""
        if self.app_id_override:
            return self.app_id_override
        # "seatflow." -> "seatflow.worker"; "" -> "worker". A prefix with characters Kafka
        # names do not allow is sanitised plus a short hash, so distinct prefixes never share
        # a group.
        if re.fullmatch(r"[A-Za-z0-9._-]*", self.topic_prefix):
            return f"{self.topic_prefix}worker"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", self.topic_prefix)
        digest = hashlib.sha1(self.topic_prefix.encode()).hexdigest()[:8]
        return f"{stem}{digest}.worker"

    @property
    def web_bind(self) -> str:
        """The address the HTTP server listens on: SEATFLOW_WEB_HOST, else loopback unless
        an API token protects guests' data."""
        if self.web_host:
            return self.web_host
        return "0.0.0.0" if self.api_token is not None else "127.0.0.1"

    def check_web_access(self) -> None:
        """UnsafeWebBind when the worker would serve guests' data to the network unasked."""
        if self.api_token is not None or self.api_open or is_loopback(self.web_bind):
            return
        raise UnsafeWebBind(
            f"SEATFLOW_WEB_HOST={self.web_bind} would serve guests' personal data to the "
            "network without authentication: set SEATFLOW_API_TOKEN, or bind 127.0.0.1, or "
            "set SEATFLOW_API_OPEN=true if your own authenticating proxy guards the port"
        )

    @property
    def retry_delays_s(self) -> list[float]:
        return [d / 1000.0 for d in self.auto_assign_retry_delays_ms]

    @property
    def embedded_pgdata(self) -> Path:
        return self.home / "pgdata"

    @field_serializer("database_url")
    def _database_url_without_password(self, value: str | None) -> str | None:
        return redact_url(value) if value else value

    def __repr_args__(self) -> Any:
        # A database URL may carry a password; secrets already print as '**********'.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "database_url" and value else value


class UnsafeWebBind(ValueError):
    """A wide HTTP bind without a token (docs/deployment.md "Personal data")."""


MIN_API_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: may resolve to anything
        return False


def redact_url(url: str) -> str:
    """`url` with its password (if any) replaced by '***', for banners and reprs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "<unparsable URL>"
