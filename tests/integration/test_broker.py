"""The embedded broker over a real connection: topics made, broker recognised."""

from __future__ import annotations


def test_embedded_broker_is_recognised_by_its_cluster_id(broker_address: str) -> None:
    import asyncio

    from stream_app.settings import Settings
    from stream_app.topics import EMBEDDED_CLUSTER_ID, ensure_topics

    settings = Settings(broker=broker_address, app_id="cluster-id-probe")
    assert asyncio.run(ensure_topics(settings)) == EMBEDDED_CLUSTER_ID
