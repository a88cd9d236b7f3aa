"""Runtime settings, from ``MISSING_ALERTS_*`` environment variables (and an optional .env).

Secrets are ``SecretStr`` so they never appear in a repr or a log line.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.errors import ConfigError, describe_validation_error

ENV_PREFIX = "MISSING_ALERTS_"
POLICY_DIR = Path(__file__).parent
MIN_LINK_SECRET_BYTES = 32
DEFAULT_KAFKA_LOCAL_DIR = Path.home() / ".cache" / "missing-alerts" / "kafka-local"


class Settings(BaseSettings):
    # An empty variable is an unset one (compose's ${X:-} passes empty strings): an empty
    # LINK_SECRET must never become an empty HMAC key.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
    )

    app_id: str = Field(default="missing-alerts", pattern=r"^[A-Za-z0-9_.-]+$")
    environment: Literal["development", "production", "test"] = "development"

    # Kafka. Unset bootstrap means "the broker started by scripts/kafka-local".
    kafka_bootstrap: str | None = None
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_local_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("KAFKA_LOCAL_DIR", DEFAULT_KAFKA_LOCAL_DIR))
    )
    topic_prefix: str = Field(default="missing-alerts", pattern=r"^[A-Za-z0-9_.-]+$")
    topic_partitions: int = Field(default=4, ge=1, le=256)
    topic_replication: int = Field(default=1, ge=1, le=5)
    # With acks=all, a write is acknowledged once this many replicas have it: 2 of 3 lets a
    # cluster lose any one broker without losing or refusing a write. 1 suits one broker.
    topic_min_insync_replicas: int = Field(default=1, ge=1, le=5)

    # Faust worker.
    store: str = Field(default="rocksdb://", pattern=r"^(rocksdb|memory)://")
    data_dir: Path = Path("var")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:6066"
    broker_session_timeout_s: float = Field(default=10.0, gt=0)
    # The engine runs as a child process of the worker (streams/engine/process.py) with a small
    # internal HTTP port: 0 picks a free one. Other workers reach it at the advertised host
    # (default: web_host, or this machine's hostname when that is a wildcard address).
    engine_port: int = Field(default=0, ge=0, le=65535)
    engine_advertised_host: str | None = None
    # Escalation timer: how often each worker looks for due steps, and how many it emits a tick.
    timer_interval_s: float = Field(default=0.25, gt=0, le=60)
    timer_batch: int = Field(default=5000, ge=1)
    # exactly_once: each batch's outputs, changelog records and input offsets commit in one
    # Kafka transaction per input partition (docs/engine-runtime.md); at_least_once: outputs
    # acknowledged, then offsets committed (a crash may repeat an alert id, which dispatch
    # drops). Kept for comparison (the benchmark runs both).
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    # 0: deliver and commit every batch (lowest latency). More: hold batches this long and
    # commit them together (streams/engine/checkpoint.py; outputs wait for the commit).
    engine_commit_interval_s: float = Field(default=0.0, ge=0, le=60)
    # Engine batches: whatever the consumer has fetched, up to this many records. Larger batches
    # amortise the wait for Kafka acknowledgements; nothing waits to fill one.
    engine_batch_max: int = Field(default=1000, ge=1, le=100_000)
    # Producer batching: a short linger lets one request carry a batch's changelog writes,
    # alerts and audit records instead of one request each.
    producer_linger_s: float = Field(default=0.002, ge=0, le=1)
    producer_max_batch_bytes: int = Field(default=256 * 1024, ge=16 * 1024)
    # Dispatch: parallel sends per worker, and the retry schedule for retryable failures.
    dispatch_concurrency: int = Field(default=64, ge=1, le=10_000)
    dispatch_batch_max: int = Field(default=200, ge=1, le=100_000)
    dispatch_batch_within_s: float = Field(default=0.005, gt=0, le=5)
    dispatch_retry_initial_s: float = Field(default=1.0, gt=0)
    dispatch_retry_cap_s: float = Field(default=60.0, gt=0)
    dispatch_retry_deadline_s: float = Field(default=600.0, gt=0)
    sms_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Input records dispatch works on at once (each its own task; docs/dispatch.md).
    dispatch_max_outstanding: int = Field(default=128, ge=1, le=100_000)
    # Delivery records (phone numbers, message bodies) and who-was-notified entries are deleted
    # this long after the episode closed (docs/privacy.md); the sweep looks this often.
    delivery_retention_days: float = Field(default=90.0, gt=0)
    retention_sweep_interval_s: float = Field(default=3600.0, gt=0)
    # How often the worker looks for a changed rota.yaml or API keys file (SIGHUP: at once).
    config_reload_interval_s: float = Field(default=2.0, gt=0)

    # Policy files (escalation.yaml, risk.yaml, rota.yaml, templates/).
    policy_dir: Path = POLICY_DIR

    # Delivery. With no Twilio/SMTP credentials, notifications go to the outbox file.
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_base_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    email_from: str = "missing-alerts@example.org"
    outbox_path: Path | None = None
    # Production refuses to start without Twilio and SMTP unless this says the outbox file is
    # meant (a staging system, a dry run).
    outbox_in_production: bool = False

    # Only with ENVIRONMENT=test: the clock runs this file's number of seconds ahead of the
    # system's (streams/runtime/clock.py), so integration tests can move time forward.
    test_clock_file: Path | None = None

    # Clock skew: events stamped further in the future than this are rejected as invalid.
    clock_skew_tolerance_s: float = Field(default=300.0, ge=0)

    # HTTP API. Keys file: see config/api_keys.dev.yaml (development only) and docs/api.md.
    api_keys_file: Path | None = None
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    api_produce_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # A request body must arrive within this; headers within WEB_HEADER_TIMEOUT_S of connecting
    # (or of the previous response): slow clients cannot hold connections open.
    api_body_timeout_s: float = Field(default=10.0, gt=0, le=120)
    web_header_timeout_s: float = Field(default=15.0, gt=0, le=600)
    # Requests without a valid key, per client address and minute, before 429.
    api_anonymous_per_minute: int = Field(default=60, ge=1)
    # Signed one-click acknowledgement links in messages.
    link_secret: SecretStr | None = None
    link_ttl_s: float = Field(default=48 * 3600, gt=0)

    # Unset: JSON lines in production, console lines elsewhere.
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Worker garbage collection (streams/runtime/gc.py): freeze survivors this often (0: Python's
    # default collector, with its 75-90 ms full collections), and do a full one this often.
    gc_freeze_interval_s: float = Field(default=10.0, ge=0, le=3600)
    gc_full_interval_s: float = Field(default=600.0, gt=0)

    # Prometheus metrics on /metrics (docs/observability.md). Off: no-op recording, empty page;
    # the benchmark compares both to measure what instrumentation costs.
    metrics_enabled: bool = True
    # How often each worker refreshes its consumer-lag gauge (one ListOffsets request per tick).
    metrics_lag_interval_s: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _json_logs_in_production(self) -> Settings:
        if "log_format" not in self.model_fields_set and self.environment == "production":
            self.log_format = "json"
        return self

    @model_validator(mode="after")
    def _credentials_come_in_sets(self) -> Settings:
        if self.twilio_account_sid and not (self.twilio_auth_token and self.twilio_from_number):
            raise ValueError(
                "TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER are required when "
                "TWILIO_ACCOUNT_SID is set"
            )
        if self.kafka_sasl_mechanism and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required when "
                "KAFKA_SASL_MECHANISM is set"
            )
        if self.topic_min_insync_replicas > self.topic_replication:
            raise ValueError("TOPIC_MIN_INSYNC_REPLICAS must not exceed TOPIC_REPLICATION")
        if self.smtp_username and not self.smtp_password:
            raise ValueError("SMTP_PASSWORD is required when SMTP_USERNAME is set")
        if self.environment == "production":
            self._fail_closed_in_production()
        return self

    def _fail_closed_in_production(self) -> None:
        """Production never runs on development defaults: its own link secret (long enough
        that links cannot be forged by guessing it), its own keys file (checked for
        development keys when loaded, streams/web/auth.py), and real notifiers unless the
        operator says in so many words that messages may go to the outbox file."""
        if not (self.link_secret and self.api_keys_file):
            raise ValueError("LINK_SECRET and API_KEYS_FILE are required in production")
        if len(self.link_secret.get_secret_value().encode()) < MIN_LINK_SECRET_BYTES:
            raise ValueError(
                f"LINK_SECRET must be at least {MIN_LINK_SECRET_BYTES} bytes in production"
            )
        if not self.outbox_in_production and not (self.twilio_account_sid and self.smtp_host):
            raise ValueError(
                "production sends SMS through Twilio and email through SMTP: set TWILIO_ACCOUNT_SID"
                " (with TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER) and SMTP_HOST, or set "
                "OUTBOX_IN_PRODUCTION=true to write messages to the outbox file instead"
            )

    @property
    def link_key(self) -> bytes:
        """Production has its own secret (enforced above); elsewhere a fixed development one."""
        if self.link_secret is not None:
            return self.link_secret.get_secret_value().encode()
        return b"missing-alerts-development-link-secret"

    @property
    def development_api_keys_file(self) -> Path:
        return POLICY_DIR / "api_keys.dev.yaml"

    @property
    def resolved_api_keys_file(self) -> Path:
        return self.api_keys_file or self.policy_dir / "api_keys.dev.yaml"

    @property
    def clock_skew_tolerance(self) -> timedelta:
        return timedelta(seconds=self.clock_skew_tolerance_s)

    @property
    def resolved_outbox_path(self) -> Path:
        return self.outbox_path or self.data_dir / "outbox.jsonl"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"

    def bootstrap_servers(self) -> str:
        """The configured broker, else the one scripts/kafka-local recorded it started."""
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        state = self.kafka_local_dir / "bootstrap"
        try:
            value = state.read_text().strip()
        except OSError:
            value = ""
        if not value:
            raise ConfigError(
                f"{ENV_PREFIX}KAFKA_BOOTSTRAP is not set and no local broker is recorded in "
                f"{state} (start one with scripts/kafka-local start)"
            )
        return value


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a validation failure into a one-line ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error("settings", exc, env_prefix=ENV_PREFIX)
        ) from None
