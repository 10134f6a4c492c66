"""A customer as records: a head and one record per day (tables/state.py,
kpi/state_codec.py). The reads find exactly the customer's own days in a real
RocksDB, whatever its id; a write's size does not grow with the history; the
cache never evicts a customer whose changes are not written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rocksdict import Options, Rdict

from stream_app.contract import MAX_ID_CHARS, Purchase, Redemption
from stream_app.keys import DayKey
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.customer_cache import CustomerCache
from stream_app.kpi.days import DAY_MS
from stream_app.kpi.meta import ClosedTerms, PartitionMeta
from stream_app.kpi.params import KpiParams
from stream_app.kpi.partition import PartitionState
from stream_app.kpi.state_codec import decode_stored, encode_state
from stream_app.kpi.terms import KpiTerms
from tables.codecs import CustomerCodec, StateKeyCodec
from tables.state import CustomerRecords, customer_records

KEYS, VALUES = StateKeyCodec(), CustomerCodec()


class _Partition:
    """A RocksDB database read as tables/state.py reads a store partition."""

    def __init__(self, db: Rdict) -> None:
        self.db = db

    def get(self, key: bytes) -> bytes | None:
        value = self.db.get(key)
        return None if value is None else bytes(value)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.db.items())

    def items_from(self, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.db.items(from_key=start))

    def write(self, entries: list[tuple[object, object]]) -> None:
        for key, value in entries:
            if value is None:
                del self.db[KEYS.dumps(key)]
            else:
                self.db[KEYS.dumps(key)] = VALUES.dumps(value)


def _history_of(customer: str, days: list[int]) -> CustomerState:
    state = CustomerState()
    for n, day in enumerate(days):
        if n % 3 == 2:
            event: Purchase | Redemption = Redemption(f"r{n}", customer, day * DAY_MS, 10, 5)
        else:
            event = Purchase(
                f"p{n}", customer, day * DAY_MS, 100 + n, f"o{n}", store_id="s1", points_earned=n
            )
        state.history.add(event, day)
        state.purchases += 1
    return state


ids = st.text(min_size=1, max_size=MAX_ID_CHARS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    customers=st.dictionaries(ids, st.lists(st.integers(-40_000, 40_000), max_size=6), max_size=8),
    extra=st.lists(ids, max_size=4),
)
def test_a_customer_reads_back_exactly_its_own_days_whatever_its_id(
    tmp_path_factory: object, customers: dict[str, list[int]], extra: list[str]
) -> None:
    # Prefixes of each other, NUL and 0xFF-adjacent characters: the length
    # prefix alone keeps one customer's day records apart from another's.
    customers |= {c + "\x00": [1] for c in extra} | {c: [2, 3] for c in extra}
    path = Path(tmp_path_factory.mktemp("rdb"))  # type: ignore[attr-defined]
    db = Rdict(str(path), Options(raw_mode=True))
    try:
        store = _Partition(db)
        states = {c: _history_of(c, days) for c, days in customers.items()}
        for customer, state in states.items():
            store.write(customer_records(customer, state))
        records = CustomerRecords(store)  # type: ignore[arg-type]
        assert dict(records.items()).keys() == states.keys()
        for customer, state in states.items():
            assert {day for day, _ in records.days(customer)} == state.history.record_days()
            head = records.get(customer)
            assert head is not None
            assert decode_stored(head, lambda c=customer: records.days(c)) == state
    finally:
        db.close()
        Rdict.destroy(str(path))


def _bytes_written(entries: list[tuple[object, object]]) -> int:
    return sum(len(KEYS.dumps(k)) + (0 if v is None else len(VALUES.dumps(v))) for k, v in entries)


def test_what_a_write_sends_does_not_grow_with_the_history() -> None:
    """One purchase a day for 400 days: each write sends the head and that day's
    record. The history grows to a year of days; the writes do not."""
    # the ids forgotten as event time passes the 7-day horizon: the head stays bounded
    part = PartitionState(0, 7 * DAY_MS, ["s"], floor_refresh=1, params=KpiParams())
    sizes = []
    first = 19_000
    for n in range(400):
        event = Purchase(f"e{n}", "alice", (first + n) * DAY_MS, 1999, f"o{n}", channel="web")
        state = part.apply(event, "s", n, now_ms=(first + n) * DAY_MS)
        assert isinstance(state, CustomerState)
        entries = customer_records("alice", state)
        assert [k for k, _ in entries] == [DayKey("alice", first + n), "alice"]
        sizes.append(_bytes_written(entries))
    assert len(state.history.record_days()) >= 365
    assert max(sizes[300:]) <= max(sizes[10:20]) + 8, (sizes[10:20], sizes[300:])


def test_days_pruned_since_the_last_write_are_deleted_by_the_next() -> None:
    state = _history_of("bob", [10, 11, 12, 20])
    customer_records("bob", state)
    state.history.prune(12)
    state.history.add(Purchase("late-one", "bob", 21 * DAY_MS, 5, "x"), 21)
    entries = customer_records("bob", state)
    assert entries[-1] == ("bob", state)
    assert {k.day for k, v in entries if isinstance(k, DayKey) and v is not None} == {21}
    deleted = {k.day for k, v in entries if isinstance(k, DayKey) and v is None}
    assert deleted == {10, 11}
    assert state.history.changed is None and state.history.dropped is None


def test_a_stale_day_record_left_by_a_lost_delete_is_ignored_and_deleted_next() -> None:
    """A head records the day its history was pruned before: a day record older
    than that (its delete not written yet) must not come back into the history."""
    state = _history_of("carol", [10, 11, 20])
    carried = state.history.carried_points
    stored: dict[bytes, bytes] = {}

    def write(entries: list[tuple[object, object]]) -> None:
        for key, value in entries:
            if value is None:
                stored.pop(KEYS.dumps(key), None)
            else:
                stored[KEYS.dumps(key)] = VALUES.dumps(value)

    write(customer_records("carol", state))
    state.history.prune(12)
    head_only = [(k, v) for k, v in customer_records("carol", state) if k == "carol"]
    write(head_only)  # the deletes of days 10 and 11 never written
    records = CustomerRecords(_DictPartition(stored))  # type: ignore[arg-type]
    read = decode_stored(stored[b"carol"], lambda: records.days("carol"))
    assert read.history.record_days() == {20}
    assert read.history.carried_points == state.history.carried_points != carried
    assert read.history.dropped == {10, 11}


class _DictPartition:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(sorted(self.data.items()))

    def items_from(self, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter(sorted((k, v) for k, v in self.data.items() if k >= start))


def test_the_cache_never_evicts_a_customer_whose_changes_are_not_written() -> None:
    for records in (None, CustomerRecords(_DictPartition({}))):  # type: ignore[arg-type]
        cache = CustomerCache(limit=1, records=records)
        states = {c: _history_of(c, [5]) for c in ("a", "b", "c")}
        for customer, state in states.items():
            cache.add(customer, state)
        cache.settled()
        assert cache.decoded == 3  # nothing written yet: all kept
        customer_records("a", states["a"])
        customer_records("b", states["b"])
        cache.settled()
        assert cache.decoded == 1 and cache.decoded_history("c") is not None


def test_a_whole_version_5_record_reads_and_its_next_write_splits_it() -> None:
    """What a worker before version 6 wrote: one whole record under the id."""
    state = _history_of("dave", [30, 31, 35, 36])
    customer_records("dave", state)  # (marks cleared: as if written long ago)
    stored = {b"dave": encode_state(state)}
    records = CustomerRecords(_DictPartition(stored))  # type: ignore[arg-type]
    read = decode_stored(stored[b"dave"], lambda: records.days("dave"))
    assert read == state and read.history.write_all
    read.history.add(Purchase("new", "dave", 37 * DAY_MS, 5, "o-new"), 37)
    for key, value in customer_records("dave", read):
        assert value is not None
        stored[KEYS.dumps(key)] = VALUES.dumps(value)
    again = decode_stored(stored[b"dave"], lambda: records.days("dave"))
    assert again == read and again.history.record_days() == {30, 31, 35, 36, 37}


class _CountingPartition(_Partition):
    """Counts the reads of day record values (a restore with closed terms has none)."""

    day_reads = 0

    def items_from(self, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        self.day_reads += 1
        return super().items_from(start)

    def keys_from(self, start: bytes) -> Iterator[bytes]:
        return iter(self.db.keys(from_key=start))


def test_a_restore_with_closed_terms_indexes_days_from_keys_as_a_full_read_does(
    tmp_path: Path,
) -> None:
    """Heads, then day record keys: the boundary index and the totals equal those
    of a restore that reads every customer whole, with no day record read; days
    pruned by the restore's floor, and stale days below a head's own floor, are
    left out of both."""
    db = Rdict(str(tmp_path / "rdb"), Options(raw_mode=True))
    try:
        store = _CountingPartition(db)
        params = KpiParams()
        closed = 20_000
        f = closed - params.history_days  # the restore's floor
        customers = {
            "a": [f - 10, f + 10, closed - 1],  # f - 10: pruned at the restore
            "b": [f + 5, f + 20],
            "ab": [f + 30],  # an id that extends another's
            "c": [f + 2, f + 8, f + 40],  # then written after a later prune, below
        }
        for customer, days in customers.items():
            store.write(customer_records(customer, _history_of(customer, days)))
        later = _history_of("c", customers["c"])
        later.history.prune(f + 6)  # pruned past the floor: f + 2 stale in the store
        later.history.changed = None
        store.write([(k, v) for k, v in customer_records("c", later) if v is not None])
        store.db[b"whole"] = encode_state(_history_of("whole", [f + 1, f + 16]))  # version 5
        assert store.db.get(DayKey("c", f + 2).encode()) is not None  # stale, kept

        parts = []
        for terms in (ClosedTerms(closed, KpiTerms()), None):  # from keys; whole reads
            part = PartitionState(0, 7 * DAY_MS, ["s"], params=params)
            records = CustomerRecords(store)  # type: ignore[arg-type]
            part.restore([], [], PartitionMeta(closed), records, terms)
            parts.append(part)
            if terms is not None:
                assert store.day_reads == 0
        from_keys, whole = parts
        assert store.day_reads > 0  # the whole reads read them
        index = {d: from_keys.kpi.by_day.customers(d) for d in from_keys.kpi.by_day}
        assert index == {d: whole.kpi.by_day.customers(d) for d in whole.kpi.by_day}
        assert index[closed - 1] == {"a"} and f - 10 not in index and f + 2 not in index
        assert index[f + 1] == {"whole"} and index[f + 30] == {"ab"} and index[f + 8] == {"c"}
        assert from_keys.totals == whole.totals and from_keys.customers.decodes == 0
    finally:
        db.close()
        Rdict.destroy(str(tmp_path / "rdb"))
