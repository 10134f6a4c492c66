"""A partition's customers: the recently used as objects, the rest as records.

A customer's state as Python objects (dicts of rows) takes ~3.5 kB; as its
version-5 record (kpi/state_codec.py) ~150 B. A partition keeps at most
``limit`` customers decoded, in the order they were admitted, first in first
out (a customer used often is evicted now and then and costs one decode,
instead of every read paying for recency). The others are records:

- in the table store (``records``, RocksDB on disk): the worker writes every
  changed customer there once its changelog is on the broker, and then calls
  ``settled``, which drops the oldest decoded customers down to the limit.
  Until then a changed customer stays decoded, so a read never finds an older
  record than the object a batch is about to write;
- or, without a store to read (the memory store, tests), encoded into a dict
  of this cache as they are evicted, as soon as the limit is passed.

A customer read to be changed is admitted (``get``); one read to compute a
contribution is decoded and dropped (``peek``). Days that closing has pruned
(``prune_before``) are pruned from a record as it is decoded: the histories
kept decoded were pruned in place, and a record may predate that.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Protocol

from stream_app.kpi.customer import CustomerState
from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.state_codec import decode_state, encode_state, first_purchase_day


class Records(Protocol):
    """A partition's customer records as a store holds them (tables/state.py)."""

    def get(self, customer: str) -> bytes | None: ...

    def items(self) -> Iterable[tuple[str, bytes]]: ...


class CustomerCache:
    def __init__(self, limit: int = 100_000, records: Records | None = None) -> None:
        if limit < 1:
            raise ValueError(f"the cache must hold at least one customer, not {limit}")
        self.limit = limit
        self.records = records
        self.prune_before: int | None = None
        # popitem(last=False) is O(1); a dict's oldest keys are found by skipping
        # the slots its earlier evictions left
        self._hot: OrderedDict[str, CustomerState] = OrderedDict()
        self._cold: dict[str, bytes] = {}  # without ``records`` only
        self._count = 0
        self.decodes = 0  # records decoded since start (evicted customers read again)
        self.histories = Histories(self)

    def get(self, customer: str) -> CustomerState | None:
        """The customer's state, admitted to be changed; None for a new customer."""
        state = self._hot.get(customer)
        if state is not None:
            return state
        state = self._read(customer, admit=True)
        if state is not None:
            self._admit(customer, state)
        return state

    def __getitem__(self, customer: str) -> CustomerState:
        state = self.get(customer)
        if state is None:
            raise KeyError(customer)
        return state

    def peek(self, customer: str) -> CustomerState | None:
        """The customer's state to read only: decoded, not admitted, when evicted."""
        state = self._hot.get(customer)
        return state if state is not None else self._read(customer, admit=False)

    def add(self, customer: str, state: CustomerState) -> None:
        """A customer not seen before (``get`` returned None)."""
        self._count += 1
        self._admit(customer, state)

    def __contains__(self, customer: object) -> bool:
        if customer in self._hot or customer in self._cold:
            return True
        return (
            isinstance(customer, str)
            and self.records is not None
            and (self.records.get(customer) is not None)
        )

    def __len__(self) -> int:
        return self._count

    def items(self) -> Iterator[tuple[str, CustomerState]]:
        """Every customer, the evicted ones decoded without being admitted."""
        hot = self._hot
        if self.records is None:
            yield from hot.items()
            for customer, record in self._cold.items():
                yield customer, self._decode(record)
            return
        stored: set[str] = set()
        for customer, record in self.records.items():
            state = hot.get(customer)
            if state is not None:
                stored.add(customer)
            yield customer, state if state is not None else self._decode(record)
        for customer, state in hot.items():  # new since the store was last written
            if customer not in stored:
                yield customer, state

    def values(self) -> Iterator[CustomerState]:
        return (state for _, state in self.items())

    def load(self, records: Iterable[tuple[str, bytes]]) -> None:
        """Stored records to keep here (no ``records`` to read them from)."""
        for customer, record in records:
            if customer not in self._cold and customer not in self._hot:
                self._count += 1
            self._hot.pop(customer, None)
            self._cold[customer] = record

    def counted(self, customers: int) -> None:
        """``records`` holds this many customers (read by a restore's scan)."""
        self._count = customers

    def first_purchase_days(self) -> Iterator[tuple[str, int | None]]:
        """Every customer's first purchase day, read from the head of each record."""
        hot = self._hot
        records = self._cold.items() if self.records is None else self.records.items()
        for customer, state in hot.items():
            yield customer, state.history.first_purchase_day
        for customer, record in records:
            if customer not in hot:
                yield customer, first_purchase_day(record)

    def settled(self) -> None:
        """Every change so far is in ``records``: drop the oldest decoded customers
        down to the limit."""
        hot = self._hot
        if self.records is not None:
            for _ in range(len(hot) - self.limit):
                hot.popitem(last=False)

    @property
    def decoded(self) -> int:
        return len(self._hot)

    def decoded_history(self, customer: str) -> CustomerHistory | None:
        state = self._hot.get(customer)
        return None if state is None else state.history

    def _read(self, customer: str, admit: bool) -> CustomerState | None:
        if self.records is None:
            record = self._cold.pop(customer, None) if admit else self._cold.get(customer)
        else:
            record = self.records.get(customer)
        return None if record is None else self._decode(record)

    def _decode(self, record: bytes) -> CustomerState:
        self.decodes += 1
        state = decode_state(record)
        if self.prune_before is not None:
            state.history.prune(self.prune_before)
        return state

    def _admit(self, customer: str, state: CustomerState) -> None:
        hot = self._hot
        hot[customer] = state
        if self.records is None and len(hot) > self.limit:
            for _ in range(max(1, self.limit // 8)):
                victim, evicted = hot.popitem(last=False)
                self._cold[victim] = encode_state(evicted)


class Histories:
    """The cache seen as customer -> history: what the KPI engine reads."""

    def __init__(self, cache: CustomerCache) -> None:
        self._cache = cache

    @property
    def prune_before(self) -> int | None:
        return self._cache.prune_before

    @prune_before.setter
    def prune_before(self, day: int | None) -> None:
        self._cache.prune_before = day

    def get(self, customer: str) -> CustomerHistory | None:
        """To add an event to (admitted)."""
        state = self._cache.get(customer)
        return None if state is None else state.history

    def __getitem__(self, customer: str) -> CustomerHistory:
        """To read (not admitted)."""
        state = self._cache.peek(customer)
        if state is None:
            raise KeyError(customer)
        return state.history

    def __setitem__(self, customer: str, history: CustomerHistory) -> None:
        state = self._cache.get(customer)
        if state is None:
            self._cache.add(customer, CustomerState(history=history))
        else:
            state.history = history

    def decoded(self, customer: str) -> CustomerHistory | None:
        """The history if it is decoded now, else None (its record is pruned when read)."""
        return self._cache.decoded_history(customer)

    def items(self) -> Iterator[tuple[str, CustomerHistory]]:
        return ((c, s.history) for c, s in self._cache.items())

    def values(self) -> Iterator[CustomerHistory]:
        return (s.history for s in self._cache.values())

    def first_purchase_days(self) -> Iterator[tuple[str, int | None]]:
        return self._cache.first_purchase_days()
