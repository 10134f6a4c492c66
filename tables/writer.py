"""Table writes and sends straight to the producer, a batch at a time.

Faust's ``table[key] = value`` sends each changelog record through its
producer buffer, one awaited send per record (and throttles the consumer at
100 pending). Here a batch's puts are collected per changelog partition; at
``settle`` the stores are written, each partition's records go to the broker
as whole record batches (aiokafka's ``send_batch``: no future per record),
and the call returns once all of it is on the broker. A key is written in an
explicit partition, so timers can write too (tables/partitioned.py).

Embedded broker: Tansu (<= 0.6) answers ListOffsets(latest) with the base
offset of a partition's last batch + 1, so after a multi-record batch a
recovery would stop short of a changelog's end. With ``end_markers`` every
changelog partition written in a batch gets, once the batch is on the broker,
a tombstone of a key no table holds, alone in its own batch: the last batch of
a changelog partition then always holds one record and its base + 1 is the
true end. Production Kafka needs none of this.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust
from faust.serializers import codecs
from faust.types import TP, TableT

from stream_app.contract import MAX_ID_CHARS
from tables.partitioned import StoreWrites

# Longer than any customer id (and than any "topic:partition" ledger key).
END_MARKER_KEY = b"loyalty-pulse/changelog-end".ljust(MAX_ID_CHARS + 300, b"~")


class TableWriter:
    def __init__(self, app: faust.App, end_markers: bool) -> None:
        self.app = app
        self.end_markers = end_markers
        self._stores = StoreWrites()
        # changelog partition -> (its table, records in write order)
        self._changes: dict[TP, tuple[TableT[Any, Any], list[tuple[bytes, bytes]]]] = {}
        self._sent: list[Awaitable[Any]] = []

    def put(self, table: TableT[Any, Any], partition: int, key: Any, value: Any) -> None:
        """Set ``key`` in the store's ``partition``; its changelog record goes at ``settle``."""
        serializers: Any = table  # Collection has them; TableT does not declare them
        raw_key = codecs.dumps(serializers.key_serializer, key)
        raw_value = codecs.dumps(serializers.value_serializer, value)
        self._stores.put(table, partition, key, value, raw_key, raw_value)
        tp = TP(table.changelog_topic.get_topic_name(), partition)
        change = self._changes.get(tp)
        if change is None:
            change = self._changes[tp] = (table, [])
        change[1].append((raw_key, raw_value))

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        sent = await self.app.producer.send(topic, key, value, partition, None, headers)
        self._sent.append(sent)

    async def settle(self) -> None:
        """Wait until everything put or sent since the last call is on the broker."""
        changes, self._changes = self._changes, {}
        sent, self._sent = self._sent, []
        self._stores.write()
        batches = [
            (tp, table, await self._send_batches(tp, records))
            for tp, (table, records) in changes.items()
        ]
        # Awaiting each (mostly done) future costs far less than gather's task per future.
        for done in sent:
            await done
        written: dict[TP, tuple[TableT[Any, Any], int]] = {}  # changelog tp -> last offset
        for tp, table, deliveries in batches:
            for future, count in deliveries:
                meta = await future
                written[tp] = (table, meta.offset + count - 1)
        if self.end_markers:
            markers = [
                (tp, table, await self._send_end_marker(tp)) for tp, (table, _) in written.items()
            ]
            for tp, table, marker in markers:
                written[tp] = (table, (await marker).offset)
        for tp, (table, offset) in written.items():
            # What Table._on_changelog_sent does: RocksDB remembers how far it holds.
            store: Any = table.data
            store.set_persisted_offset(tp, offset)

    async def _send_batches(
        self, tp: TP, records: list[tuple[bytes, bytes]]
    ) -> list[tuple[Awaitable[Any], int]]:
        """Send ``records`` in order as record batches: (delivery, records in it) each."""
        producer = self._producer()
        out: list[tuple[Awaitable[Any], int]] = []
        batch, count = producer.create_batch(), 0
        for key, value in records:
            # A batch's first record always fits, whatever its size.
            if batch.append(timestamp=None, key=key, value=value) is None:
                out.append((await self._submit(producer, batch, tp), count))
                batch, count = producer.create_batch(), 0
                batch.append(timestamp=None, key=key, value=value)
            count += 1
        batch.close()
        out.append((await self._submit(producer, batch, tp), count))
        return out

    @staticmethod
    async def _submit(producer: Any, batch: Any, tp: TP) -> Awaitable[Any]:
        delivery: Awaitable[Any] = await producer.send_batch(
            batch, tp.topic, partition=tp.partition
        )
        return delivery

    async def _send_end_marker(self, tp: TP) -> Awaitable[Any]:
        producer = self.app.producer
        return await producer.send(tp.topic, END_MARKER_KEY, None, tp.partition, None, None)

    def _producer(self) -> Any:
        """The aiokafka producer under Faust's (``Producer._ensure_producer``, pinned)."""
        return self.app.producer._ensure_producer()  # type: ignore[attr-defined]
