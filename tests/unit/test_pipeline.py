"""The pipeline builder without a broker: routing, dedup, dead letters."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from agents.ingest import BatchIngest
from stream_app.contract import EventType
from stream_app.kpi.customer import CustomerState, id_digest
from stream_app.kpi.days import DAY_MS
from stream_app.kpi.state_codec import decode_state, encode_state
from stream_app.pipeline import (
    TYPE_HEADER,
    Applied,
    DeadLettered,
    Duplicate,
    Forward,
    Marked,
    PartitionContent,
    Pipeline,
    Record,
    partition_for,
)
from stream_app.settings import Settings
from stream_app.testing import MemoryBroker, MemoryWriter, memory_tables

NOW = 1_735_000_000_000
SETTINGS = Settings(partitions=8)


def pipeline() -> Pipeline:
    return Pipeline(SETTINGS, clock=lambda: NOW)


def purchase(event_id: str = "e1", customer: str = "alice") -> bytes:
    return orjson.dumps(
        {"event_id": event_id, "customer_id": customer, "occurred_at": NOW - 1000, "amount": 19.99}
    )


def record(
    value: bytes | None,
    partition: int,
    offset: int = 0,
    topic: str = "loyalty.purchases",
    headers: tuple[tuple[str, bytes], ...] = (),
) -> Record:
    return Record(topic, partition, offset, b"k", value, headers)


def test_partitioner_matches_kafka_default_murmur2() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    for key in ("alice", "bob", "c000123", "ü-ñ"):
        assert partition_for(key, 8) == DefaultPartitioner()(
            key.encode(), list(range(8)), list(range(8))
        )


def test_event_on_its_owner_partition_is_applied_once() -> None:
    p = pipeline()
    owner = partition_for("alice", 8)
    first = p.handle(record(purchase(), owner, 0))
    assert isinstance(first, Applied) and first.state.revenue_minor == 1999
    assert isinstance(p.handle(record(purchase(), owner, 1)), Duplicate)
    assert p.totals().revenue_minor == 1999


def test_event_keyed_differently_is_forwarded_to_its_owner() -> None:
    p = pipeline()
    owner = partition_for("alice", 8)
    wrong = (owner + 1) % 8
    out = p.handle(record(purchase(), wrong, 7))
    assert isinstance(out, Forward)
    assert (out.partition, out.key) == (owner, b"alice")
    assert dict(out.headers)[TYPE_HEADER] == b"purchase"
    assert p.totals().revenue_minor == 0
    rerouted = Record(SETTINGS.topic_rerouted, owner, 0, out.key, out.value, out.headers)
    assert isinstance(p.handle(rerouted), Applied)
    assert p.totals().revenue_minor == 1999


def test_rejection_is_dead_lettered_and_counted_once_per_offset() -> None:
    p = pipeline()
    out = p.handle(record(b"{oops", 3, 42))
    assert isinstance(out, DeadLettered) and out.ledger is not None
    letter = orjson.loads(out.dead_letter)
    assert (letter["reason"], letter["topic"], letter["partition"], letter["offset"]) == (
        "not_json",
        "loyalty.purchases",
        3,
        42,
    )
    assert out.dead_letter_key == b"loyalty.purchases:3:42"
    again = p.handle(record(b"{oops", 3, 42))
    assert isinstance(again, DeadLettered) and again.ledger is None
    assert p.rejected() == {"not_json": 1}


def test_rerouted_record_without_type_header_is_rejected() -> None:
    p = pipeline()
    out = p.handle(Record(SETTINGS.topic_rerouted, 0, 0, b"k", purchase(), ()))
    assert isinstance(out, DeadLettered) and out.reason == "unknown_type"


@pytest.mark.parametrize("owned", [[0, 1], [], list(range(8))])
def test_assign_keeps_exactly_the_owned_partitions(owned: list[int]) -> None:
    p = pipeline()
    p.handle(record(purchase(), partition_for("alice", 8)))
    p.assign(owned)
    assert sorted(p.partitions) == owned


# --- the pipeline over an in-process broker: any interleaving, misrouted keys, redeliveries


def run(p: Pipeline, broker: MemoryBroker, topic: str, data: st.DataObject, steps: int) -> None:
    for _ in range(steps):
        if not broker.ready():
            return
        out = p.handle(broker.take(data.draw(st.sampled_from(broker.ready()))))
        if isinstance(out, Forward):
            broker.send(topic, out.partition, out.value, out.headers)


def snapshot(p: Pipeline) -> dict[int, list[tuple[str, CustomerState]]]:
    return {
        n: [(cid, decode_state(encode_state(st_))) for cid, st_ in part.customers.items()]
        for n, part in p.partitions.items()
    }


@st.composite
def deliveries(
    draw: st.DrawFn,
) -> tuple[list[dict[str, object]], list[tuple[int, dict[str, object]]]]:
    """(distinct events in time order spanning weeks, (partition, event) sends with
    copies a few sends after their original, possibly on another partition)."""
    n = draw(st.integers(1, 40))
    events = []
    for i in range(n):
        events.append(
            {
                "type": draw(st.sampled_from(["purchase", "enrollment", "redemption"])),
                "event_id": f"e{i}",
                "customer_id": f"c{draw(st.integers(0, 5))}",
                "occurred_at": NOW - 40 * 86_400_000 + i * draw(st.integers(0, 86_400_000)),
                "amount": draw(st.integers(0, 500)) / 100,
                "points": draw(st.integers(1, 50)),
            }
        )
    sends: list[tuple[int, dict[str, object]]] = []
    for event in events:
        sends.append((draw(st.integers(0, 3)), event))
        if draw(st.booleans()):
            at = len(sends) - draw(st.integers(0, min(3, len(sends) - 1)))
            sends.insert(at, (draw(st.integers(0, 3)), event))
    return events, sends


@given(deliveries(), st.data())
@hyp_settings(max_examples=150, deadline=None)
def test_any_interleaving_and_crash_gives_the_totals_of_the_distinct_events(case, data) -> None:
    events, sends = case
    settings = Settings(partitions=4)
    topic = {
        "purchase": settings.topic_purchases,
        "enrollment": settings.topic_enrollments,
        "redemption": settings.topic_redemptions,
    }
    broker = MemoryBroker()
    for partition, event in sends:
        broker.send(topic[str(event["type"])], partition, orjson.dumps(event))
    p = Pipeline(settings, clock=lambda: NOW)
    p.assign(range(4))
    for _ in range(data.draw(st.integers(0, 2))):  # crashes
        run(p, broker, settings.topic_rerouted, data, data.draw(st.integers(0, 30)))
        committed = dict(broker.positions)
        state_at_commit = snapshot(p)
        run(p, broker, settings.topic_rerouted, data, data.draw(st.integers(0, 30)))
        # The changelog holds every write since the commit, or none of them.
        stored = snapshot(p) if data.draw(st.booleans()) else state_at_commit
        p = Pipeline(
            settings,
            loader=lambda ns, s=stored: {n: PartitionContent(s.get(n, [])) for n in ns},
            clock=lambda: NOW,
        )
        p.assign(range(4))  # as the worker does once its tables are recovered
        broker.positions = committed
    run(p, broker, settings.topic_rerouted, data, 10**6)
    totals = p.totals()
    assert p.rejected() == {}
    assert totals.events[EventType.PURCHASE] == sum(e["type"] == "purchase" for e in events)
    assert totals.events[EventType.REDEMPTION] == sum(e["type"] == "redemption" for e in events)
    assert totals.customers == len({e["customer_id"] for e in events})
    assert totals.revenue_minor == sum(
        round(float(e["amount"]) * 100) for e in events if e["type"] == "purchase"
    )


def test_a_late_event_is_dead_lettered_and_counted_once_per_origin_offset() -> None:
    p = pipeline()
    owner = partition_for("alice", 8)
    assert isinstance(p.handle(record(purchase("e1"), owner, 0)), Applied)
    today = NOW // DAY_MS
    p.close_through(today)
    late = p.handle(record(purchase("e2"), owner, 1))
    assert isinstance(late, DeadLettered) and late.reason == "late" and late.ledger is not None
    letter = orjson.loads(late.dead_letter)
    assert letter["reason"] == "late" and letter["offset"] == 1
    assert "is final" in letter["detail"]
    # the same record forwarded again after a crash: another offset, same origin
    wrong = (owner + 1) % 8
    forward = p.handle(record(purchase("e3"), wrong, 5))
    assert isinstance(forward, Forward)
    for rerouted_offset in (10, 11):
        copy = Record(
            SETTINGS.topic_rerouted,
            owner,
            rerouted_offset,
            forward.key,
            forward.value,
            forward.headers,
        )
        out = p.handle(copy)
        assert isinstance(out, DeadLettered) and out.reason == "late"
    assert p.rejected() == {"late": 2}
    assert p.totals().revenue_minor == 1999


async def test_a_repeat_is_written_back_so_its_replay_after_a_crash_is_not_late() -> None:
    """e1 was produced twice, the repeat keyed to another partition. Its forward is
    a duplicate; the ingest writes the customer back with the offset it was read
    at. After a crash the forward is read again, long after the dedup horizon and
    with e1's day final: still a duplicate (the chaos test saw it rejected as late)."""
    settings = Settings(partitions=2)
    clock, tables, broker = [NOW], memory_tables(2), MemoryBroker()

    def start() -> tuple[Pipeline, BatchIngest]:
        p = Pipeline(settings, loader=tables.load, clock=lambda: clock[0])
        p.assign({0, 1})
        return p, BatchIngest(settings, p, tables, MemoryWriter(broker))

    def bought(event_id: str, at_ms: int) -> bytes:
        return orjson.dumps(
            {"event_id": event_id, "customer_id": "alice", "occurred_at": at_ms, "amount": 1}
        )

    p, ingest = start()
    owner, topic, first = partition_for("alice", 2), settings.topic_purchases, NOW - 60 * DAY_MS
    await ingest.handle([Record(topic, owner, 0, b"alice", bought("e1", first))])
    await ingest.handle([Record(topic, 1 - owner, 0, b"pos-7", bought("e1", first))])
    forwarded = broker.take((settings.topic_rerouted, owner))
    await ingest.handle([forwarded])
    assert ingest.metrics.events["purchase", "duplicate"] == 1
    held = p.partitions[owner].customers["alice"].applied_offsets
    assert dict(tables.customers.items())["alice"].applied_offsets == held  # written back
    clock[0] += 31_000  # the sources not read below go idle: the dedup floor moves on
    later = [Record(topic, owner, n, b"alice", bought(f"e{n}", NOW - DAY_MS)) for n in range(1, 80)]
    await ingest.handle(later)
    assert not p.partitions[owner].customers["alice"].has_seen(id_digest("e1"))
    p, _ = start()  # a crash: what the tables hold, e1's day final
    p.close_through(first // DAY_MS + 10)
    replayed = p.handle(forwarded)
    assert isinstance(replayed, Duplicate), replayed
    assert p.rejected() == {}


# --- watermark markers: a partition learns another's watermark behind its forwards


def two_partition_pipeline() -> Pipeline:
    return Pipeline(Settings(partitions=2), clock=lambda: NOW)


def customer_of(partition: int, n: int = 0) -> str:
    return [c for c in (f"c{i}" for i in range(100)) if partition_for(c, 2) == partition][n]


def at(event_id: str, customer: str, occurred_ms: int) -> bytes:
    return orjson.dumps(
        {"event_id": event_id, "customer_id": customer, "occurred_at": occurred_ms, "amount": 1}
    )


def test_reading_a_partition_moves_its_own_watermark_and_marks_the_others() -> None:
    p = two_partition_pipeline()
    here, there = customer_of(0), customer_of(1)
    p.handle(record(at("e1", here, NOW - 5000), 0, 0))
    forward = p.handle(record(at("e2", there, NOW - 3000), 0, 1))
    assert isinstance(forward, Forward) and forward.partition == 1
    source = "loyalty.purchases/0"
    assert p.partitions[0].watermarks.marks[source] == NOW - 3000
    markers = p.markers()
    assert [(m.partition, dict(m.headers)["lp-mark"]) for m in markers] == [
        (1, f"{source}@{NOW - 3000}".encode())
    ]
    assert p.markers() == []  # nothing read since
    rerouted = SETTINGS.topic_rerouted
    assert isinstance(
        p.handle(Record(rerouted, 1, 0, forward.key, forward.value, forward.headers)), Applied
    )
    marked = p.handle(Record(rerouted, 1, 1, b"", b"", markers[0].headers))
    assert marked == Marked(source, NOW - 3000)
    assert p.partitions[1].watermarks.marks[source] == NOW - 3000


def test_no_markers_for_a_partition_no_longer_read_here() -> None:
    p = two_partition_pipeline()
    p.handle(record(at("e1", customer_of(0), NOW - 5000), 0, 0))
    p.assign({1})
    assert p.markers() == []


@hyp_settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_marker_arrives_behind_every_record_forwarded_before_it(data: st.DataObject) -> None:
    """Whatever the interleaving: when partition p learns that source s was read up
    to a mark, every event of p's customers read from s before that marker was
    made has been applied at p."""
    p = two_partition_pipeline()
    broker = MemoryBroker()
    rerouted = SETTINGS.topic_rerouted
    n = data.draw(st.integers(1, 25))
    for i in range(n):
        customer = f"c{data.draw(st.integers(0, 9))}"
        broker.send(
            "loyalty.purchases",
            data.draw(st.integers(0, 1)),
            at(f"e{i}", customer, NOW - 10_000 + i),
        )
    read: list[tuple[str, int, str]] = []  # (source, offset, customer) in read order
    promised: dict[bytes, list[tuple[str, int, str]]] = {}
    for _ in range(4 * n + 10):
        if data.draw(st.booleans()):
            for marker in p.markers():
                mark = dict(marker.headers)["lp-mark"]
                source = mark.decode().rpartition("@")[0]
                promised[mark + b">" + str(marker.partition).encode()] = [
                    r for r in read if r[0] == source and partition_for(r[2], 2) == marker.partition
                ]
                broker.send(rerouted, marker.partition, b"", marker.headers)
        if not broker.ready():
            continue
        rec = broker.take(data.draw(st.sampled_from(broker.ready())))
        if rec.topic != rerouted:
            read.append(
                (
                    f"{rec.topic}/{rec.partition}",
                    rec.offset,
                    orjson.loads(rec.value or b"{}")["customer_id"],
                )
            )
        out = p.handle(rec)
        if isinstance(out, Forward):
            broker.send(rerouted, out.partition, out.value, out.headers)
        if isinstance(out, Marked):
            key = dict(rec.headers)["lp-mark"] + b">" + str(rec.partition).encode()
            known = p.partitions[rec.partition].watermarks.marks[out.source]
            assert known is not None and known >= out.mark_ms
            for source, offset, customer in promised[key]:
                state = p.partitions[rec.partition].customers[customer]
                assert state.has_applied(source, offset), (source, offset, customer)


def test_a_close_cut_short_every_time_still_brings_every_partition_along() -> None:
    """A close stopped by its deadline after each day (as a busy worker's ticks
    are) takes the partition furthest behind next: the partitions stay within a
    day of each other, so the day every partition has, the one that merges,
    advances with the number of calls."""
    p = pipeline()
    for customer in ("alice", "bob", "carol", "dave", "erin", "frank"):
        owner = partition_for(customer, 8)
        p.handle(record(purchase(f"e-{customer}", customer), owner, 0))
    first = NOW // DAY_MS - 1
    owned = len(p.partitions)
    assert owned >= 3
    for calls in range(1, 5 * owned + 1):
        closed, more = p.close_through(first + 20, first, None, deadline=0.0)
        assert (closed, more) == (1, True)
        days = [part.kpi.closed_day for part in p.partitions.values()]
        done = [d for d in days if d is not None]
        assert len(done) == min(calls, owned)
        if len(done) == owned:
            assert max(done) - min(done) <= 1
    assert {part.kpi.closed_day for part in p.partitions.values()} == {first + 4}
