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

import asyncio
from collections.abc import Iterable, Mapping, Set
from typing import Any, ClassVar, Protocol, cast

from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import CONSUMER_FETCHING, RecordMap
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from mode import Service, ServiceT


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


# Faust hard-codes fetch_max_wait_ms=1500. The embedded broker holds a fetch
# for that long whenever part of it has nothing new, so at a steady 5k events/s
# records waited ~0.5 s before being read (measured: p50 0.67 s from send to
# applied). 100 ms keeps idle fetches cheap and live records quick.
FETCH_MAX_WAIT_MS = 100


class QuickFetchThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class RewindingConsumer(aiokafka_driver.Consumer):
    def _new_consumer_thread(self) -> QuickFetchThread:
        return QuickFetchThread(self, loop=self.loop, beacon=self.beacon)

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


class BatchHandler(Protocol):
    """Takes every record of its topics, a poll's worth at a time."""

    topics: frozenset[str]

    async def handle(self, messages: list[Message]) -> None: ...


class BatchConsumer(RewindingConsumer):
    """Hands whole poll batches of the pipeline's topics to one handler.

    Faust's drain loop awaits a new delivery (and its task pair) per message,
    about 90 µs each whatever the agent does; this one drains a poll batch,
    hands the pipeline's records to ``batch_handler`` in one call and acks
    them, so offsets are committed exactly as Faust commits acked messages.
    Records of other topics (changelogs during a recovery) go through Faust's
    own path. The handler is the transport's ``batch_handler``. A copy of
    ``faust.transport.consumer.Consumer._drain_messages``
    (faust-streaming 0.15.3) with that one change; ``tests/unit/test_transport.py``
    pins the upstream method it replaces.
    """

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - e2e
        callback = self.callback
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                ait = self.getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                handler = cast(RewindingTransport, self.transport).batch_handler
                batch: list[Message] = []
                async for tp, message in ait:
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # already read (Faust drops these too)
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if handler is not None and message.topic in handler.topics:
                        # Not track_message: its per-message sensor calls cost ~4% of
                        # ingest, and the batch is acked before the next poll anyway.
                        batch.append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, offset)
                if batch and handler is not None:
                    await handler.handle(batch)
                    # A rebalance may have taken partitions meanwhile: their new
                    # owner reads them again from the last commit.
                    assigned = self.assignment()
                    for message in batch:
                        if message.tp in assigned:
                            self.ack(message)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class RewindingTransport(aiokafka_driver.Transport):
    Consumer: ClassVar[type[Any]] = BatchConsumer
    batch_handler: BatchHandler | None = None  # set by the app before it starts
