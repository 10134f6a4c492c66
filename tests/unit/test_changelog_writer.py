"""ChangelogWriter: the local store never gets ahead of its changelog, and a
customer's records reach the broker in one record batch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from faust.serializers import codecs
from faust.types import TP

from stream_app.contract import Purchase
from stream_app.faust_adapter import ChangelogWriter
from stream_app.keys import END_MARKER_KEY, DayKey
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.days import DAY_MS
from stream_app.kpi.history import CustomerHistory
from stream_app.settings import Settings
from stream_app.worker import build
from tables.state import customer_records


class _Batch:
    def append(self, timestamp: Any, key: bytes, value: bytes) -> object:
        return object()

    def close(self) -> None:
        pass

    def size(self) -> int:
        return 0


class _HeldProducer:
    """aiokafka's producer as ChangelogWriter uses it; deliveries wait for the test."""

    def __init__(self) -> None:
        self.deliveries: list[asyncio.Future[Any]] = []
        self._message_accumulator = SimpleNamespace(_batch_size=16384, _compression_type=0)

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


class _RecordingProducer:
    """aiokafka's producer with real batch builders of ``batch_size`` bytes; every
    batch submitted is kept with its records, and delivered at once."""

    def __init__(self, batch_size: int) -> None:
        self._message_accumulator = SimpleNamespace(_batch_size=batch_size, _compression_type=0)
        self.batches: list[list[bytes]] = []
        self._open: dict[int, list[bytes]] = {}

    def create_batch(self) -> Any:
        builder = BatchBuilder(self._message_accumulator._batch_size, 0)
        keys: list[bytes] = []
        real_append = builder.append

        def append(timestamp: Any, key: bytes, value: bytes | None) -> object:
            metadata = real_append(timestamp=timestamp, key=key, value=value)
            if metadata is not None:
                keys.append(key)
            return metadata

        builder.append = append  # type: ignore[method-assign]
        self._open[id(builder)] = keys
        return builder

    async def send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        keys = self._open.pop(id(batch), None)
        if keys is None:  # a builder the writer made itself, for a group larger than a batch
            keys = [r.key for r in _records_of(batch)]
        self.batches.append(keys)
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.set_result(SimpleNamespace(offset=sum(map(len, self.batches)) - 1))
        return delivery


def _records_of(batch: Any) -> list[Any]:
    from aiokafka.record.default_records import DefaultRecordBatch

    return list(DefaultRecordBatch(bytes(batch._build())))


async def test_a_customers_records_share_one_record_batch_and_deletes_reach_the_store(
    tmp_path: Path,
) -> None:
    """A customer's head and day records are appended by the broker all or none:
    a crash between two batches must not keep a head without its days."""
    worker = build(Settings(store="rocksdb", data_dir=tmp_path, app_id="grp", partitions=1))
    table = worker.tables.customers
    producer = _RecordingProducer(batch_size=600)
    writer = ChangelogWriter(worker.app, end_markers=False)
    writer._producer = lambda: producer  # type: ignore[method-assign]
    groups: list[list[bytes]] = []
    for n in range(12):
        customer = f"customer-{n}"
        state = CustomerState(purchases=n)
        for day in range(19_000, 19_000 + n % 4 + 1):
            state.history.add(Purchase(f"e{n}-{day}", customer, day * DAY_MS, 100, None), day)
        entries = customer_records(customer, state)
        groups.append([codecs.dumps(table.key_serializer, k) for k, _ in entries])  # type: ignore[attr-defined]
        writer.put_all(table, 0, entries)
    # one customer with more days than a batch holds: a batch of its own
    big = CustomerState()
    for day in range(19_000, 19_040):
        big.history.add(Purchase(f"b{day}", "big", day * DAY_MS, 100, None), day)
    big_entries = customer_records("big", big)
    groups.append([codecs.dumps(table.key_serializer, k) for k, _ in big_entries])  # type: ignore[attr-defined]
    writer.put_all(table, 0, big_entries)
    await writer.settle()

    assert [key for batch in producer.batches for key in batch] == [k for g in groups for k in g]
    assert len(producer.batches) > 3  # the limit did split the groups over batches
    where = {key: i for i, batch in enumerate(producer.batches) for key in batch}
    for group in groups:
        assert len({where[key] for key in group}) == 1, "a group was split over batches"
    assert producer.batches[-1] == groups[-1]

    db = table.data._db_for_partition(0)  # type: ignore[attr-defined]
    day_key = DayKey("customer-3", 19_000).encode()
    assert db.get(day_key) is not None
    state = CustomerState()
    state.history = CustomerHistory(dropped={19_000})
    writer.put_all(table, 0, customer_records("customer-3", state))
    await writer.settle()
    assert db.get(day_key) is None  # the tombstone deleted the day
    assert db.get(DayKey("customer-3", 19_001).encode()) is not None


async def test_with_end_markers_every_batch_starts_with_one(tmp_path: Path) -> None:
    """The embedded broker's end offset is its last batch's base + 1, so a recovery
    after a kill -9 that came before the end marker applies only the first record
    of a multi-record last batch. That record is a marker, never a customer's day
    record without its head: the batch is left out whole."""
    worker = build(Settings(store="rocksdb", data_dir=tmp_path, app_id="lead", partitions=1))
    table = worker.tables.customers
    producer = _RecordingProducer(batch_size=1400)
    writer = ChangelogWriter(worker.app, end_markers=True)
    writer._producer = lambda: producer  # type: ignore[method-assign]
    ended: list[TP] = []

    async def end_marker(tp: TP) -> Any:
        ended.append(tp)
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.set_result(SimpleNamespace(offset=sum(map(len, producer.batches))))
        return delivery

    writer._send_end_marker = end_marker  # type: ignore[method-assign]
    groups: list[list[bytes]] = []
    for n in range(12):
        customer = f"customer-{n}"
        state = CustomerState(purchases=n)
        for day in range(19_000, 19_000 + n % 4 + 1):
            state.history.add(Purchase(f"e{n}-{day}", customer, day * DAY_MS, 100, None), day)
        entries = customer_records(customer, state)
        groups.append([codecs.dumps(table.key_serializer, k) for k, _ in entries])  # type: ignore[attr-defined]
        writer.put_all(table, 0, entries)
    big = CustomerState()
    for day in range(19_000, 19_060):
        big.history.add(Purchase(f"b{day}", "big", day * DAY_MS, 100, None), day)
    big_entries = customer_records("big", big)
    groups.append([codecs.dumps(table.key_serializer, k) for k, _ in big_entries])  # type: ignore[attr-defined]
    writer.put_all(table, 0, big_entries)
    await writer.settle()

    assert len(producer.batches) > 3 and len(ended) == 1
    assert all(batch[0] == END_MARKER_KEY for batch in producer.batches)
    assert all(END_MARKER_KEY not in batch[1:] for batch in producer.batches)
    kept = [key for batch in producer.batches for key in batch[1:]]
    assert kept == [k for g in groups for k in g]  # every group, in order, none split
    where = {key: i for i, batch in enumerate(producer.batches) for key in batch[1:]}
    for group in groups:
        assert len({where[key] for key in group}) == 1, "a group was split over batches"
    topic = table.changelog_topic.get_topic_name()
    assert table.data.persisted_offset(TP(topic, 0)) == len(kept) + len(producer.batches)  # type: ignore[attr-defined]
