"""Table writes with an explicit partition, for code that runs outside an event.

Faust's ``table[key] = value`` takes the partition (of both the store and the
changelog) from the event being processed; a timer has none. This writes the
store's partition and sends the changelog record to the same partition, the
way ``Table.on_key_set`` does. It reaches into faust-streaming's stores
(pinned at 0.15.3; ``tests/integration/test_tables_partitioned.py`` covers a
restart that recovers such a write from RocksDB and from the changelog).
"""

from __future__ import annotations

from typing import Any

from faust.stores.memory import Store as MemoryStore
from faust.types import TableT

try:
    from faust.stores.rocksdb import Store as RocksDBStore
except ImportError:  # pragma: no cover - rocksdict is a dependency
    RocksDBStore = None  # type: ignore[assignment,misc]


def put(table: TableT[Any, Any], partition: int, key: Any, value: Any) -> None:
    store: Any = table.data
    if RocksDBStore is not None and isinstance(store, RocksDBStore):
        raw_key = store._encode_key(key)
        store._db_for_partition(partition).put(raw_key, store._encode_value(value))
        store._key_index[raw_key] = partition
    elif isinstance(store, MemoryStore):
        store.data[key] = value
        store._key_partition[key] = partition
    else:
        raise TypeError(f"no partitioned write for table store {type(store).__name__}")
    table.send_changelog(partition, key, value)
