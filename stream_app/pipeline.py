"""The pipeline builder: one raw record in, one outcome out. No faust imports.

Unit tests drive it directly; the Faust agent drives it from the broker and
carries out the outcome (table write, dead-letter send, forward).
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from aiokafka.partitioner import murmur2

from stream_app import keys
from stream_app.contract import (
    Event,
    EventType,
    Rejected,
    dead_letter_record,
    decode,
)
from stream_app.keys import MARK_HEADER, SOURCE_HEADER, TYPE_HEADER, source_name
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.customer_cache import Records
from stream_app.kpi.days import DAY_MS, now_ms, to_date
from stream_app.kpi.meta import ClosedTerms, PartitionMeta
from stream_app.kpi.partition import Late, PartitionState, Repeat
from stream_app.kpi.rejections import RejectionLedger
from stream_app.kpi.totals import Totals
from stream_app.settings import Settings


@dataclass(slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class Applied:
    customer_id: str
    state: CustomerState
    event_type: str


@dataclass(slots=True)
class Duplicate:
    event_id: str
    event_type: str
    # A repeat read at a new offset: the customer's state, that offset recorded, to
    # write back (stream_app/kpi/customer.py); None for a record read before.
    customer_id: str | None = None
    state: CustomerState | None = None


@dataclass(slots=True)
class DeadLettered:
    reason: str
    ledger_key: str  # the rejection table key (stream_app/keys.py)
    ledger: RejectionLedger | None  # None: this offset was counted before a crash
    dead_letter: bytes
    dead_letter_key: bytes  # replays of a record share it (stream_app/keys.py)
    event_type: str = "unknown"  # when the topic or a header tells it


@dataclass(slots=True)
class Forward:
    partition: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(slots=True)
class Marked:
    """A watermark marker was read: ``source`` had been read up to ``mark_ms``."""

    source: str
    mark_ms: int


Outcome = Applied | Duplicate | DeadLettered | Forward | Marked


@dataclass(slots=True)
class PartitionContent:
    """What the tables hold for one partition."""

    # customers as states or records (kpi/state_codec.py), unless read from ``records``
    customers: list[tuple[str, CustomerState | bytes]] = field(default_factory=list)
    records: Records | None = None  # a store on disk to read customer records from
    closed_terms: ClosedTerms | None = None
    ledgers: list[tuple[str, RejectionLedger]] = field(default_factory=list)
    meta: PartitionMeta | None = None


PartitionLoader = Callable[[Iterable[int]], dict[int, PartitionContent]]


def partition_for(customer_id: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as producers keyed by customer_id use."""
    return _key_hash(customer_id) % partitions


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(customer_id: str) -> int:
    # aiokafka's murmur2 is pure Python (~3% of ingest); customers come back often.
    return int(murmur2(customer_id.encode()) & 0x7FFFFFFF)


class RecordLike(Protocol):
    """A consumed record: ``Record``, or a Faust message as the consumer hands it
    over (its headers a sequence of (name, value) pairs, a mapping, or None)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Any: ...


def _header_items(record: RecordLike) -> Iterable[tuple[str, bytes | None]]:
    headers = record.headers
    if not headers:
        return ()
    return headers.items() if isinstance(headers, Mapping) else headers


def _text(value: bytes | None) -> str:
    return (value or b"").decode(errors="replace")


def _origin(record: RecordLike) -> tuple[str, int]:
    """Where a record was first read: ("topic/partition", offset)."""
    for name, value in _header_items(record):
        if name == SOURCE_HEADER:
            origin = keys.parse_origin(_text(value))
            if origin is not None:
                return origin
    return source_name(record.topic, record.partition), record.offset


def _marker(record: RecordLike) -> tuple[str, int] | None:
    for name, value in _header_items(record):
        if name == MARK_HEADER:
            return keys.parse_marker(_text(value))
    return None


def _closing_order(part: PartitionState) -> tuple[int, int]:
    """Partitions that never closed a day first, then by their last closed day."""
    closed = part.kpi.closed_day
    return (-1 if closed is None else closed, part.partition)


def _nothing_stored(numbers: Iterable[int]) -> dict[int, PartitionContent]:
    return {n: PartitionContent() for n in numbers}


class Pipeline:
    """Decode -> route -> dedupe -> apply, over the partitions this worker owns."""

    def __init__(
        self,
        settings: Settings,
        loader: PartitionLoader | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.params = settings.kpi_params
        self.contract = settings.contract
        self.partition_count = settings.partitions
        self.dedup_horizon_ms = settings.dedup_horizon_days * DAY_MS
        self.input_types = {topic: kind for kind, topic in settings.topics.items()}
        self.rerouted_topic = settings.topic_rerouted
        # Any input partition can feed any state partition (through a forward).
        self.sources = [
            source_name(t, q) for t in self.input_types for q in range(self.partition_count)
        ]
        self.idle_ms = settings.idle_timeout_seconds * 1000
        self.partitions: dict[int, PartitionState] = {}
        # Input partitions read since the last markers were made.
        self._unmarked: set[str] = set()
        self._loader = loader or _nothing_stored
        self._clock = clock

    def _load(self, numbers: Iterable[int]) -> None:
        now = self._clock()
        for n, content in self._loader(numbers).items():
            fresh = PartitionState(
                n,
                self.dedup_horizon_ms,
                self.sources,
                self.idle_ms,
                now,
                params=self.params,
                cache_limit=self.settings.cache_per_partition,
            )
            self.partitions[n] = fresh.restore(
                content.customers,
                content.ledgers,
                content.meta,
                content.records,
                content.closed_terms,
            )

    def partition(self, number: int) -> PartitionState:
        if number not in self.partitions:
            self._load([number])
        return self.partitions[number]

    def assign(self, numbers: Iterable[int]) -> None:
        """Own exactly these partitions: load new ones (one scan), forget the rest."""
        wanted = set(numbers)
        for number in list(self.partitions):
            if number not in wanted:
                del self.partitions[number]
        missing = sorted(wanted - self.partitions.keys())
        if missing:
            self._load(missing)

    def handle(self, record: RecordLike) -> Outcome:
        now = self._clock()
        if record.topic == self.rerouted_topic:
            marker = _marker(record)
            if marker is not None:
                return self._marked(record.partition, marker, now)
        kind = self._event_type(record)
        if isinstance(kind, Rejected):
            return self._dead_letter(record, kind, now)
        decoded = decode(kind, record.value, now, self.contract)
        if isinstance(decoded, Rejected):
            return self._dead_letter(record, decoded, now, kind.value)
        owner = partition_for(decoded.customer_id, self.partition_count)
        if record.topic != self.rerouted_topic:
            self._unmarked.add(source_name(record.topic, record.partition))
            if owner != record.partition:
                self._forwarded_read(record, decoded.occurred_ms, now)
                return self._forward(record, decoded, owner)
        source, offset = _origin(record)
        state = self.partition(owner).apply(decoded, source, offset, now)
        if state is None:
            return Duplicate(decoded.event_id, decoded.type.value)
        if isinstance(state, Repeat):
            event_type = decoded.type.value
            return Duplicate(decoded.event_id, event_type, decoded.customer_id, state.state)
        if isinstance(state, Late):
            return self._late(record, state, owner, source, offset, now, decoded.type.value)
        return Applied(decoded.customer_id, state, decoded.type.value)

    def _forwarded_read(self, record: RecordLike, occurred_ms: int, now: int) -> None:
        """A forwarded event still moves the watermark of the partition it was read
        from. That state partition has applied every event of it that it owns
        (``apply`` observes those), so its view of the source is the read
        watermark; the other partitions learn it from ``markers``.
        """
        source = source_name(record.topic, record.partition)
        self.partition(record.partition).watermarks.observe(source, occurred_ms, now)

    def markers(self) -> list[Forward]:
        """Markers to send on the rerouted topic: for every input partition read since
        the last call, its watermark, to every other partition. Sent after the
        records forwarded so far, each arrives behind them."""
        out: list[Forward] = []
        for source in sorted(self._unmarked):
            read_from = keys.source_partition(source)
            if read_from not in self.partitions:  # no longer ours: its new owner marks it
                continue
            mark = self.partitions[read_from].watermarks.marks.get(source)
            if mark is None:
                continue
            header = ((MARK_HEADER, keys.marker_header(source, mark)),)
            out.extend(
                Forward(p, b"", b"", header) for p in range(self.partition_count) if p != read_from
            )
        self._unmarked.clear()
        return out

    def _marked(self, partition: int, marker: tuple[str, int], now: int) -> Marked:
        source, mark_ms = marker
        self.partition(partition).watermarks.observe(source, mark_ms, now)
        return Marked(source, mark_ms)

    def _event_type(self, record: RecordLike) -> EventType | Rejected:
        kind = self.input_types.get(record.topic)
        if kind is not None:
            return kind
        for name, value in _header_items(record):
            if name == TYPE_HEADER:
                try:
                    return EventType(_text(value))
                except ValueError:
                    break
        return Rejected("unknown_type", f"no event type for topic {record.topic!r}")

    def _forward(self, record: RecordLike, event: Event, owner: int) -> Forward:
        source = keys.origin_header(record.topic, record.partition, record.offset)
        headers = ((TYPE_HEADER, event.type.value.encode()), (SOURCE_HEADER, source))
        value = cast(bytes, record.value)  # it decoded, so it is not a tombstone
        return Forward(owner, event.customer_id.encode(), value, headers)

    def _letter(self, record: RecordLike, rejected: Rejected, now: int) -> bytes:
        return dead_letter_record(
            rejected,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            rejected_at_ms=now,
            max_payload_bytes=self.settings.dead_letter_payload_bytes,
        )

    def _dead_letter(
        self, record: RecordLike, rejected: Rejected, now: int, event_type: str = "unknown"
    ) -> DeadLettered:
        part = self.partition(record.partition)
        ledger = part.reject(record.topic, record.offset, rejected.reason)
        payload = self._letter(record, rejected, now)
        key = keys.ledger_key(record.topic, record.partition)
        origin = keys.dead_letter_key(record.topic, record.partition, record.offset)
        return DeadLettered(rejected.reason, key, ledger, payload, origin, event_type)

    def _late(
        self,
        record: RecordLike,
        late: Late,
        owner: int,
        source: str,
        offset: int,
        now: int,
        event_type: str,
    ) -> DeadLettered:
        """Counted once per origin offset, in a ledger of the owner partition:
        a forwarded record forwarded again after a crash keeps its origin."""
        ledger_source = keys.late_ledger_source(source)
        ledger = self.partition(owner).reject(ledger_source, offset, "late")
        rejected = Rejected(
            "late",
            f"business day {to_date(late.day)} is final (last final day "
            f"{to_date(late.last_final)}, allowed lateness {self.settings.lateness_days} days)",
        )
        payload = self._letter(record, rejected, now)
        origin = keys.late_dead_letter_key(source, offset)
        key = keys.ledger_key(ledger_source, owner)
        return DeadLettered("late", key, ledger, payload, origin, event_type)

    def backlogged(self, sources: Iterable[str], now: int) -> None:
        """These input partitions have records not read yet: none of them is idle
        (kpi/watermarks.py ``pending``), in any owned partition's view."""
        pending = list(sources)
        if pending:
            for part in self.partitions.values():
                part.watermarks.pending(pending, now)

    def settled(self) -> None:
        """Everything applied so far is in the table stores."""
        for part in self.partitions.values():
            part.settled()

    def close_through(
        self,
        day: int,
        first_day: int | None = None,
        max_days: int | None = None,
        deadline: float = math.inf,
    ) -> tuple[int, bool]:
        """Make ``day`` final in every owned partition, at most ``max_days`` more
        days each (a partition that never closed starts at ``first_day``), a day
        of each partition in turn, the furthest behind first (a day merges once
        every partition has it, so a call cut short by its deadline must not
        favour the same partitions every time), until ``deadline``
        (``time.perf_counter``) has passed with a day closed. How many days
        closed, and whether it stopped on the deadline."""
        closed = 0
        for _ in itertools.repeat(None) if max_days is None else range(max_days):
            progressed = False
            for part in sorted(self.partitions.values(), key=_closing_order):
                if closed and time.perf_counter() >= deadline:
                    return closed, True
                if part.close_through(day, first_day, 1):
                    closed += 1
                    progressed = True
            if not progressed:
                break
        return closed, False

    def totals(self) -> Totals:
        merged = Totals()
        for part in self.partitions.values():
            merged.merge(part.totals)
        return merged

    def rejected(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for part in self.partitions.values():
            for reason, n in part.rejected().items():
                merged[reason] = merged.get(reason, 0) + n
        return dict(sorted(merged.items()))
