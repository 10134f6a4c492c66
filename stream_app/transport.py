"""Faust's aiokafka transport, fixed so that no fetched record is skipped.

Faust's consumer asks its aiokafka thread for the records of the partitions
that are active, then drops, without a word, records of partitions that are
no longer active by the time it yields them. aiokafka has already moved those
partitions' positions past the dropped records, so they are never processed
unless a later seek to committed offsets undoes it. Two holes, both hit by a
worker restarting after a crash:

* while a recovery pauses the changelog partitions, the live set of active
  partitions handed to the consumer thread can be empty for a moment, which
  aiokafka reads as "all partitions": every input partition is drained and
  dropped;
* aiokafka's ``seek_to_committed`` leaves partitions without a committed
  offset where they are, so for a group that never committed nothing undoes
  the drop.

The pipeline's idempotence relies on records of one partition being applied
in offset order (an offset at or below the last applied one is a redelivery),
so a skipped record must be fetched again before any later one is processed.
Here the thread gets a snapshot of the active partitions (none: no fetch),
records of partitions that went inactive meanwhile are put back by rewinding
to their first offset at once, and partitions without a committed offset are
rewound to their beginning, as ``auto_offset_reset=earliest`` would do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP


def uncommitted(committed: Mapping[TP, int | None], changelogs: Iterable[str]) -> list[TP]:
    """The stream partitions a seek to committed offsets would leave where they are."""
    skip = set(changelogs)
    return sorted(
        (tp for tp, offset in committed.items() if not offset and tp.topic not in skip),
        key=lambda tp: (tp.topic, tp.partition),
    )


def split_inactive(
    records: RecordMap, active: Set[TP]
) -> tuple[dict[TP, list[Any]], dict[TP, int]]:
    """Records still wanted, and the first offset of each partition to fetch again."""
    kept: dict[TP, list[Any]] = {}
    rewind: dict[TP, int] = {}
    for tp, batch in records.items():
        if tp in active:
            kept[tp] = batch
        elif batch:
            rewind[tp] = batch[0].offset
    return kept, rewind


async def _seek(consumer: AIOKafkaConsumer, positions: Mapping[TP, int]) -> None:
    for tp, offset in positions.items():
        consumer.seek(tp, offset)


class RewindingConsumer(aiokafka_driver.Consumer):
    async def _getmany(
        self,
        active_partitions: Set[TP] | None,
        timeout: float,  # noqa: ASYNC109 - Faust's signature
    ) -> RecordMap:
        if active_partitions is None:  # client-only apps fetch everything
            return await super()._getmany(active_partitions, timeout)
        # A snapshot: Faust keeps mutating its set while the thread fetches, and an
        # empty set would mean "every partition" to aiokafka.
        wanted = set(active_partitions)
        if not wanted:
            return {}
        records = await self._thread.getmany(wanted, timeout)
        still_active = self._get_active_partitions() | self._buffered_partitions
        kept, rewind = split_inactive(records, still_active)
        if rewind:
            thread = self._thread
            await thread.call_thread(_seek, thread._ensure_consumer(), rewind)
        return kept

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        fresh = uncommitted(committed, self.app.tables.changelog_topics)
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
        return committed


class RewindingTransport(aiokafka_driver.Transport):
    Consumer: ClassVar[type[Any]] = RewindingConsumer
