"""Settings errors name the environment variable and the rule; unknown variables
are reported with the closest known one (issue 12, item 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from stream_app.cli import cli
from stream_app.settings import Settings, unknown_settings


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"inactivity_days": 20},
            "LOYALTY_PULSE_INACTIVITY_DAYS=20 must exceed LOYALTY_PULSE_CHURN_PERIOD_DAYS=30",
        ),
        (
            {"spike_min_days": 40},
            "LOYALTY_PULSE_SPIKE_MIN_DAYS=40 must not exceed LOYALTY_PULSE_SPIKE_BASELINE_DAYS=28",
        ),
        (
            {"heartbeat_interval": 7},
            "LOYALTY_PULSE_HEARTBEAT_INTERVAL=7.0 must be below LOYALTY_PULSE_SESSION_TIMEOUT=6.0",
        ),
    ],
)
def test_a_rule_across_settings_names_both_variables(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_a_misspelt_variable_is_reported_with_the_closest_setting() -> None:
    env = {
        "LOYALTY_PULSE_CHURN_INACTIVITY_DAYS": "30",
        "LOYALTY_PULSE_WINDOW_DAYS": "[7]",
        "LOYALTY_PULSE_BROKER": "kafka:9092",
        "LOYALTY_PULSE_NONSENSE_XYZ": "1",
        "PATH": "/usr/bin",
    }
    assert unknown_settings(env) == [
        "LOYALTY_PULSE_CHURN_INACTIVITY_DAYS is not a setting and is ignored; "
        "did you mean LOYALTY_PULSE_INACTIVITY_DAYS?",
        "LOYALTY_PULSE_NONSENSE_XYZ is not a setting and is ignored; "
        "`loyalty-pulse settings` lists them",
        "LOYALTY_PULSE_WINDOW_DAYS is not a setting and is ignored; "
        "did you mean LOYALTY_PULSE_WINDOWS_DAYS?",
    ]


def test_the_cli_warns_of_unknown_variables_and_stops_on_a_bad_value_naming_it() -> None:
    env = {
        "LOYALTY_PULSE_CHURN_INACTIVITY_DAYS": "30",
        "LOYALTY_PULSE_REPORTING_TZ": "Mars/Olympus",
    }
    result = CliRunner().invoke(cli, ["replay", "-"], env=env)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "did you mean LOYALTY_PULSE_INACTIVITY_DAYS?" in output
    assert "LOYALTY_PULSE_REPORTING_TZ='Mars/Olympus': unknown time zone" in output


# -- secured Kafka (issue 13, item 3) ------------------------------------------


@pytest.mark.parametrize(
    ("value", "servers"),
    [
        ("kafka://k1:9092", "k1:9092"),
        ("kafka://k1:9092,k2:9092", "k1:9092,k2:9092"),
        ("kafka://k1:9092;k2:9092", "k1:9092,k2:9092"),  # Faust's separator
        ("KAFKA://k1:9092/, kafka://k2:9092", "k1:9092,k2:9092"),
        ("k1:9092,k2:9092", "k1:9092,k2:9092"),
    ],
)
def test_the_broker_may_be_given_in_fausts_url_form(value: str, servers: str) -> None:
    assert Settings(broker=value).broker == servers


@pytest.mark.parametrize("value", ["http://k1:9092", "k1:9092,redis://k2:6379", " , "])
def test_a_broker_url_of_another_scheme_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="broker address"):
        Settings(broker=value)


def test_a_bad_broker_url_is_refused_naming_the_variable() -> None:
    result = CliRunner().invoke(cli, ["replay", "-"], env={"LOYALTY_PULSE_BROKER": "http://k:1"})
    assert result.exit_code == 2
    output = " ".join(result.output.replace("│", " ").split())
    assert "LOYALTY_PULSE_BROKER='http://k:1': http:// is no broker address" in output


SASL: dict[str, Any] = {
    "kafka_sasl_mechanism": "PLAIN",
    "kafka_sasl_username": "u",
    "kafka_sasl_password": "p",
}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL"},
            "LOYALTY_PULSE_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs "
            "LOYALTY_PULSE_KAFKA_SASL_MECHANISM \\(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512\\)",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN"},
            "LOYALTY_PULSE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT needs "
            "LOYALTY_PULSE_KAFKA_SASL_USERNAME",
        ),
        (
            {**SASL, "kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": ""},
            "LOYALTY_PULSE_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs "
            "LOYALTY_PULSE_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_sasl_username": "u"},
            "LOYALTY_PULSE_KAFKA_SASL_USERNAME is set but "
            "LOYALTY_PULSE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL",
        ),
        (
            {**SASL, "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_cafile": "/ca"},
            "LOYALTY_PULSE_KAFKA_SSL_CAFILE is set but "
            "LOYALTY_PULSE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/c.pem"},
            "LOYALTY_PULSE_KAFKA_SSL_CERTFILE and LOYALTY_PULSE_KAFKA_SSL_KEYFILE come together",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"},
            "LOYALTY_PULSE_KAFKA_SSL_CAFILE=/nonexistent/ca.pem: no such file",
        ),
    ],
)
def test_kafka_security_settings_are_checked_naming_the_variables(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_an_unknown_security_protocol_or_mechanism_is_refused() -> None:
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        Settings(kafka_security_protocol="TLS")
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="GSSAPI")


def test_tls_files_that_exist_are_accepted(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-")
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        **SASL,
        kafka_ssl_cafile=str(tmp_path / "ca.pem"),
        kafka_ssl_certfile=str(tmp_path / "client.pem"),
        kafka_ssl_keyfile=str(tmp_path / "client.key"),
    )
    assert settings.kafka_sasl_password.get_secret_value() == "p"


def test_a_redis_password_is_not_in_the_settings_repr() -> None:
    settings = Settings(redis_url="rediss://:s3cret@cache.example:6380/0")
    assert settings.redis_url.endswith("@cache.example:6380/0")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)
