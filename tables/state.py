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
from faust.types import TableT

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
        """What the recovered tables hold for these partitions (one scan each)."""
        wanted = set(numbers)
        content = {n: PartitionContent() for n in wanted}
        for key, value in self.customers.items():
            if isinstance(key, MetaKey):
                if not isinstance(value, PartitionMeta):
                    raise TypeError(f"the meta of partition {key.partition} holds {value!r}")
                if key.partition in wanted:
                    content[key.partition].meta = value
                continue
            owner = partition_for(key, self.partition_count)
            if owner in wanted:
                content[owner].customers.append((key, value))
        for key, ledger in self.rejections.items():
            number = ledger_partition(key)
            if number in wanted:
                content[number].ledgers.append((ledger_source(key), ledger))
        return content


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
