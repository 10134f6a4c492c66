"""The LOYALTY_PULSE_KAFKA_* settings as aiokafka arguments and Faust credentials
(issue 13, item 3); the password never shows."""

from __future__ import annotations

import ssl

import faust
from typer.testing import CliRunner

from stream_app.app import faust_settings
from stream_app.cli import cli
from stream_app.kafka_security import client_kwargs, faust_credentials
from stream_app.settings import Settings

SASL = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "api-key",
    "kafka_sasl_password": "s3cret-pw",
}


def test_plaintext_is_the_default_and_has_no_tls_or_sasl() -> None:
    kwargs = client_kwargs(Settings(broker="a:9092,b:9092"))
    assert kwargs == {"bootstrap_servers": ["a:9092", "b:9092"], "security_protocol": "PLAINTEXT"}
    assert faust_credentials(Settings()) is None
    assert faust_settings(Settings())["broker_credentials"] is None


def test_sasl_ssl_gives_every_client_tls_and_the_credentials() -> None:
    settings = Settings(**SASL)  # type: ignore[arg-type]
    kwargs = client_kwargs(settings)
    assert isinstance(kwargs.pop("ssl_context"), ssl.SSLContext)
    assert kwargs == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "api-key",
        "sasl_plain_password": "s3cret-pw",
    }
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.protocol.value, creds.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (creds.username, creds.password) == ("api-key", "s3cret-pw")


def test_sasl_plaintext_has_no_tls() -> None:
    settings = Settings(**SASL | {"kafka_security_protocol": "SASL_PLAINTEXT"})  # type: ignore[arg-type]
    assert "ssl_context" not in client_kwargs(settings)
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_PLAINTEXT"


def test_ssl_gives_faust_an_ssl_context() -> None:
    settings = Settings(kafka_security_protocol="SSL")
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.SSLCredentials)
    assert client_kwargs(settings)["security_protocol"] == "SSL"


def test_the_faust_app_carries_the_credentials() -> None:
    creds = faust_settings(Settings(**SASL))["broker_credentials"]  # type: ignore[arg-type]
    assert isinstance(creds, faust.SASLCredentials)


def test_the_password_is_never_shown() -> None:
    settings = Settings(**SASL)  # type: ignore[arg-type]
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in str(settings.model_dump())
    assert "s3cret-pw" not in settings.named("kafka_sasl_password")
    assert "s3cret-pw" not in repr(faust_credentials(settings))
    env = {"LOYALTY_PULSE_KAFKA_SASL_PASSWORD": "s3cret-pw"}
    for args in (["settings"], ["settings", "--env"], ["settings", "--markdown"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 0
        assert "s3cret-pw" not in result.output


def test_a_refused_sasl_setup_does_not_echo_the_password() -> None:
    env = {"LOYALTY_PULSE_KAFKA_SASL_PASSWORD": "s3cret-pw"}  # protocol stays PLAINTEXT
    result = CliRunner().invoke(cli, ["replay", "-"], env=env)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "LOYALTY_PULSE_KAFKA_SASL_PASSWORD is set but" in output
    assert "s3cret-pw" not in result.output
