"""Writing a table key into an explicit partition of its store.

Faust's ``table[key] = value`` takes the partition (of both the store and the
changelog) from the event being processed; the batch path and timers have
none. This writes the store's partition the way ``Table.on_key_set`` would;
tables/writer.py sends the changelog record to the same partition. It reaches
into faust-streaming's stores (pinned at 0.15.3); the end-to-end tests restart
workers from RocksDB and from the changelog alone.
"""

from __future__ import annotations

from typing import Any

from faust.stores.memory import Store as MemoryStore
from faust.types import TableT

try:
    from faust.stores.rocksdb import Store as RocksDBStore
except ImportError:  # pragma: no cover - rocksdict is a dependency
    RocksDBStore = None  # type: ignore[assignment,misc]


def put_in_store(
    table: TableT[Any, Any], partition: int, key: Any, value: Any, raw_key: bytes, raw_value: bytes
) -> None:
    """``raw_key``/``raw_value``: key and value as the table's serializers write them."""
    store: Any = table.data
    if RocksDBStore is not None and isinstance(store, RocksDBStore):
        store._db_for_partition(partition).put(raw_key, raw_value)
        store._key_index[raw_key] = partition
    elif isinstance(store, MemoryStore):
        store.data[key] = value
        store._key_partition[key] = partition
    else:
        raise TypeError(f"no partitioned write for table store {type(store).__name__}")
