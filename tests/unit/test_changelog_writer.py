"""ChangelogWriter: the local store never gets ahead of its changelog."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.serializers import codecs
from faust.types import TP

from stream_app.faust_adapter import ChangelogWriter
from stream_app.kpi.customer import CustomerState
from stream_app.settings import Settings
from stream_app.worker import build


class _Batch:
    def append(self, timestamp: Any, key: bytes, value: bytes) -> object:
        return object()

    def close(self) -> None:
        pass


class _HeldProducer:
    """aiokafka's producer as ChangelogWriter uses it; deliveries wait for the test."""

    def __init__(self) -> None:
        self.deliveries: list[asyncio.Future[Any]] = []

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


async def test_the_local_store_is_written_only_once_its_changelog_is_on_the_broker(
    tmp_path: Path,
) -> None:
    """A store ahead of its changelog (a kill -9 between the two) would keep writes the
    changelog never got: a restart with that data directory skips their input as
    applied, and whoever recovers the partition from the changelog misses them."""
    worker = build(Settings(store="rocksdb", data_dir=tmp_path, app_id="pin", partitions=2))
    table = worker.tables.customers
    producer = _HeldProducer()
    writer = ChangelogWriter(worker.app, end_markers=False)
    writer._producer = lambda: producer  # type: ignore[method-assign]
    writer.put(table, 1, "alice", CustomerState(purchases=1))
    raw_key = codecs.dumps(table.key_serializer, "alice")  # type: ignore[attr-defined]
    db = table.data._db_for_partition(1)  # type: ignore[attr-defined]
    settling = asyncio.create_task(writer.settle())
    while not producer.deliveries:
        await asyncio.sleep(0)
    assert db.get(raw_key) is None  # sent, not delivered: the store still holds nothing
    producer.deliveries[0].set_result(SimpleNamespace(offset=41))
    await settling
    assert db.get(raw_key) is not None
    assert table.data.persisted_offset(TP(table.changelog_topic.get_topic_name(), 1)) == 41  # type: ignore[attr-defined]
