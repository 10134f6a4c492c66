"""Per-partition state: incremental totals equal a recompute and a brute force."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.contract import Enrollment, Event, EventType, Purchase, Redemption
from stream_app.kpi.customer import CustomerState, id_digest
from stream_app.kpi.days import DAY_MS
from stream_app.kpi.partition import PartitionState, Repeat
from stream_app.kpi.rejections import RejectionLedger
from stream_app.kpi.state_codec import STATE_VERSION, StateDecodeError, decode_state, encode_state
from stream_app.kpi.totals import Totals

HORIZON = 7 * DAY_MS
NOW = 1_800_000_000_000

customer_ids = st.sampled_from([f"c{i}" for i in range(6)])
times = st.integers(min_value=0, max_value=4 * HORIZON)


def ids(*event_ids: str) -> set[int]:
    return {id_digest(e) for e in event_ids}


def remembered(part: PartitionState, customer: str) -> set[int]:
    """The digests of the event ids the customer's dedup set holds."""
    return set(part.customers[customer].recent_ids)


def remembers(part: PartitionState, customer: str, event_id: str) -> bool:
    return part.customers[customer].has_seen(id_digest(event_id))


def _purchase(draw: st.DrawFn, eid: str) -> Event:
    return Purchase(
        eid,
        draw(customer_ids),
        draw(times),
        draw(st.integers(0, 10**11)),
        eid,
        points_earned=draw(st.integers(0, 500)),
    )


@st.composite
def events(draw: st.DrawFn, n: int) -> Event:
    eid = f"e{n}"
    kind = draw(st.sampled_from(list(EventType)))
    if kind is EventType.PURCHASE:
        return _purchase(draw, eid)
    if kind is EventType.REDEMPTION:
        return Redemption(eid, draw(customer_ids), draw(times), draw(st.integers(1, 900)))
    return Enrollment(
        eid, draw(customer_ids), draw(times), draw(st.sampled_from(["member", "control"]))
    )


SOURCES = ("purchases", "enrollments", "rerouted")


@st.composite
def streams_with_redeliveries(
    draw: st.DrawFn,
) -> tuple[list[Event], list[tuple[Event, str, int]]]:
    """(distinct events, delivered (event, source, offset) records).

    Each source is in event-time order over a span longer than the dedup
    horizon, a copy follows its original in the same source, and the sources
    interleave arbitrarily (read at different speeds).
    """
    distinct = [draw(events(i)) for i in range(draw(st.integers(0, 40)))]
    per_source: dict[str, list[Event]] = {name: [] for name in SOURCES}
    for event in sorted(distinct, key=lambda e: e.occurred_ms):
        queue = per_source[draw(st.sampled_from(SOURCES))]
        queue.append(event)
        if draw(st.booleans()):  # the copy right behind: within the horizon of its source
            queue.append(event)
    delivered: list[tuple[Event, str, int]] = []
    cursors = dict.fromkeys(SOURCES, 0)
    while any(cursors[n] < len(per_source[n]) for n in SOURCES):
        ready = [n for n in SOURCES if cursors[n] < len(per_source[n])]
        name = draw(st.sampled_from(ready))
        delivered.append((per_source[name][cursors[name]], name, cursors[name]))
        cursors[name] += 1
    return distinct, delivered


def brute_force(distinct: list[Event]) -> Totals:
    totals = Totals()
    for kind in EventType:
        totals.events[kind] = sum(1 for e in distinct if e.type is kind)
    totals.customers = len({e.customer_id for e in distinct})
    totals.revenue_minor = sum(e.amount_minor for e in distinct if isinstance(e, Purchase))
    totals.points_earned = sum(e.points_earned for e in distinct if isinstance(e, Purchase))
    totals.points_redeemed = sum(e.points for e in distinct if isinstance(e, Redemption))
    return totals


Case = tuple[list[Event], list[tuple[Event, str, int]]]


@given(streams_with_redeliveries())
@settings(max_examples=300)
def test_incremental_equals_brute_force_and_recompute(case: Case) -> None:
    distinct, delivered = case
    part = PartitionState(0, HORIZON, SOURCES, now_ms=NOW)
    applied = [
        e for e, src, off in delivered if isinstance(part.apply(e, src, off, NOW), CustomerState)
    ]
    assert sorted(applied, key=lambda e: e.event_id) == sorted(distinct, key=lambda e: e.event_id)
    assert part.duplicates == len(delivered) - len(distinct)
    assert part.totals == brute_force(distinct)
    restored = PartitionState(0, HORIZON, SOURCES, now_ms=NOW).restore(part.customers.items(), [])
    assert restored.totals == part.totals


@given(streams_with_redeliveries(), st.data())
@settings(max_examples=200)
def test_restored_state_ignores_a_replayed_tail(case: Case, data: st.DataObject) -> None:
    """A crash replays records after the last commit: state restored from the
    changelog must recognise every one of them, whatever their event time."""
    _, delivered = case
    part = PartitionState(0, HORIZON, SOURCES, now_ms=NOW)
    cut = data.draw(st.integers(0, len(delivered)))
    for event, source, offset in delivered[:cut]:
        part.apply(event, source, offset, NOW)
    copied = {k: decode_state(encode_state(v)) for k, v in part.customers.items()}
    assert copied == dict(part.customers.items())  # the stored form loses nothing
    restored = PartitionState(0, HORIZON, SOURCES, now_ms=NOW).restore(copied.items(), [])
    committed = data.draw(st.integers(0, cut))
    for event, source, offset in delivered[committed:cut]:
        assert restored.apply(event, source, offset, NOW) is None
    for event, source, offset in delivered[cut:]:
        part.apply(event, source, offset, NOW)
        restored.apply(event, source, offset, NOW)
    assert restored.totals == part.totals


def test_a_replayed_offset_is_recognised_even_long_after_the_horizon() -> None:
    part = PartitionState(0, HORIZON, ["a"], floor_refresh=1)
    part.apply(Enrollment("e1", "c1", 0), "a", 0, NOW)
    part.apply(Enrollment("e2", "c1", 30 * DAY_MS), "a", 1, NOW)
    assert not remembers(part, "c1", "e1")
    assert part.apply(Enrollment("e1", "c1", 0), "a", 0, NOW) is None


def test_a_repeat_read_again_after_a_crash_is_a_duplicate_not_a_late_event() -> None:
    """A producer sent e1 twice, into two partitions. After a crash both records are
    read again, the dedup horizon long past and e1's day final: the repeat is
    recognised by the offset it recorded (it used to be rejected as late)."""
    part = PartitionState(0, HORIZON, ["a", "b"], now_ms=NOW, floor_refresh=1)
    assert isinstance(part.apply(Enrollment("e1", "c1", 0), "a", 0, NOW), CustomerState)
    assert isinstance(part.apply(Enrollment("e1", "c1", 0), "b", 0, NOW), Repeat)
    part.apply(Enrollment("e2", "c1", 30 * DAY_MS), "a", 1, NOW)
    part.apply(Enrollment("e3", "c2", 30 * DAY_MS), "b", 1, NOW)
    part.apply(Enrollment("e4", "c1", 30 * DAY_MS + 1), "a", 2, NOW)
    assert not remembers(part, "c1", "e1")
    part.close_through(20)
    stored = [(c, decode_state(encode_state(s))) for c, s in part.customers.items()]
    restarted = PartitionState(0, HORIZON, ["a", "b"], now_ms=NOW)
    restarted.restore(stored, [], part.meta())
    assert restarted.apply(Enrollment("e1", "c1", 0), "a", 0, NOW) is None
    assert restarted.apply(Enrollment("e1", "c1", 0), "b", 0, NOW) is None
    assert restarted.totals == part.totals


def test_dedup_ids_below_the_slowest_source_minus_horizon_are_forgotten() -> None:
    part = PartitionState(0, HORIZON, ["a", "b"], now_ms=NOW, floor_refresh=1)
    part.apply(Enrollment("old", "c1", 0), "a", 0, NOW)
    part.apply(Enrollment("new", "c1", 8 * DAY_MS), "a", 1, NOW)
    assert remembered(part, "c1") == ids("old", "new")  # "b" unheard: keep all
    part.apply(Enrollment("b1", "c2", 8 * DAY_MS), "b", 0, NOW)
    part.apply(Enrollment("newer", "c1", 8 * DAY_MS + 1), "a", 2, NOW)
    assert remembered(part, "c1") == ids("new", "newer")


def test_an_idle_source_stops_holding_the_floor_back() -> None:
    part = PartitionState(0, HORIZON, ["a", "b"], idle_ms=30_000, now_ms=NOW, floor_refresh=1)
    part.apply(Enrollment("old", "c1", 0), "a", 0, NOW)
    part.apply(Enrollment("new", "c1", 8 * DAY_MS), "a", 1, NOW + 30_001)
    assert remembered(part, "c1") == ids("new")


def test_rejection_ledger_counts_each_offset_once() -> None:
    ledger = RejectionLedger()
    assert ledger.record(5, "not_json")
    assert not ledger.record(5, "not_json")
    assert not ledger.record(3, "not_json")
    assert ledger.record(6, "too_large")
    assert RejectionLedger.from_dict(ledger.to_dict()) == ledger
    assert dict(ledger.counts) == {"not_json": 1, "too_large": 1}


def test_customer_state_refuses_unknown_versions_and_damage() -> None:
    with pytest.raises(StateDecodeError, match="version 99"):
        decode_state(orjson.dumps({"v": 99}))
    written = encode_state(CustomerState(purchases=1))
    assert written[3] == STATE_VERSION  # a msgpack array16 (3 header bytes), then the version
    with pytest.raises(StateDecodeError, match="version 6"):
        decode_state(written[:3] + bytes([STATE_VERSION + 1]) + written[4:])
    with pytest.raises(StateDecodeError, match="unreadable customer state"):
        decode_state(written[:-3])
