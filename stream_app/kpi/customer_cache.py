"""A partition's customers: the recently used as objects, the rest as stored bytes.

A customer's state as Python objects (dicts of rows) takes ~3.5 kB; as its
version-5 record (kpi/state_codec.py) ~130 B. So a partition keeps at most
``limit`` customers decoded, in the order they were admitted, and the others
as their records; a customer read again is decoded and admitted again. The
oldest eighth is encoded at once when the limit is passed (first-in first-out:
a customer used often is evicted now and then and costs one decode, instead of
every read paying for recency).

Evicting never loses a change: the record is encoded from the object at that
moment, and whoever holds the object (a batch about to write it to the
changelog) holds the latest state, since a later read of the customer decodes
that record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from stream_app.kpi.customer import CustomerState
from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.state_codec import decode_state, encode_state, first_purchase_day


class CustomerCache:
    def __init__(self, limit: int = 100_000) -> None:
        if limit < 1:
            raise ValueError(f"the cache must hold at least one customer, not {limit}")
        self.limit = limit
        self._hot: dict[str, CustomerState] = {}
        self._cold: dict[str, bytes] = {}
        self.histories = Histories(self)

    def get(self, customer: str) -> CustomerState | None:
        state = self._hot.get(customer)
        if state is not None:
            return state
        record = self._cold.pop(customer, None)
        if record is None:
            return None
        state = decode_state(record)
        self._admit(customer, state)
        return state

    def __getitem__(self, customer: str) -> CustomerState:
        state = self.get(customer)
        if state is None:
            raise KeyError(customer)
        return state

    def __setitem__(self, customer: str, state: CustomerState) -> None:
        self._cold.pop(customer, None)
        self._admit(customer, state)

    def __contains__(self, customer: object) -> bool:
        return customer in self._hot or customer in self._cold

    def __len__(self) -> int:
        return len(self._hot) + len(self._cold)

    def __iter__(self) -> Iterator[str]:
        yield from self._hot
        yield from self._cold

    def items(self) -> Iterator[tuple[str, CustomerState]]:
        """Every customer, decoding the evicted ones without admitting them."""
        yield from self._hot.items()
        for customer, record in self._cold.items():
            yield customer, decode_state(record)

    def values(self) -> Iterator[CustomerState]:
        return (state for _, state in self.items())

    def load(self, records: Iterable[tuple[str, bytes]]) -> None:
        """Add stored records (a restore), decoded only when read."""
        for customer, record in records:
            self._hot.pop(customer, None)
            self._cold[customer] = record

    def first_purchase_days(self) -> Iterator[tuple[str, int | None]]:
        """Every customer's first purchase day, without decoding whole records."""
        for customer, state in self._hot.items():
            yield customer, state.history.first_purchase_day
        for customer, record in self._cold.items():
            yield customer, first_purchase_day(record)

    @property
    def decoded(self) -> int:
        return len(self._hot)

    def _admit(self, customer: str, state: CustomerState) -> None:
        self._hot[customer] = state
        if len(self._hot) > self.limit:
            for victim in list(islice(self._hot, max(1, self.limit // 8))):
                self._cold[victim] = encode_state(self._hot.pop(victim))


class Histories:
    """The cache seen as customer -> history: what the KPI engine reads."""

    def __init__(self, cache: CustomerCache) -> None:
        self._cache = cache

    def get(self, customer: str) -> CustomerHistory | None:
        state = self._cache.get(customer)
        return None if state is None else state.history

    def __getitem__(self, customer: str) -> CustomerHistory:
        return self._cache[customer].history

    def __setitem__(self, customer: str, history: CustomerHistory) -> None:
        state = self._cache.get(customer)
        if state is None:
            self._cache[customer] = state = CustomerState()
        state.history = history

    def __contains__(self, customer: object) -> bool:
        return customer in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def items(self) -> Iterator[tuple[str, CustomerHistory]]:
        return ((c, s.history) for c, s in self._cache.items())

    def values(self) -> Iterator[CustomerHistory]:
        return (s.history for s in self._cache.values())

    def first_purchase_days(self) -> Iterator[tuple[str, int | None]]:
        return self._cache.first_purchase_days()
