"""The results topic: where final results live before they count as published.

Redis serves the KPIs; Kafka keeps them (spec §4). Before a worker writes a
final day's partial totals, a merged final document or a raised final day to
the serving store, it appends it to ``<app_id>-results`` (one partition,
``cleanup.policy=compact``, keys in stream_app/keys.py ``ResultKey``) and waits
for the broker's ack. A serving store that comes back empty is refilled from
this topic (stream_app/refill.py), so nothing Redis held is lost with it.

``ResultsLog`` is what the day close needs: ``append`` (on the broker when it
returns) and ``read`` (the last value of every key, tombstoned keys left out).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream_app.kafka_security import client_kwargs
from stream_app.settings import Settings

ResultRecord = tuple[bytes, bytes | None]  # key, value (None: a tombstone)


class ResultsLog(Protocol):
    async def append(self, records: Sequence[ResultRecord]) -> None:
        """Append ``records`` in order; they are on the broker when this returns."""

    async def read(self) -> dict[bytes, bytes]:
        """The last value of every key up to the end of the log when called."""


def last_values(records: Sequence[ResultRecord]) -> dict[bytes, bytes]:
    """What a compacted topic keeps of ``records``: the last value per key,
    keys whose last record is a tombstone left out."""
    out: dict[bytes, bytes] = {}
    for key, value in records:
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


Send = Callable[..., Awaitable[Awaitable[Any]]]


class KafkaResultsLog:
    """The results topic of a worker: appends go through the worker's producer
    (``send``: Faust's ``app.producer.send``), reads through a consumer of its
    own with no group, from the beginning to the end offset."""

    def __init__(self, settings: Settings, send: Send, read_timeout_s: float = 120.0) -> None:
        self.settings = settings
        self.topic = settings.topic_results
        self.send = send
        self.read_timeout_s = read_timeout_s

    async def append(self, records: Sequence[ResultRecord]) -> None:
        deliveries = [
            await self.send(self.topic, key, value, 0, None, None) for key, value in records
        ]
        await asyncio.gather(*deliveries)

    async def read(self) -> dict[bytes, bytes]:
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        try:
            return await asyncio.wait_for(self._read(consumer), self.read_timeout_s)
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer) -> dict[bytes, bytes]:
        tp = TopicPartition(self.topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[ResultRecord] = []
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
            for message in batches.get(tp, []):
                if message.offset < end and message.key is not None:
                    records.append((message.key, message.value))
        return last_values(records)


class MemoryResultsLog:
    """The results topic in memory (tests and the in-memory harness)."""

    def __init__(self) -> None:
        self.records: list[ResultRecord] = []

    async def append(self, records: Sequence[ResultRecord]) -> None:
        self.records.extend(records)

    async def read(self) -> dict[bytes, bytes]:
        return last_values(self.records)
