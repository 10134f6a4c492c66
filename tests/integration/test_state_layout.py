"""The worker refuses state kept for another partition count (stream_app/state_layout.py),
against the real embedded broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from loyalty_pulse_dev.processes import free_port
from stream_app.kafka_security import client_kwargs
from stream_app.settings import Settings
from stream_app.state_layout import (
    StateLayoutError,
    check_state_layout,
    partition_counts,
    state_topics,
)
from tests.conftest import new_settings


async def create_topics(settings: Settings, topics: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, n, 1) for name, n in topics.items()])
    finally:
        await admin.close()


@pytest.fixture
def settings(broker_address: str, redis_url: str, tmp_path: Path) -> Settings:
    return new_settings(broker_address, redis_url, tmp_path, "state-layout")  # 4 partitions


def test_a_new_app_id_has_no_state_and_passes(settings: Settings) -> None:
    assert asyncio.run(partition_counts(settings)) == {}
    asyncio.run(check_state_layout(settings))


def test_state_of_the_same_partition_count_passes(settings: Settings) -> None:
    asyncio.run(create_topics(settings, dict.fromkeys(state_topics(settings), 4)))
    assert asyncio.run(partition_counts(settings)) == dict.fromkeys(state_topics(settings), 4)
    asyncio.run(check_state_layout(settings))


def test_state_kept_for_another_partition_count_is_refused_with_the_way_forward(
    settings: Settings,
) -> None:
    """The operator gave the input topics 8 partitions and set LOYALTY_PULSE_PARTITIONS=8;
    the changelogs still have the 4 the state was written with."""
    customers = f"{settings.app_id}-customers-changelog"
    asyncio.run(create_topics(settings, {customers: 4, settings.topic_rerouted: 4}))
    grown = settings.model_copy(update={"partitions": 8})
    with pytest.raises(StateLayoutError) as caught:
        asyncio.run(check_state_layout(grown))
    message = str(caught.value)
    assert f"{customers!r} has 4" in message
    assert f"{settings.topic_rerouted!r} has 4" in message
    assert "LOYALTY_PULSE_PARTITIONS=8" in message
    assert "new LOYALTY_PULSE_APP_ID" in message and "replay the input" in message
    # under a new app id the same broker is fine
    fresh = grown.model_copy(update={"app_id": f"{settings.app_id}-p8"})
    asyncio.run(check_state_layout(fresh))


def test_an_unreachable_broker_is_a_connection_error(tmp_path: Path) -> None:
    settings = Settings(broker=f"127.0.0.1:{free_port()}", data_dir=tmp_path)
    with pytest.raises(ConnectionError, match="cannot reach the broker"):
        asyncio.run(check_state_layout(settings, timeout_s=2))
