"""Writing table keys into explicit partitions of their stores, a batch at a time.

Faust's ``table[key] = value`` takes the partition (of both the store and the
changelog) from the event being processed; the batch path and timers have
none. ``StoreWrites`` writes a store's partition the way ``Table.on_key_set``
would, and RocksDB partitions through one WriteBatch each, as Faust's own
``apply_changelog_batch`` does; tables/writer.py sends the changelog records to
the same partitions. It reaches into faust-streaming's stores (pinned at
0.15.3, tests/unit/test_transport.py); the end-to-end tests restart workers
from RocksDB and from the changelog alone.
"""

from __future__ import annotations

from typing import Any

from faust.stores.memory import Store as MemoryStore
from faust.types import TableT

try:
    from faust.stores.rocksdb import Store as RocksDBStore
    from rocksdict import WriteBatch
except ImportError:  # pragma: no cover - rocksdict is a dependency
    RocksDBStore = None  # type: ignore[assignment,misc]


class StoreWrites:
    """Puts collected per store partition; ``write`` applies them."""

    def __init__(self) -> None:
        self._batches: dict[tuple[int, int], tuple[Any, int, Any]] = {}

    def put(
        self,
        table: TableT[Any, Any],
        partition: int,
        key: Any,
        value: Any,
        raw_key: bytes,
        raw_value: bytes,
    ) -> None:
        """``raw_key``/``raw_value``: key and value as the table's serializers write them."""
        store: Any = table.data
        if RocksDBStore is not None and isinstance(store, RocksDBStore):
            slot = (id(store), partition)
            entry = self._batches.get(slot)
            if entry is None:
                entry = self._batches[slot] = (store, partition, WriteBatch(raw_mode=True))
            entry[2].put(raw_key, raw_value)
            store._key_index[raw_key] = partition
        elif isinstance(store, MemoryStore):
            store.data[key] = value
            store._key_partition[key] = partition
        else:
            raise TypeError(f"no partitioned write for table store {type(store).__name__}")

    def write(self) -> None:
        batches, self._batches = self._batches, {}
        for store, partition, batch in batches.values():
            store._db_for_partition(partition).write(batch)
