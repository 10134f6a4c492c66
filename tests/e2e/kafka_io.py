"""Producing and reading topics directly, as an outside client would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream_app.kafka_security import client_kwargs
from stream_app.settings import Settings
from stream_app.topics import ensure_topics


async def produce(
    settings: Settings, records: Iterable[tuple[str, bytes | None, bytes | None]]
) -> None:
    """Send (topic, key, value) records and wait for every ack."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(t, value=v, key=k) for t, k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(settings: Settings, topic: str) -> list[dict[str, object]]:
    """Every record of ``topic`` from the beginning to its current end, as JSON."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not tps:
            await consumer.topics()  # a metadata request: the topic may be new to this client
            tps = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[dict[str, object]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            out.extend(orjson.loads(m.value) for msgs in batch.values() for m in msgs)
        return out
    finally:
        await consumer.stop()
