"""One frozen settings object; every knob has an env var ``LOYALTY_PULSE_<NAME>``."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_app.contract import ContractConfig, EventType
from stream_app.currency import minor_digits
from stream_app.kpi.params import KpiParams

ENV_PREFIX = "LOYALTY_PULSE_"


class Settings(BaseSettings):
    """Configuration of a worker and of the CLI commands that talk to the broker."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    broker: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers, host:port[,host:port] (or kafka://host:port[,...])",
    )
    app_id: str = Field("loyalty-pulse", description="Consumer group and prefix of internal topics")
    partitions: int = Field(8, ge=1, le=1024, description="Partition count of the input topics")
    topic_purchases: str = Field("loyalty.purchases", description="Purchase topic")
    topic_enrollments: str = Field("loyalty.enrollments", description="Enrollment topic")
    topic_redemptions: str = Field("loyalty.redemptions", description="Redemption topic")
    topic_dead_letter: str = Field(
        "loyalty.dead-letter", description="Rejected events with their reason"
    )
    store: Literal["rocksdb", "memory"] = Field(
        "rocksdb", description="Table store: rocksdb (rocksdict) or memory"
    )
    data_dir: Path = Field(
        Path("var/loyalty-pulse"), description="Where a worker keeps its local state"
    )
    state_cache_customers: int = Field(
        100_000,
        ge=1,
        description="Customers a worker keeps decoded (~3.5 kB each), split evenly over the "
        "partitions; the others as their ~130 B records (docs/performance.md)",
    )
    web_host: str = Field("127.0.0.1", description="HTTP view bind address")
    web_port: int = Field(6066, ge=1, le=65535, description="HTTP view port")
    currency: str = Field(
        "USD", min_length=3, max_length=3, description="ISO 4217 currency of amounts"
    )
    max_message_bytes: int = Field(
        65536, ge=256, description="Larger event payloads are rejected (too_large)"
    )
    future_skew_seconds: int = Field(
        300, ge=0, description="How far ahead of the clock occurred_at may be"
    )
    dedup_horizon_days: int = Field(
        7, ge=1, description="Event-time span over which redeliveries are dropped"
    )
    idle_timeout_seconds: int = Field(
        30,
        ge=1,
        description=(
            "A partition with no new record for this long (none unread) stops holding back "
            "the watermark"
        ),
    )
    windows_days: tuple[int, ...] = Field(
        (30, 90, 365), description="Rolling KPI windows in days (JSON list, e.g. [30,90,365])"
    )
    churn_period_days: int = Field(30, ge=1, description="Churn period P (days)")
    inactivity_days: int = Field(
        90, ge=2, description="Inactivity threshold T (days); must exceed P"
    )
    lateness_days: float = Field(
        1.0, ge=0, description="Allowed lateness: a day is final this long after it ends"
    )
    history_days: int = Field(400, ge=1, description="Final days kept for /kpis?as_of")
    point_value: Decimal = Field(
        Decimal("0.01"), ge=0, description="Cost of a point when reward_value is absent"
    )
    margin: Decimal = Field(
        Decimal("1.0"),
        ge=0,
        description="Gross margin on revenue (0.3 = 30 %), used by CLV and program ROI",
    )
    program_fixed_cost_per_day: Decimal = Field(
        Decimal("0"),
        ge=0,
        description="The program's running cost per day in the currency (platform, staff); "
        "program_cost adds it times the longest window",
    )
    lift_confidence: Decimal = Field(
        Decimal("0.95"),
        gt=0,
        lt=1,
        description="Confidence of the lift, incremental revenue and ROI intervals",
    )
    cohort_months: int = Field(
        12, ge=1, le=120, description="Cohort rows (calendar months) in /kpis"
    )
    max_years: int = Field(10, ge=1, description="Cap on expected customer lifetime (years)")
    reporting_tz: str = Field("UTC", description="Time zone of business days (IANA name)")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Serving store for merged KPIs and history (rediss:// for TLS; a "
        "password in the URL is never shown)",
        repr=False,  # it may hold a password
    )
    dead_letter_payload_bytes: int = Field(
        4096, ge=64, description="Raw payload bytes kept in a dead-letter record"
    )
    topic_alerts: str = Field(
        "loyalty.alerts", description="Topic of churn-spike alert events (raised, resolved)"
    )
    spike_baseline_days: int = Field(
        28, ge=1, description="Churn spike: final days before D whose churn rates form the baseline"
    )
    spike_min_days: int = Field(
        7, ge=1, description="Churn spike: baseline days with a churn rate needed for a verdict"
    )
    spike_factor: Decimal = Field(
        Decimal("1.5"), gt=0, description="Churn spike: churn_rate >= baseline x this factor"
    )
    spike_min_churned: int = Field(
        20, ge=0, description="Churn spike: at least this many churned customers on day D"
    )
    metrics_max_channels: int = Field(
        20,
        ge=1,
        description="/metrics: channels exported by name (most orders over the longest "
        'window); the rest are summed as channel="other"',
    )
    metrics_max_stores: int = Field(
        20,
        ge=1,
        description="/metrics: stores exported by name (most revenue over the longest "
        'window); the rest are summed as store="other"',
    )
    metrics_max_tiers: int = Field(
        10,
        ge=1,
        description="/metrics: tiers exported by name (most members); the rest are summed "
        'as tier="other"',
    )
    dashboard_locale: str = Field(
        "en-US",
        description="Dashboard (GET /): BCP 47 locale of its numbers and dates, e.g. de-DE",
    )
    session_timeout: float = Field(6.0, gt=0, description="Consumer group session timeout (s)")
    heartbeat_interval: float = Field(1.0, gt=0, description="Consumer group heartbeat (s)")
    rebalance_timeout: float = Field(5.0, gt=0, description="Consumer group rebalance timeout (s)")
    commit_interval: float = Field(
        2.8, gt=0, description="How often processed input offsets are committed (s)"
    )
    changelog_end_markers: Literal["auto", "on", "off"] = Field(
        "auto",
        description="End each changelog write with a one-record batch; auto: on for the "
        "embedded broker, whose end offsets are wrong after multi-record batches",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Worker log level"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "", description="SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    kafka_sasl_username: str = Field("", description="SASL_*: user name (API key)")
    kafka_sasl_password: SecretStr = Field(
        SecretStr(""), description="SASL_*: password (API secret); never shown or logged"
    )
    kafka_ssl_cafile: str = Field(
        "", description="SSL, SASL_SSL: CA bundle (PEM) to verify the broker; empty: system CAs"
    )
    kafka_ssl_certfile: str = Field(
        "", description="SSL, SASL_SSL: client certificate (PEM) for mutual TLS"
    )
    kafka_ssl_keyfile: str = Field(
        "", description="SSL, SASL_SSL: private key (PEM) of the client certificate"
    )

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(w < 1 for w in value):
            raise ValueError("every window must be at least 1 day")
        return value

    @field_validator("broker")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        return bootstrap_servers(value)

    @field_validator("reporting_tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        minor_digits(self.currency)  # raises ValueError for an unknown currency
        _check_locale(self.dashboard_locale)
        n = self.named
        if self.inactivity_days <= self.churn_period_days:
            raise ValueError(
                f"{n('inactivity_days')} must exceed {n('churn_period_days')}: the inactivity "
                f"threshold T ({self.inactivity_days}) must exceed the churn period P "
                f"({self.churn_period_days})"
            )
        if self.spike_min_days > self.spike_baseline_days:
            raise ValueError(
                f"{n('spike_min_days')} must not exceed {n('spike_baseline_days')}: a verdict "
                "needs that many days of the baseline"
            )
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError(
                f"{n('heartbeat_interval')} must be below {n('session_timeout')}: the group "
                "drops a worker whose heartbeats are slower than its session"
            )
        _check_kafka_security(self)
        return self

    def named(self, field: str) -> str:
        """A setting as it is written in the environment, e.g. LOYALTY_PULSE_INACTIVITY_DAYS=90."""
        return f"{env_name(field)}={env_value(getattr(self, field))}"

    @cached_property
    def topics(self) -> dict[EventType, str]:
        """Input topic of each event type."""
        return {
            EventType.PURCHASE: self.topic_purchases,
            EventType.ENROLLMENT: self.topic_enrollments,
            EventType.REDEMPTION: self.topic_redemptions,
        }

    @property
    def topic_rerouted(self) -> str:
        """Internal topic for events a producer keyed by something else."""
        return f"{self.app_id}-rerouted"

    @property
    def topic_results(self) -> str:
        """Internal compacted topic that keeps every final result (stream_app/results_log.py)."""
        return f"{self.app_id}-results"

    @property
    def cache_per_partition(self) -> int:
        """Customers each partition keeps decoded (stream_app/kpi/customer_cache.py)."""
        return max(1, self.state_cache_customers // self.partitions)

    @cached_property
    def kpi_params(self) -> KpiParams:
        return KpiParams(
            windows=self.windows_days,
            churn_period=self.churn_period_days,
            inactivity=self.inactivity_days,
            point_value=self.point_value,
            margin=self.margin,
            max_years=self.max_years,
            program_fixed_cost_per_day=self.program_fixed_cost_per_day,
            lift_confidence=self.lift_confidence,
            cohort_months=self.cohort_months,
            reporting_tz=self.reporting_tz,
            currency=self.currency,
            minor_digits=minor_digits(self.currency),
        )

    @cached_property
    def contract(self) -> ContractConfig:
        return ContractConfig(
            currency=self.currency,
            minor_digits=minor_digits(self.currency),
            max_message_bytes=self.max_message_bytes,
            future_skew_ms=self.future_skew_seconds * 1000,
        )

    @property
    def web_url(self) -> str:
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "::") else self.web_host  # noqa: S104
        return f"http://{host}:{self.web_port}"


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def unknown_settings(environ: Mapping[str, str]) -> list[str]:
    """A warning for every LOYALTY_PULSE_* variable that is no setting, naming the
    closest one (a misspelt variable would otherwise be ignored without a word)."""
    known = [name.upper() for name in Settings.model_fields]
    out = []
    for var in sorted(environ):
        name = var.removeprefix(ENV_PREFIX)
        if name == var or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = (
            f"; did you mean {ENV_PREFIX}{close[0]}?"
            if close
            else "; `loyalty-pulse settings` lists them"
        )
        out.append(f"{var} is not a setting and is ignored{hint}")
    return out


def bootstrap_servers(value: str) -> str:
    """host:port[,host:port] from that or Faust's URL form kafka://host:port[;host:port]."""
    servers = []
    for item in value.replace(";", ",").split(","):
        server = item.strip()
        if "://" in server:
            scheme, _, server = server.partition("://")
            if scheme.lower() != "kafka":
                raise ValueError(
                    f"{scheme}:// is no broker address: give host:port[,host:port] or "
                    "kafka://host:port[,host:port]"
                )
        server = server.rstrip("/")
        if server:
            servers.append(server)
    if not servers:
        raise ValueError("no broker address: give host:port[,host:port]")
    return ",".join(servers)


def _check_kafka_security(s: Settings) -> None:
    n, protocol = s.named, s.kafka_security_protocol
    sasl_fields = ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
    ssl_fields = ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    given = {f for f in (*sasl_fields, *ssl_fields) if _given(getattr(s, f))}
    if protocol.startswith("SASL_"):
        for field in sasl_fields:
            if field not in given:
                raise ValueError(
                    f"{n('kafka_security_protocol')} needs {env_name(field)}"
                    + (" (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)" if "mechanism" in field else "")
                )
    elif given & set(sasl_fields):
        field = sorted(given & set(sasl_fields))[0]
        raise ValueError(
            f"{env_name(field)} is set but {n('kafka_security_protocol')} does not use SASL: "
            "set it to SASL_SSL or SASL_PLAINTEXT, or unset the SASL settings"
        )
    if not protocol.endswith("SSL") and given & set(ssl_fields):
        field = sorted(given & set(ssl_fields))[0]
        raise ValueError(
            f"{env_name(field)} is set but {n('kafka_security_protocol')} does not use TLS: "
            "set it to SSL or SASL_SSL, or unset the SSL settings"
        )
    if ("kafka_ssl_certfile" in given) != ("kafka_ssl_keyfile" in given):
        raise ValueError(
            f"{env_name('kafka_ssl_certfile')} and {env_name('kafka_ssl_keyfile')} come "
            "together: a client certificate needs its private key"
        )
    for field in ssl_fields:
        if field in given and not Path(getattr(s, field)).is_file():
            raise ValueError(f"{n(field)}: no such file")


def _given(value: object) -> bool:
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


def _check_locale(tag: str) -> None:
    try:
        Locale.parse(tag, sep="-")
    except (ValueError, UnknownLocaleError) as exc:
        raise ValueError(f"dashboard_locale: not a known locale: {tag!r}") from exc


def settings_table() -> list[tuple[str, str, str]]:
    """(env var, default, description) of every setting, for docs and --help."""
    return [
        (env_name(name), env_value(field.default), field.description or "")
        for name, field in Settings.model_fields.items()
    ]


def env_value(value: object) -> str:
    """A default as it is written in an environment variable."""
    if isinstance(value, tuple | list):
        return json.dumps(list(value), separators=(",", ":"))
    return str(value)


def settings_markdown() -> str:
    lines = ["| env var | default | meaning |", "|---|---|---|"]
    lines += [
        f"| `{var}` | `{default}` | {meaning} |" for var, default, meaning in settings_table()
    ]
    return "\n".join(lines)


def settings_env_file() -> str:
    lines = [
        "# loyalty-pulse settings with their defaults (`loyalty-pulse settings --env`).",
        "# loyalty-pulse reads environment variables only; it does not load this file itself.",
        "# Copy it to .env, edit, then: set -a; . ./.env; set +a",
        "# (or: docker run --env-file .env)",
    ]
    for var, default, meaning in settings_table():
        lines += ["", f"# {meaning}", f"{var}={default}"]
    return "\n".join(lines) + "\n"
