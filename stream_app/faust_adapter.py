"""The one door to Faust's, aiokafka's and mode's internals.

Everything the project does with those libraries beyond their public API is
here, behind ``FaustBroker``'s narrow interface:

- poll batches: ``consume(handler)`` hands whole poll batches of the handler's
  topics to it, then acks them (``BatchConsumer``: ``Consumer._drain_messages``
  copied; ``_read_offset``, ``_add_gap``, ``_n_acked``, ``_commit_every``);
- no skipped record (``RewindingConsumer``): ``Consumer._getmany``,
  ``_get_active_partitions``, ``_buffered_partitions``, ``_thread``,
  ``seek_to_committed``;
- live latency (``QuickFetchThread``): aiokafka's ``_fetch_max_wait_ms``;
- produce a batch, write tables (``ChangelogWriter``: put, send, settle):
  ``Producer._ensure_producer``, aiokafka's ``create_batch``/``send_batch``,
  RocksDB ``_db_for_partition``/``_key_index``, the memory store's
  ``data``/``_key_partition``, ``set_persisted_offset``;
- commit: Faust's own (flush, then commit acked offsets), unchanged;
- assignment changes: ``owned_partitions`` (``app.assignor.assigned_actives``);
- recovered tables: ``on_rebalance_complete`` only for the recovery of the
  current assignment (``Recovery.signal_recovery_start``, see there);
- restoring RocksDB tables: a poll batch's changelog records go straight to the
  recovery's buffers (``restore_directly``: ``Recovery._slurp_changelogs``'s
  work without its per-record queue, on ``active_offsets``, ``buffers``,
  ``buffer_sizes``, ``tp_to_table``, ``_set_recovery_ended``);
- lag: ``lag`` (``Consumer.highwater``, ``_read_offset``, ``_committed_offset``).

Supported: faust-streaming 0.15.3 (pyproject pins ``>=0.15.3,<0.16``) with
aiokafka 0.14.0 and mode-streaming as they install with it.
``tests/unit/test_faust_adapter.py`` pins the source of every upstream method
copied, overridden or bypassed here and of the constructors that define the
private attributes used, and fails when this module uses a private member it
does not list. When upgrading: a failing pin names the method; re-read the new
upstream code, carry its fixes into the copy, then update the digest.
``BatchConsumer._drain_messages`` follows upstream's loop with its exception
logging; upstream's yield every 100 messages is deliberately not copied into
the collection of a batch (see there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping, Sequence, Set
from typing import Any, ClassVar, Protocol, cast

import faust
from aiokafka import AIOKafkaConsumer
from faust.serializers import codecs
from faust.stores.memory import Store as MemoryStore
from faust.transport.consumer import CONSUMER_FETCHING, RecordMap
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, AppT, Message, TableT
from mode import Service, ServiceT

from stream_app.keys import END_MARKER_KEY
from stream_app.pipeline import RecordLike

try:
    from faust.stores.rocksdb import Store as RocksDBStore
    from rocksdict import WriteBatch
except ImportError:  # pragma: no cover - rocksdict is a dependency
    RocksDBStore = None  # type: ignore[assignment,misc]

# Faust hard-codes fetch_max_wait_ms=1500. The embedded broker holds a fetch
# for that long whenever part of it has nothing new, so at a steady 5k events/s
# records waited ~0.5 s before being read (measured: p50 0.67 s from send to
# applied). 100 ms keeps idle fetches cheap and live records quick.
FETCH_MAX_WAIT_MS = 100

log = logging.getLogger(__name__)


class BatchHandler(Protocol):
    """Takes every record of its topics, a poll's worth at a time."""

    topics: frozenset[str]

    async def handle(self, messages: Sequence[RecordLike]) -> None: ...


class FaustBroker:
    """What the worker needs of the broker, on top of a ``faust.App``."""

    def __init__(self, app: faust.App, end_markers: bool) -> None:
        """``end_markers``: end every changelog write with a one-record batch (the
        embedded broker under-reports a changelog's end otherwise)."""
        self.app = app
        self.transport = BatchTransport(app.conf.broker_consumer, app)
        app.transport = self.transport
        self.writer = ChangelogWriter(app, end_markers)
        complete_only_current_recoveries(app)

    def consume(self, handler: BatchHandler) -> None:
        """Subscribe ``handler.topics``; their records go to ``handler`` a poll
        batch at a time and are acked once it returns."""
        topic = self.app.topic(*handler.topics, key_serializer="raw", value_serializer="raw")
        self.app.topics.add(topic)
        self.transport.batch_handler = handler

    def owned_partitions(self, topics: Iterable[str]) -> set[int]:
        """Partitions of ``topics`` this worker is assigned now."""
        wanted = set(topics)
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic in wanted}

    def lag(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """Records not yet read in each owned partition of ``topics`` (high
        watermark minus the next offset to read), where the consumer knows the
        high watermark."""
        wanted = set(topics)
        consumer: Any = self.app.consumer
        out: dict[tuple[str, int], int] = {}
        try:
            assigned = [tp for tp in self.app.assignor.assigned_actives() if tp.topic in wanted]
        except Exception:  # noqa: BLE001 - no assignment yet
            return out
        for tp in assigned:
            try:
                high = consumer.highwater(tp)
            except Exception:  # noqa: BLE001, S112 - not started, or the partition just left
                continue
            if high is None:
                continue
            read = consumer._read_offset.get(tp)
            position = read + 1 if read is not None else consumer._committed_offset.get(tp) or 0
            out[tp.topic, tp.partition] = max(0, int(high) - int(position))
        return out


# --- recovered tables ----------------------------------------------------------
#
# ``app.on_rebalance_complete`` says: the tables hold every changelog record of
# the partitions now assigned, load them. Faust's ``Recovery.on_recovery_completed``
# sends it before it checks that no rebalance started meanwhile: a recovery
# overtaken by a new assignment completes (on the old assignment's changelog
# positions) and sends it, and only then gives up for the new recovery, which
# sends it again once done. A receiver loading the newly assigned partitions at
# the first signal reads tables not recovered yet (seen with a worker joining
# while another restarted: ~1,100 events lost, as their customers were then
# written back from the incomplete state), and would not load them again at the
# second. So the signal is delivered only when no newer recovery is pending:
# ``signal_recovery_start`` is set by ``Recovery.on_rebalance`` and cleared when
# the recovery loop starts on it (Faust's own ``Recovery._wait`` reads it as
# "rebalance again").


def recovery_superseded(app: faust.App) -> bool:
    """A rebalance started after the table recovery now completing."""
    tables: Any = app.tables  # TableManager; its type does not declare ``recovery``
    return bool(tables.recovery.signal_recovery_start.is_set())


def complete_only_current_recoveries(app: faust.App) -> None:
    """Drop ``on_rebalance_complete`` while a newer recovery is pending."""
    signal: Any = app.on_rebalance_complete
    send = signal.send

    async def send_if_current(*args: Any, **kwargs: Any) -> None:
        if recovery_superseded(app):
            log.info("table recovery overtaken by a rebalance: waiting for the next one")
            return
        await send(*args, **kwargs)

    signal.send = send_if_current


# --- restoring tables from their changelogs ---------------------------------------
#
# Faust's recovery moves each changelog record through the conductor (a flow
# control wait, a lock, an Event, a queue put; the drain loop awaits a task pair
# per record) to ``Recovery._slurp_changelogs`` (a ``wait_for`` on the queue and
# a count of what remains over every partition, per record): ~4,000 records/s
# restoring 1M customers here. For RocksDB tables the drain loop hands a poll
# batch's records of the partitions an active recovery reads straight to
# ``restore_directly``, which does what the slurp loop does with them: skip
# offsets already applied, advance the recovery's offsets, write through the
# table's buffer (``apply_changelog_batch``: one RocksDB WriteBatch per
# ``recovery_buffer_size`` records) and, once no record remains, flush and signal
# the recovery's end as the slurp loop would. Records of the memory store (which
# wants decoded keys), of standby partitions and those read after a recovery
# ended take Faust's own path.


class ChangelogRecord:
    """What a table's ``apply_changelog_batch`` reads of a Faust event."""

    __slots__ = ("message",)

    def __init__(self, message: Message) -> None:
        self.message = message


def restoring_partitions(app: AppT) -> Set[TP]:
    tables: Any = app.tables
    recovery = tables.recovery
    if not recovery.in_recovery:
        return frozenset()
    tp_to_table = recovery.tp_to_table
    return {
        tp
        for tp in recovery.active_tps
        if tp in tp_to_table and _stored_in_rocksdb(tp_to_table[tp])
    }


def _stored_in_rocksdb(table: Any) -> bool:
    return RocksDBStore is not None and isinstance(table.data, RocksDBStore)


def restore_directly(app: AppT, messages: Sequence[Message]) -> None:
    """Apply changelog records of partitions under recovery, as Faust's recovery
    loop would one at a time (``Recovery._slurp_changelogs``)."""
    tables: Any = app.tables
    recovery = tables.recovery
    offsets = recovery.active_offsets
    tp_to_table = recovery.tp_to_table
    buffers = recovery.buffers
    sizes = recovery.buffer_sizes
    for message in messages:
        tp = message.tp
        seen = offsets.get(tp)
        if seen is not None and message.offset <= seen:
            continue
        offsets[tp] = message.offset
        table = tp_to_table[tp]
        buffer = buffers[table]
        buffer.append(ChangelogRecord(message))
        size = sizes.get(tp)
        if size is None:
            size = sizes[tp] = table.recovery_buffer_size
        if len(buffer) >= size:
            table.apply_changelog_batch(buffer)
            buffer.clear()
    if recovery.in_recovery and not recovery.need_recovery():
        recovery.flush_buffers()
        recovery._set_recovery_ended()
        recovery.signal_recovery_end.set()


# --- consuming ---------------------------------------------------------------
#
# Faust's consumer asks its aiokafka thread for the records of the partitions
# that are active, then drops, without a word, records of partitions that are no
# longer active by the time it yields them. aiokafka has already moved those
# partitions' positions past them, so they are never processed unless a later
# seek to committed offsets undoes it. Two holes, both hit by a worker
# restarting after a crash: while a recovery pauses the changelog partitions,
# the live set of active partitions handed to the thread can be empty for a
# moment, which aiokafka reads as "all partitions"; and aiokafka's
# ``seek_to_committed`` leaves partitions without a committed offset where they
# are. The pipeline's idempotence relies on records of one partition being
# applied in offset order, so a skipped record must be fetched again before any
# later one: the thread gets a snapshot of the active partitions (none: no
# fetch), records of partitions gone inactive are put back by rewinding to their
# first offset at once, and partitions without a committed offset are rewound to
# their beginning, as ``auto_offset_reset=earliest`` would do.


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


class QuickFetchThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class RewindingConsumer(aiokafka_driver.Consumer):
    def _new_consumer_thread(self) -> QuickFetchThread:
        return QuickFetchThread(self, loop=self.loop, beacon=self.beacon)

    def verify_event_path(self, now: float, tp: TP) -> None:
        # Faust's livelock check logs an ERROR every few seconds for a partition
        # whose highwater is past its position with no stream reading it, once
        # the worker is 5 minutes old. A changelog partition of an active table
        # is exactly that by design: paused after its recovery, moved on by the
        # worker's own writes. The check stays for the input topics.
        if tp.topic in self.app.tables.changelog_topics:
            return None
        return aiokafka_driver.Consumer.verify_event_path(self, now, tp)

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


class BatchConsumer(RewindingConsumer):
    """Hands whole poll batches of the handler's topics to the handler.

    Faust's drain loop awaits a new delivery (and its task pair) per message,
    about 90 µs each whatever the agent does; this one drains a poll batch,
    hands the handler's records to it in one call and acks them, so offsets are
    committed exactly as Faust commits acked messages. Records of other topics
    (changelogs during a recovery) go through Faust's own path. A copy of
    ``faust.transport.consumer.Consumer._drain_messages`` with that one change.

    Upstream yields to the event loop every 100 messages; its messages are
    tracked by then. Here a batch is neither tracked nor handled until it is
    handed over, so a yield while collecting would let a rebalance revoke its
    partitions (Faust waits only for tracked messages) and the batch would then
    be applied to partitions another worker owns. Collecting is a cheap loop,
    and the loop awaits the handler (which awaits the broker) once per batch.
    Records of partitions revoked meanwhile are not handed over at all.
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
                handler = cast(BatchTransport, self.transport).batch_handler
                batch: list[Message] = []
                restoring = self._restoring()
                generation = self.app.consumer_generation_id
                changes: list[Message] = []
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
                    elif tp in restoring:
                        changes.append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, offset)
                if changes and self.app.consumer_generation_id == generation:
                    # else a rebalance came meanwhile: they may be ahead of where the
                    # next recovery seeks to (applied, they would make it skip the
                    # records between); Faust's queue drops them on resume too, and
                    # that recovery reads them again
                    if self._restoring():
                        restore_directly(self.app, changes)
                if batch and handler is not None:
                    await self._hand_over(handler, batch)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    def _restoring(self) -> Set[TP]:
        """Changelog partitions whose records ``restore_directly`` applies now:
        those of RocksDB tables that an active recovery is reading, flow running."""
        if not (self.flow_active and self.app.flow_control.is_active()):
            return frozenset()
        return restoring_partitions(self.app)

    async def _hand_over(self, handler: BatchHandler, batch: list[Message]) -> None:
        # A rebalance may take partitions at any await: their new owner reads
        # them again from the last commit, so neither apply nor ack them here.
        assigned = self.assignment()
        batch = [m for m in batch if m.tp in assigned]
        if not batch:
            return
        await whole(handler.handle(batch))
        assigned = self.assignment()
        for message in batch:
            if message.tp in assigned:
                self.ack(message)
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()


async def whole(work: Awaitable[None]) -> None:
    """Run ``work`` to its end even when the caller is cancelled meanwhile, then
    pass the cancellation on.

    A stopping worker's Faust cancels the drain loop, possibly while a batch
    settles. Cut there, the pipeline would hold the batch's events while the
    broker and the local store hold only part of its writes, and a day-close
    tick still running would record views and totals from that state (and the
    store would fall behind its changelog). Finished, the batch is all on the
    broker; unacknowledged, it is read again by the next owner as repeats.
    Faust's stop waits for the cancelled drain loop, so it waits for this too.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()


class BatchTransport(aiokafka_driver.Transport):
    Consumer: ClassVar[type[Any]] = BatchConsumer
    batch_handler: BatchHandler | None = None  # set by FaustBroker.consume


# --- producing and table writes ---------------------------------------------
#
# Faust's ``table[key] = value`` takes the partition (of both the store and the
# changelog) from the event being processed, and sends each changelog record
# through its producer buffer, one awaited send per record. Here a batch's puts
# are collected per changelog partition; at ``settle`` the stores are written
# (RocksDB partitions through one WriteBatch each, as Faust's own
# ``apply_changelog_batch`` does), each partition's records go to the broker as
# whole record batches (aiokafka's ``send_batch``: no future per record), and
# the call returns once all of it is on the broker. A key is written in an
# explicit partition, so timers can write too.
#
# Embedded broker: Tansu (<= 0.6) answers ListOffsets(latest) with the base
# offset of a partition's last batch + 1, so after a multi-record batch a
# recovery would stop short of a changelog's end. With ``end_markers`` every
# changelog partition written in a batch gets, once the batch is on the broker,
# a tombstone of a key no table holds, alone in its own batch: the last batch
# of a changelog partition then always holds one record and its base + 1 is the
# true end. Production Kafka needs none of this.


class StoredPartition:
    """One partition of a RocksDB table store, read raw (keys and values as the
    table's serializers wrote them). Each call finds the partition's database
    anew: Faust closes and reopens them across rebalances."""

    def __init__(self, store: Any, partition: int) -> None:
        self._store = store
        self._partition = partition

    def get(self, key: bytes) -> bytes | None:
        value = self._store._db_for_partition(self._partition).get(key)
        return cast(bytes | None, value)

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        db = self._store._db_for_partition(self._partition)
        return cast(Iterable[tuple[bytes, bytes]], self._store._visible_items(db))


def stored_partition(table: TableT[Any, Any], partition: int) -> StoredPartition | None:
    """``partition`` of a table's RocksDB store; None for another store."""
    store: Any = table.data
    if RocksDBStore is None or not isinstance(store, RocksDBStore):
        return None
    return StoredPartition(store, partition)


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


class ChangelogWriter:
    """Table writes in explicit partitions and sends, settled a batch at a time."""

    def __init__(self, app: faust.App, end_markers: bool) -> None:
        self.app = app
        self.end_markers = end_markers
        self._stores = StoreWrites()
        # changelog partition -> (its table, records in write order)
        self._changes: dict[TP, tuple[TableT[Any, Any], list[tuple[bytes, bytes]]]] = {}
        self._sent: list[Awaitable[Any]] = []

    def put(self, table: TableT[Any, Any], partition: int, key: Any, value: Any) -> None:
        """Set ``key`` in the store's ``partition``; its changelog record goes at ``settle``."""
        serializers: Any = table  # Collection has them; TableT does not declare them
        raw_key = codecs.dumps(serializers.key_serializer, key)
        raw_value = codecs.dumps(serializers.value_serializer, value)
        self._stores.put(table, partition, key, value, raw_key, raw_value)
        tp = TP(table.changelog_topic.get_topic_name(), partition)
        change = self._changes.get(tp)
        if change is None:
            change = self._changes[tp] = (table, [])
        change[1].append((raw_key, raw_value))

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        sent = await self.app.producer.send(topic, key, value, partition, None, headers)
        self._sent.append(sent)

    async def settle(self) -> None:
        """Wait until everything put or sent since the last call is on the broker."""
        changes, self._changes = self._changes, {}
        sent, self._sent = self._sent, []
        batches = [
            (tp, table, await self._send_batches(tp, records))
            for tp, (table, records) in changes.items()
        ]
        # Awaiting each (mostly done) future costs far less than gather's task per future.
        for done in sent:
            await done
        written: dict[TP, tuple[TableT[Any, Any], int]] = {}  # changelog tp -> last offset
        for tp, table, deliveries in batches:
            for future, count in deliveries:
                meta = await future
                written[tp] = (table, meta.offset + count - 1)
        if self.end_markers:
            markers = [
                (tp, table, await self._send_end_marker(tp)) for tp, (table, _) in written.items()
            ]
            for tp, table, marker in markers:
                written[tp] = (table, (await marker).offset)
        # The local store only after its changelog is on the broker: a store ahead
        # of its changelog (a kill -9 in between) would keep, on a restart with the
        # same data directory, writes the changelog never got; the input offsets
        # re-read would be skipped as applied, and whoever recovers the partition
        # from the changelog later would miss them.
        self._stores.write()
        for tp, (table, offset) in written.items():
            # What Table._on_changelog_sent does: RocksDB remembers how far it holds.
            store: Any = table.data
            store.set_persisted_offset(tp, offset)

    async def _send_batches(
        self, tp: TP, records: list[tuple[bytes, bytes]]
    ) -> list[tuple[Awaitable[Any], int]]:
        """Send ``records`` in order as record batches: (delivery, records in it) each."""
        producer = self._producer()
        out: list[tuple[Awaitable[Any], int]] = []
        batch, count = producer.create_batch(), 0
        for key, value in records:
            # A batch's first record always fits, whatever its size.
            if batch.append(timestamp=None, key=key, value=value) is None:
                out.append((await self._submit(producer, batch, tp), count))
                batch, count = producer.create_batch(), 0
                batch.append(timestamp=None, key=key, value=value)
            count += 1
        batch.close()
        out.append((await self._submit(producer, batch, tp), count))
        return out

    @staticmethod
    async def _submit(producer: Any, batch: Any, tp: TP) -> Awaitable[Any]:
        delivery: Awaitable[Any] = await producer.send_batch(
            batch, tp.topic, partition=tp.partition
        )
        return delivery

    async def _send_end_marker(self, tp: TP) -> Awaitable[Any]:
        producer = self.app.producer
        return await producer.send(tp.topic, END_MARKER_KEY, None, tp.partition, None, None)

    def _producer(self) -> Any:
        """The aiokafka producer under Faust's."""
        return self.app.producer._ensure_producer()  # type: ignore[attr-defined]
