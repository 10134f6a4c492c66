"""A test harness: the real ingest and day close over an in-memory broker.

In the spirit of ``bytewax.testing``: ``MemoryBroker`` holds append-only logs
per topic partition with a read position each; ``MemoryWriter`` stands in for
the broker adapter's changelog writer (puts and sends reach the broker at
``settle``, serialized by the tables' own codecs); ``MemoryWorker`` runs the
real ``BatchIngest`` and ``DayCloser`` over them against a serving store, and
can crash: what was not settled is lost and reading resumes at the last
commit, as with Faust. No Faust app, no network but the serving store's.

    broker = MemoryBroker()
    broker.send(settings.topic_purchases, 0, b'{"event_id": ...}')
    worker = MemoryWorker(settings, broker, store, owned={0, 1, 2, 3})
    while await worker.step(random.Random(1)):
        pass
    await worker.tick()
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from faust.serializers.codecs import Codec

from agents.ingest import BatchIngest
from stream_app.day_close import DayCloser
from stream_app.keys import source_name
from stream_app.kpi.days import now_ms
from stream_app.pipeline import Pipeline, Record
from stream_app.results_log import MemoryResultsLog, ResultsLog
from stream_app.serving import ServingStore
from stream_app.settings import Settings
from tables import codecs
from tables.state import RawPartition, StateTables

TopicPartition = tuple[str, int]


class MemoryBroker:
    """Append-only logs per (topic, partition) with the position read up to in each."""

    def __init__(self) -> None:
        self.logs: dict[TopicPartition, list[Record]] = {}
        self.positions: dict[TopicPartition, int] = {}  # the next offset to read
        self.committed: dict[TopicPartition, int] = {}  # the group's commits

    def send(
        self,
        topic: str,
        partition: int,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]] = (),
        key: bytes | None = None,
    ) -> None:
        log = self.logs.setdefault((topic, partition), [])
        log.append(Record(topic, partition, len(log), key, value, tuple(headers)))

    def ready(
        self, partitions: Iterable[int] | None = None, topics: Iterable[str] | None = None
    ) -> list[TopicPartition]:
        """Topic partitions with records not read yet (of ``partitions`` and
        ``topics`` only)."""
        wanted = None if partitions is None else set(partitions)
        names = None if topics is None else set(topics)
        return sorted(
            tp
            for tp, log in self.logs.items()
            if (wanted is None or tp[1] in wanted)
            and (names is None or tp[0] in names)
            and self.positions.get(tp, 0) < len(log)
        )

    def take(self, tp: TopicPartition) -> Record:
        offset = self.positions.get(tp, 0)
        self.positions[tp] = offset + 1
        return self.logs[tp][offset]

    def records(self, topic: str) -> Iterator[Record]:
        for (name, _), log in sorted(self.logs.items()):
            if name == topic:
                yield from log


class MemoryTable:
    """A changelog-backed table as a restore reads it: the last value settled per key,
    kept as the bytes the table's codecs write."""

    def __init__(self, key_codec: Codec, value_codec: Codec) -> None:
        self.key_codec, self.value_codec = key_codec, value_codec
        self.data: dict[bytes, bytes] = {}

    def items(self) -> Iterator[tuple[Any, Any]]:
        for key, value in self.data.items():
            yield self.key_codec.loads(key), self.value_codec.loads(value)

    def write(self, partition: int, raw_key: bytes, raw_value: bytes) -> None:
        self.data[raw_key] = raw_value


class StoredMemoryTable(MemoryTable):
    """A table as a RocksDB store holds it: raw records per partition, read
    lazily (``tables.state.CustomerRecords``) instead of decoded at a restore."""

    def __init__(self, key_codec: Codec, value_codec: Codec) -> None:
        super().__init__(key_codec, value_codec)
        self.partitions: dict[int, dict[bytes, bytes]] = {}

    def items(self) -> Iterator[tuple[Any, Any]]:
        for data in self.partitions.values():
            for key, value in data.items():
                yield self.key_codec.loads(key), self.value_codec.loads(value)

    def write(self, partition: int, raw_key: bytes, raw_value: bytes) -> None:
        self.partitions.setdefault(partition, {})[raw_key] = raw_value

    def partition(self, number: int) -> MemoryPartition:
        return MemoryPartition(self.partitions.setdefault(number, {}))


class MemoryPartition:
    """``tables.state.RawPartition`` over a dict: keys in order, as RocksDB's."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return sorted(self.data.items())


@dataclass(frozen=True)
class StoredMemoryTables(StateTables):
    """Tables whose customers a restore reads lazily, as from RocksDB: customers
    are decoded when used and evicted past the cache limit."""

    def stored(self, number: int) -> RawPartition | None:
        return cast(StoredMemoryTable, self.customers).partition(number)


def memory_tables(partitions: int, stored: bool = False) -> StateTables:
    """``stored``: the customers as a RocksDB store keeps them (``StoredMemoryTables``)."""
    codecs.register()  # a stored table's restore reads meta records by codec name
    kind = StoredMemoryTable if stored else MemoryTable
    customers = kind(codecs.StateKeyCodec(), codecs.CustomerCodec())
    rejections = MemoryTable(codecs.Utf8Codec(), codecs.LedgerCodec())
    tables = StoredMemoryTables if stored else StateTables
    return tables(customers, rejections, partitions)  # type: ignore[arg-type]


Send = tuple[str, int, bytes | None, tuple[tuple[str, bytes], ...], bytes | None]


class Killed(Exception):
    """The process died (kill -9) while its writes were reaching the broker."""


class MemoryWriter:
    """The changelog writer's contract (agents/ingest.py ``Writer``), in memory."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self._puts: list[tuple[MemoryTable, int, bytes, bytes]] = []
        self._sends: list[Send] = []
        self._kill: random.Random | None = None

    def kill_in_next_settle(self, rng: random.Random) -> None:
        """The next ``settle`` dies midway: of what it has for each changelog and
        topic partition, a prefix chosen by ``rng`` reaches the broker (a
        partition's records arrive in order, partitions independently); then it
        raises ``Killed``."""
        self._kill = rng

    def put(self, table: Any, partition: int, key: Any, value: Any) -> None:
        raw_key, raw_value = table.key_codec.dumps(key), table.value_codec.dumps(value)
        self._puts.append((table, partition, raw_key, raw_value))

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._sends.append((topic, partition or 0, value, tuple(headers or ()), key))

    async def settle(self) -> None:
        puts, self._puts = self._puts, []
        sends, self._sends = self._sends, []
        rng, self._kill = self._kill, None
        if rng is not None:
            puts = _prefixes(puts, lambda put: (id(put[0]), put[1]), rng)
            sends = _prefixes(sends, lambda send: (send[0], send[1]), rng)
        for table, partition, raw_key, raw_value in puts:
            table.write(partition, raw_key, raw_value)
        for topic, partition, value, headers, key in sends:
            self.broker.send(topic, partition, value, headers, key)
        if rng is not None:
            raise Killed("killed while settling")

    def lose_unsettled(self) -> None:
        self._puts, self._sends = [], []


def _prefixes(
    items: list[Any], partition: Callable[[Any], Hashable], rng: random.Random
) -> list[Any]:
    """A random prefix of each partition's items, in the order given."""
    counts = Counter(partition(item) for item in items)
    cuts = {p: rng.randint(0, n) for p, n in counts.items()}
    kept: list[Any] = []
    for item in items:
        p = partition(item)
        if cuts[p] > 0:
            cuts[p] -= 1
            kept.append(item)
    return kept


class MemoryWorker:
    """A worker owning ``owned`` partitions: the real pipeline, ingest and day close
    over ``broker``, its tables surviving crashes (they stand for the changelog)."""

    def __init__(
        self,
        settings: Settings,
        broker: MemoryBroker,
        store: ServingStore,
        owned: Iterable[int],
        clock: Callable[[], int] = now_ms,
        tables: StateTables | None = None,
        results: ResultsLog | None = None,
    ) -> None:
        """``results``: the results topic, shared by the workers of one deployment."""
        self.settings, self.broker, self.store = settings, broker, store
        self.results = results if results is not None else MemoryResultsLog()
        self.owned = set(owned)
        self.clock = clock
        self.tables = tables or memory_tables(settings.partitions)
        self.acked: dict[TopicPartition, int] = {}  # read and handled, not yet committed
        self.kills = 0
        self.start()

    def start(self) -> None:
        """Load the owned partitions from the tables, as after a rebalance."""
        self.pipeline = Pipeline(self.settings, loader=self.tables.load, clock=self.clock)
        self.pipeline.assign(self.owned)
        self.writer = MemoryWriter(self.broker)
        self.ingest = BatchIngest(self.settings, self.pipeline, self.tables, self.writer)
        self.closer = DayCloser(
            self.settings,
            self.pipeline,
            self.store,
            self.ingest.save_meta,
            self.ingest.flush,
            self.results,
            clock=self.clock,
            lock=self.ingest.lock,
            backlog=self.backlog,
        )

    def backlog(self) -> list[str]:
        """Owned input partitions with records not read yet."""
        inputs = self.settings.topics.values()
        return [source_name(t, p) for t, p in self.broker.ready(self.owned, inputs)]

    def unread(self) -> list[TopicPartition]:
        """Owned partitions of the topics this worker reads with records not read yet
        (the dead letters and alerts it writes are for others)."""
        return self.broker.ready(self.owned, self.ingest.topics)

    async def step(self, rng: random.Random, batch: int = 1) -> bool:
        """Read up to ``batch`` records of one owned partition chosen by ``rng`` and
        hand them to the ingest; False when nothing is left to read."""
        ready = self.unread()
        if not ready:
            return False
        tp = rng.choice(ready)
        unread = len(self.broker.logs[tp]) - self.broker.positions.get(tp, 0)
        records = [self.broker.take(tp) for _ in range(min(batch, unread))]
        await self.ingest.handle(records)
        self.acked[tp] = records[-1].offset + 1  # only now may it be committed
        return True

    async def kill_mid_batch(self, rng: random.Random, batch: int = 50) -> None:
        """kill -9 while a batch of up to ``batch`` records is being written (a
        random part of its writes arrives), then a restart."""
        self.kills += 1
        self.writer.kill_in_next_settle(rng)
        try:
            await self.step(rng, batch)
        except Killed:
            pass
        self.crash_and_restart()

    async def send_markers(self) -> None:
        await self.ingest.send_markers()

    async def tick(self) -> None:
        """A day-close tick (and the next at once while one stops on its time
        budget, as the worker's timer runs them), then Faust's periodic commit of
        what was read."""
        while await self.closer.tick():
            pass
        self.commit()

    def commit(self) -> None:
        """Commit what this worker handled, as Faust commits acked offsets."""
        self.broker.committed.update(self.acked)
        self.acked = {}

    def crash_and_restart(self) -> None:
        """Whatever was not settled is lost; reading resumes at the group's commit."""
        self.writer.lose_unsettled()
        self.acked = {}
        for tp in list(self.broker.positions):
            if tp[1] in self.owned:
                self.broker.positions[tp] = self.broker.committed.get(tp, 0)
        self.start()
