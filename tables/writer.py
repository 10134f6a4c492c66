"""Table writes and sends straight to the producer, a batch at a time.

Faust's ``table[key] = value`` sends each changelog record through its
producer buffer, one awaited send per record (and throttles the consumer at
100 pending); this writes the store, hands every record of a batch to the
producer at once, then waits for all of them. A key is written in an explicit
partition, so timers can write too (tables/partitioned.py).

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
from tables.partitioned import put_in_store

# Longer than any customer id (and than any "topic:partition" ledger key).
END_MARKER_KEY = b"loyalty-pulse/changelog-end".ljust(MAX_ID_CHARS + 300, b"~")


class TableWriter:
    def __init__(self, app: faust.App, end_markers: bool) -> None:
        self.app = app
        self.end_markers = end_markers
        self._pending: list[tuple[TableT[Any, Any] | None, Awaitable[Any]]] = []

    async def put(self, table: TableT[Any, Any], partition: int, key: Any, value: Any) -> None:
        """Set ``key`` in the store's ``partition`` and send its changelog record."""
        serializers: Any = table  # Collection has them; TableT does not declare them
        raw_key = codecs.dumps(serializers.key_serializer, key)
        raw_value = codecs.dumps(serializers.value_serializer, value)
        put_in_store(table, partition, key, value, raw_key, raw_value)
        topic = table.changelog_topic.get_topic_name()
        sent = await self.app.producer.send(topic, raw_key, raw_value, partition, None, None)
        self._pending.append((table, sent))

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        sent = await self.app.producer.send(topic, key, value, partition, None, headers)
        self._pending.append((None, sent))

    async def settle(self) -> None:
        """Wait until everything put or sent since the last call is on the broker."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        # Awaiting each (mostly done) future costs far less than gather's task per future.
        written: dict[TP, tuple[TableT[Any, Any], int]] = {}  # changelog tp -> last offset
        for table, sent in pending:
            meta = await sent
            if table is not None:
                tp = TP(meta.topic, meta.partition)
                if tp not in written or meta.offset > written[tp][1]:
                    written[tp] = (table, meta.offset)
        if self.end_markers:
            markers = [
                (
                    tp,
                    table,
                    await self.app.producer.send(
                        tp.topic, END_MARKER_KEY, None, tp.partition, None, None
                    ),
                )
                for tp, (table, _) in written.items()
            ]
            for tp, table, sent in markers:
                written[tp] = (table, (await sent).offset)
        for tp, (table, offset) in written.items():
            # What Table._on_changelog_sent does: RocksDB remembers how far it holds.
            store: Any = table.data
            store.set_persisted_offset(tp, offset)
