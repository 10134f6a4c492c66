"""How every Kafka client of loyalty-pulse connects: bootstrap servers, TLS and SASL.

The one place that turns the ``LOYALTY_PULSE_KAFKA_*`` settings into aiokafka
client arguments (``client_kwargs``) and into Faust's broker credentials
(``faust_credentials``); the admin client, the producers of replay and simulate,
the worker and the test and benchmark clients all go through it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from stream_app.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (None otherwise): the CA file if given,
    else the system's CAs; the client certificate and key if given."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile or None,
        certfile=settings.kafka_ssl_certfile or None,
        keyfile=settings.kafka_ssl_keyfile or None,
    )
    return context


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.broker.split(","),
        "security_protocol": protocol,
    }
    if context := ssl_context(settings):
        kwargs["ssl_context"] = context
    if protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return kwargs


def faust_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """``broker_credentials`` of the faust.App (None: PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


@asynccontextmanager
async def admin_client(
    settings: Settings, timeout_s: float = 30.0
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit; ConnectionError naming the broker
    when it cannot be reached."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=int(timeout_s * 1000))
    try:
        await admin.start()
    except KafkaError as exc:
        raise ConnectionError(f"cannot reach the broker at {settings.broker}: {exc}") from exc
    try:
        yield admin
    finally:
        await admin.close()
