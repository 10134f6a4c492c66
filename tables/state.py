"""The changelog-backed tables: customer state and rejection ledgers.

Both are keyed so that a key lives in the partition of the events that write
it: a customer in the partition of its customer_id, a ledger ("topic:p") in p.
Faust writes each change to the changelog partition of the current event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import faust
from faust.serializers import codecs as faust_codecs
from faust.types import TableT

from stream_app.faust_adapter import stored_partition
from stream_app.keys import (
    CLOSED_TERMS,
    META_KEY_PREFIX,
    MetaKey,
    ledger_partition,
    ledger_source,
)
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.meta import ClosedTerms, PartitionMeta
from stream_app.kpi.rejections import RejectionLedger
from stream_app.pipeline import PartitionContent, partition_for
from stream_app.settings import Settings
from tables import codecs

CUSTOMERS, REJECTIONS = "customers", "rejections"
META_PREFIX = META_KEY_PREFIX.encode()
TABLE_NAMES = (CUSTOMERS, REJECTIONS)
"""Each table keeps a changelog topic ``<app_id>-<name>-changelog`` with one
partition per input partition (stream_app/state_layout.py checks their counts)."""


class RawPartition(Protocol):
    """One partition of a table store, keys and values as the table's
    serializers wrote them; ``items`` in key order."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


class CustomerRecords:
    """One partition's customer records in a RocksDB table store, as stored
    (stream_app/kpi/customer_cache.py reads them; keys are customer ids in UTF-8)."""

    def __init__(self, store: RawPartition) -> None:
        self._store = store

    def get(self, customer: str) -> bytes | None:
        return self._store.get(customer.encode())

    def items(self) -> Iterator[tuple[str, bytes]]:
        for key, value in self._store.items():
            if not key.startswith(META_PREFIX):
                yield key.decode(), value


@dataclass(frozen=True)
class StateTables:
    customers: TableT[str | MetaKey, CustomerState | PartitionMeta]
    rejections: TableT[str, RejectionLedger]
    partition_count: int

    def stored(self, number: int) -> RawPartition | None:
        """Partition ``number`` of the customers' store when it is read raw from
        disk (RocksDB), else None (the memory store holds decoded values)."""
        return stored_partition(self.customers, number)

    def load(self, numbers: Iterable[int]) -> dict[int, PartitionContent]:
        """What the recovered tables hold for these partitions. From a RocksDB
        store, the partition meta only: customers are read from the store when
        needed (``CustomerRecords``); from the memory store, everything (one scan)."""
        wanted = set(numbers)
        content = {n: PartitionContent() for n in wanted}
        decoded = False
        for number in wanted:
            store = self.stored(number)
            if store is None:
                decoded = True
                continue
            for key in (MetaKey(number), MetaKey(number, CLOSED_TERMS)):
                raw = store.get(faust_codecs.dumps(codecs.STATE_KEY, key))
                if raw is not None:
                    self._meta(content[number], key, faust_codecs.loads(codecs.CUSTOMER, raw))
            content[number].records = CustomerRecords(store)
        if decoded:
            self._load_decoded(content)
        self._load_ledgers(content)
        return content

    @staticmethod
    def _meta(content: PartitionContent, key: MetaKey, value: object) -> None:
        if key.record == CLOSED_TERMS and isinstance(value, ClosedTerms):
            content.closed_terms = value
        elif not key.record and isinstance(value, PartitionMeta):
            content.meta = value
        else:
            raise TypeError(f"{key} of partition {key.partition} holds {value!r}")

    def _load_decoded(self, content: dict[int, PartitionContent]) -> None:
        """From a store of decoded values (the memory store)."""
        wanted = set(content)
        for key, value in self.customers.items():
            if isinstance(key, MetaKey):
                if key.partition in wanted:
                    self._meta(content[key.partition], key, value)
                continue
            owner = partition_for(key, self.partition_count)
            if owner in wanted:
                content[owner].customers.append((key, value))

    def _load_ledgers(self, content: dict[int, PartitionContent]) -> None:
        for key, ledger in self.rejections.items():
            number = ledger_partition(key)
            if number in content:
                content[number].ledgers.append((ledger_source(key), ledger))


def _table(
    app: faust.App, name: str, partitions: int, codec: str, help: str, key_codec: str = codecs.UTF8
) -> Any:
    """A table whose store and changelog both use our codecs.

    Faust derives a table's serializers from key_type/value_type (JSON unless
    they are faust Records) and its default changelog topic sends with
    acks=False; both are replaced here, before the store is first opened.
    """
    changelog = app.topic(
        f"{app.conf.id}-{name}-changelog",
        key_serializer=key_codec,
        value_serializer=codec,
        partitions=partitions,
        compacting=True,
        deleting=False,
        acks=True,
        internal=True,
    )
    table: Any = app.Table(name, partitions=partitions, changelog_topic=changelog, help=help)
    table.key_serializer = key_codec
    table.value_serializer = codec
    return table


def declare_tables(app: faust.App, settings: Settings) -> StateTables:
    codecs.register()
    n = settings.partitions
    customers = _table(
        app, CUSTOMERS, n, codecs.CUSTOMER, "Per-customer state by customer_id", codecs.STATE_KEY
    )
    rejections = _table(
        app, REJECTIONS, n, codecs.LEDGER, "Rejection counts per source, by topic:partition"
    )
    return StateTables(customers, rejections, n)
