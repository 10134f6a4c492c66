"""The results topic on the embedded broker over a real connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream_app.kafka_security import admin_client, client_kwargs
from stream_app.results_log import KafkaResultsLog
from stream_app.topics import ensure_topics
from tests.conftest import new_settings


async def test_the_results_topic_is_compacted_and_reads_back_the_last_value_per_key(
    broker_address: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = new_settings(broker_address, "redis://127.0.0.1:1/0", tmp_path, request.node.name)
    await ensure_topics(settings)
    async with admin_client(settings) as admin:
        resource = ConfigResource(ConfigResourceType.TOPIC, settings.topic_results)
        (response,) = await admin.describe_configs([resource])
        configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    assert configs.get("cleanup.policy") == "compact"

    producer = AIOKafkaProducer(**client_kwargs(settings))
    await producer.start()

    async def send(topic: str, key: bytes, value: bytes | None, partition: int, *_: Any) -> Any:
        return await producer.send(topic, value, key=key, partition=partition)

    try:
        log = KafkaResultsLog(settings, send)
        assert await log.read() == {}
        await log.append([(b"final/2024-01-01", b"one"), (b"final/2024-01-02", b"two")])
        await log.append([(b"final/2024-01-01", None), (b"final/2024-01-02", b"three")])
        await log.append([(f"partial/2024-01-03/{p}".encode(), b"x" * 100_000) for p in range(30)])
        values = await log.read()
    finally:
        await producer.stop()
    assert values.pop(b"final/2024-01-02") == b"three"
    assert len(values) == 30 and all(v == b"x" * 100_000 for v in values.values())
