"""The changelog-backed tables: customer state and rejection ledgers.

Both are keyed so that a key lives in the partition of the events that write
it: a customer in the partition of its customer_id, a ledger ("topic:p") in p.
Faust writes each change to the changelog partition of the current event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faust
from faust.serializers import codecs as faust_codecs
from faust.types import TableT

from stream_app.faust_adapter import stored_records
from stream_app.keys import MetaKey, ledger_partition, ledger_source
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.meta import PartitionMeta
from stream_app.kpi.rejections import RejectionLedger
from stream_app.pipeline import PartitionContent, partition_for
from stream_app.settings import Settings
from tables import codecs

CUSTOMERS, REJECTIONS = "customers", "rejections"
TABLE_NAMES = (CUSTOMERS, REJECTIONS)
"""Each table keeps a changelog topic ``<app_id>-<name>-changelog`` with one
partition per input partition (stream_app/state_layout.py checks their counts)."""


@dataclass(frozen=True)
class StateTables:
    customers: TableT[str | MetaKey, CustomerState | PartitionMeta]
    rejections: TableT[str, RejectionLedger]
    partition_count: int

    def load(self, numbers: Iterable[int]) -> dict[int, PartitionContent]:
        """What the recovered tables hold for these partitions (one scan each).
        From a RocksDB store, customer records stay as stored, decoded only when
        read (stream_app/kpi/customer_cache.py)."""
        wanted = set(numbers)
        content = {n: PartitionContent() for n in wanted}
        raw = {n: stored_records(self.customers, n) for n in wanted}
        for number, records in raw.items():
            if records is None:
                continue
            for raw_key, raw_value in records:
                key = faust_codecs.loads(codecs.STATE_KEY, raw_key)
                if isinstance(key, MetaKey):
                    meta = faust_codecs.loads(codecs.CUSTOMER, raw_value)
                    content[number].meta = self._meta(key, meta)
                else:
                    content[number].customers.append((key, raw_value))
        if any(records is None for records in raw.values()):
            self._load_decoded(content)
        self._load_ledgers(content)
        return content

    @staticmethod
    def _meta(key: MetaKey, value: object) -> PartitionMeta:
        if not isinstance(value, PartitionMeta):
            raise TypeError(f"the meta of partition {key.partition} holds {value!r}")
        return value

    def _load_decoded(self, content: dict[int, PartitionContent]) -> None:
        """From a store of decoded values (the memory store)."""
        wanted = set(content)
        for key, value in self.customers.items():
            if isinstance(key, MetaKey):
                if key.partition in wanted:
                    content[key.partition].meta = self._meta(key, value)
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
