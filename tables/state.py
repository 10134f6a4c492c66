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

from stream_app.contract import MAX_ID_CHARS
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.meta import PartitionMeta
from stream_app.kpi.rejections import RejectionLedger
from stream_app.pipeline import PartitionContent, ledger_partition, partition_for
from stream_app.settings import Settings
from tables import codecs

# A partition's meta lives in the customers table, so that it shares the
# changelog partition (and its order) with the partition's customers. Customer
# ids have at most MAX_ID_CHARS characters: a longer key can never be one.
META_KEY_PREFIX = "loyalty-pulse/partition-meta/".ljust(MAX_ID_CHARS + 1, "~") + "/"


def meta_key(partition: int) -> str:
    return f"{META_KEY_PREFIX}{partition}"


@dataclass(frozen=True)
class StateTables:
    customers: TableT[str, CustomerState | PartitionMeta]
    rejections: TableT[str, RejectionLedger]
    partition_count: int

    def load(self, numbers: Iterable[int]) -> dict[int, PartitionContent]:
        """What the recovered tables hold for these partitions (one scan each)."""
        wanted = set(numbers)
        content = {n: PartitionContent() for n in wanted}
        for key, value in self.customers.items():
            if isinstance(value, PartitionMeta):
                number = int(key.removeprefix(META_KEY_PREFIX))
                if number in wanted:
                    content[number].meta = value
                continue
            owner = partition_for(key, self.partition_count)
            if owner in wanted:
                content[owner].customers.append((key, value))
        for key, ledger in self.rejections.items():
            number = ledger_partition(key)
            if number in wanted:
                content[number].ledgers.append((key.rpartition(":")[0], ledger))
        return content


def _table(app: faust.App, name: str, partitions: int, codec: str, help: str) -> Any:
    """A table whose store and changelog both use our codecs.

    Faust derives a table's serializers from key_type/value_type (JSON unless
    they are faust Records) and its default changelog topic sends with
    acks=False; both are replaced here, before the store is first opened.
    """
    changelog = app.topic(
        f"{app.conf.id}-{name}-changelog",
        key_serializer=codecs.UTF8,
        value_serializer=codec,
        partitions=partitions,
        compacting=True,
        deleting=False,
        acks=True,
        internal=True,
    )
    table: Any = app.Table(name, partitions=partitions, changelog_topic=changelog, help=help)
    table.key_serializer = codecs.UTF8
    table.value_serializer = codec
    return table


def declare_tables(app: faust.App, settings: Settings) -> StateTables:
    codecs.register()
    n = settings.partitions
    customers = _table(app, "customers", n, codecs.CUSTOMER, "Per-customer state by customer_id")
    rejections = _table(
        app, "rejections", n, codecs.LEDGER, "Rejection counts per source, by topic:partition"
    )
    return StateTables(customers, rejections, n)
