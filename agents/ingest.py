"""Where records enter: each poll batch through the pipeline, outcomes carried out.

The broker adapter (stream_app/faust_adapter.py) hands every poll batch of
the input and rerouted topics to ``BatchIngest.handle``. The pipeline runs
synchronously over the whole batch; then every touched key gets one changelog
record, dead letters and forwards are handed to the producer with them, and
the batch waits until all of it is on the broker (``ChangelogWriter.settle``).
Offsets are committed only for acked batches, after Faust flushes the
producer, so a committed offset always has its writes.

One lock orders what reaches the broker: a batch's writes, the watermark
markers (behind the forwards they describe) and the day close's partition
metas (behind the customer records they describe) never interleave.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from stream_app.keys import CLOSED_TERMS, MetaKey, ledger_partition
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.meta import ClosedTerms, PartitionMeta
from stream_app.kpi.rejections import RejectionLedger
from stream_app.metrics import WorkerMetrics
from stream_app.pipeline import (
    Applied,
    DeadLettered,
    Duplicate,
    Forward,
    Pipeline,
    RecordLike,
    partition_for,
)
from stream_app.settings import Settings
from tables.state import StateTables

MARK_INTERVAL_SECONDS = 0.5  # how stale another partition's view of a watermark may be


class Writer(Protocol):
    """Table writes and sends that reach the broker together at ``settle``
    (stream_app/faust_adapter.py ``ChangelogWriter``; stream_app/testing.py)."""

    def put(self, table: Any, partition: int, key: Any, value: Any) -> None: ...

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None: ...

    async def settle(self) -> None: ...


class BatchIngest:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        tables: StateTables,
        writer: Writer,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics or WorkerMetrics()
        self.tables = tables
        self.writer = writer
        self.partition_count = settings.partitions
        self.dead_letter_topic = settings.topic_dead_letter
        self.rerouted_topic = settings.topic_rerouted
        self.topics = frozenset({*settings.topics.values(), settings.topic_rerouted})
        self.lock = asyncio.Lock()

    async def handle(self, messages: Sequence[RecordLike]) -> None:
        read_at = time.perf_counter()
        async with self.lock:
            customers: dict[str, CustomerState] = {}
            ledgers: dict[str, RejectionLedger] = {}
            counts: Counter[tuple[str, str]] = Counter()
            rejected: Counter[str] = Counter()
            for message in messages:
                outcome = self.pipeline.handle(message)  # a Faust message is a RecordLike
                if isinstance(outcome, Applied):
                    customers[outcome.customer_id] = outcome.state
                    counts[outcome.event_type, "accepted"] += 1
                elif isinstance(outcome, DeadLettered):
                    await self.writer.send(
                        self.dead_letter_topic, outcome.dead_letter_key, outcome.dead_letter
                    )
                    if outcome.ledger is not None:
                        ledgers[outcome.ledger_key] = outcome.ledger
                    if outcome.reason == "late":
                        counts[outcome.event_type, "late"] += 1
                    else:
                        counts[outcome.event_type, "rejected"] += 1
                        rejected[outcome.reason] += 1
                elif isinstance(outcome, Duplicate):
                    counts[outcome.event_type, "duplicate"] += 1
                    if outcome.customer_id is not None and outcome.state is not None:
                        customers[outcome.customer_id] = outcome.state  # its offset, recorded
                elif isinstance(outcome, Forward):
                    await self._forward(outcome)
                # Marked: nothing to write
            n = self.partition_count
            for customer_id, state in customers.items():
                self.writer.put(
                    self.tables.customers, partition_for(customer_id, n), customer_id, state
                )
            for key, ledger in ledgers.items():
                self.writer.put(self.tables.rejections, ledger_partition(key), key, ledger)
            await self.writer.settle()
            self.pipeline.settled()
            metrics = self.metrics
            metrics.events.update(counts)
            metrics.rejected.update(rejected)
            applied = sum(counts.values())
            if applied:
                metrics.latency.observe(time.perf_counter() - read_at, applied)

    async def _forward(self, outcome: Forward) -> None:
        await self.writer.send(
            self.rerouted_topic,
            outcome.key,
            outcome.value,
            outcome.partition,
            list(outcome.headers),
        )

    async def send_markers(self) -> None:
        """Watermark markers, each behind the records forwarded before it."""
        async with self.lock:
            for marker in self.pipeline.markers():
                await self._forward(marker)
            await self.writer.settle()

    async def save_meta(self, partition: int, meta: PartitionMeta | ClosedTerms) -> None:
        """The caller holds ``lock``: the meta (or the closed terms) goes to the
        customers' changelog partition behind every customer record written before
        it (``MetaKey``)."""
        record = CLOSED_TERMS if isinstance(meta, ClosedTerms) else ""
        self.writer.put(self.tables.customers, partition, MetaKey(partition, record), meta)

    async def flush(self) -> None:
        await self.writer.settle()
