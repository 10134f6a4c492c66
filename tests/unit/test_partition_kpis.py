"""A partition's KPI wiring: events in arrival order, days closed as the stream
moves on, late events set aside, state restored from what the changelog holds.
Every closed day equals the brute-force reference over the events applied."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.contract import Event, Purchase
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.days import DAY_MS, business_day, to_date
from stream_app.kpi.meta import ClosedTerms, PartitionMeta
from stream_app.kpi.params import KpiParams
from stream_app.kpi.partition import (
    MAX_UNPUBLISHED_BYTES,
    MAX_UNPUBLISHED_DAYS,
    Late,
    PartitionState,
    Repeat,
)
from stream_app.kpi.report import kpi_document
from stream_app.kpi.state_codec import decode_state, encode_state
from tests import kpi_reference as ref
from tests.unit.test_kpi_engine import (
    BASE_DAY,
    assert_same,
    events,
    params_strategy,
    reference_params,
)

HORIZON = 7 * DAY_MS


def fresh(
    params: KpiParams, preview_min_tracked: int = 1000, cache_limit: int = 2**62
) -> PartitionState:
    return PartitionState(
        0,
        HORIZON,
        ["s"],
        params=params,
        preview_min_tracked=preview_min_tracked,
        cache_limit=cache_limit,
    )


class TableStore:
    """A partition's records as the worker's table store holds them: written
    only when a batch settles (agents/ingest.py), read by the customer cache."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}
        self.pending: dict[str, CustomerState] = {}

    def get(self, customer: str) -> bytes | None:
        return self.rows.get(customer)

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(list(self.rows.items()))

    def changed(self, customer: str, outcome: object) -> None:
        state = outcome.state if isinstance(outcome, Repeat) else outcome
        if isinstance(state, CustomerState):
            self.pending[customer] = state

    def settle(self, part: PartitionState) -> None:
        for customer, state in self.pending.items():
            self.rows[customer] = encode_state(state)
        self.pending = {}
        part.settled()


def through_changelog(
    part: PartitionState,
    params: KpiParams,
    preview_min_tracked: int = 1000,
    cache_limit: int = 2**62,
    store: TableStore | None = None,
    with_terms: bool = False,
) -> PartitionState:
    """What a worker rebuilds from the customer records it wrote (table codec
    round trip), or from its table store; ``with_terms``: from the terms as of
    the last close it wrote too, instead of recomputing them."""
    meta = PartitionMeta.from_dict(orjson.loads(orjson.dumps(part.meta().to_dict())))
    closed = part.closed_terms()
    if closed is not None and with_terms:
        closed = ClosedTerms.from_dict(orjson.loads(orjson.dumps(closed.to_dict())))
    terms = closed if with_terms else None
    restarted = fresh(params, preview_min_tracked, cache_limit)
    if store is not None:
        store.settle(part)
        return restarted.restore([], [], meta, store, terms)
    stored = [(c, encode_state(s)) for c, s in part.customers.items()]
    return restarted.restore(stored, [], meta, None, terms)


@settings(max_examples=60, deadline=None)
@given(
    params=params_strategy,
    stream=events(span_days=14),
    data=st.data(),
)
def test_closed_days_equal_the_reference_over_applied_events(
    params: KpiParams, stream: list[Event], data: st.DataObject
) -> None:
    # arrival order: by event time, each event shifted by up to two days of delay
    delays = [data.draw(st.integers(0, 2 * DAY_MS)) for _ in stream]
    arrivals = [
        e
        for _, e in sorted(zip(delays, stream, strict=True), key=lambda x: x[1].occurred_ms + x[0])
    ]
    # Few tracked customers: previews also go through the full-recompute cycles.
    min_tracked = data.draw(st.sampled_from([0, 1, 2, 1000]))
    # A cache of one or two customers: most reads decode a record evicted before,
    # kept by the cache itself or read from the table store.
    cache_limit = data.draw(st.sampled_from([1, 2, 2**62]))
    store = TableStore() if data.draw(st.booleans()) else None
    part = fresh(params, min_tracked, cache_limit)
    if store is not None:
        part.restore([], [], None, store)
    applied: list[Event] = []
    reports: dict[int, dict[str, object]] = {}
    lateness_days = data.draw(st.integers(0, 1))
    for offset, event in enumerate(arrivals):
        outcome = part.apply(event, "s", offset, now_ms=0)
        if store is not None:
            store.changed(event.customer_id, outcome)
            if data.draw(st.booleans()):
                store.settle(part)
        day = business_day(event.occurred_ms, params.zone)
        if part.kpi.closed_day is not None and day <= part.kpi.closed_day:
            assert isinstance(outcome, Late) and outcome.day == day
        else:
            assert isinstance(outcome, CustomerState)
            applied.append(event)
        # the watermark is this event's time; close what the lateness allows
        final = business_day(event.occurred_ms, params.zone) - 1 - lateness_days
        if final >= BASE_DAY and (part.kpi.closed_day is None or final > part.kpi.closed_day):
            for closed, terms in part.close_through(final):
                reports[closed] = kpi_document(terms, closed, params)
            assert part.kpi.closed_day == final
        if data.draw(st.booleans()):
            with_terms = data.draw(st.booleans())
            part = through_changelog(part, params, min_tracked, cache_limit, store, with_terms)
        if data.draw(st.integers(0, 2)) == 0:  # what /kpis shows of the open day
            open_day = max(day, (part.kpi.closed_day or day) + 1)
            preview = part.preview(open_day)
            assert preview is not None
            assert_same(
                kpi_document(preview, open_day, params),
                ref.kpis_as_of(applied, to_date(open_day), reference_params(params)),
                f"preview of day {open_day}",
            )
    assert set(part.unpublished) == set(reports)  # nothing was confirmed published
    rp = reference_params(params)
    for day, doc in reports.items():
        assert_same(doc, ref.kpis_as_of(applied, to_date(day), rp), f"day {day}")


def test_a_redelivery_of_an_applied_event_is_a_duplicate_even_once_its_day_is_final() -> None:
    part = fresh(KpiParams())
    event = Purchase("e1", "alice", BASE_DAY * DAY_MS, 1000, "o1")
    assert isinstance(part.apply(event, "s", 0, now_ms=0), CustomerState)
    part.close_through(BASE_DAY + 1)
    assert part.apply(event, "s", 0, now_ms=0) is None
    assert part.duplicates == 1


def test_an_event_of_a_final_day_is_late_and_changes_nothing() -> None:
    part = fresh(KpiParams())
    part.apply(Purchase("e1", "alice", (BASE_DAY + 3) * DAY_MS, 1000, "o1"), "s", 0, now_ms=0)
    before = part.close_through(BASE_DAY + 3)[-1][1]
    late = part.apply(Purchase("e2", "bob", (BASE_DAY + 2) * DAY_MS, 500, "o2"), "s", 1, now_ms=0)
    assert late == Late(BASE_DAY + 2, BASE_DAY + 3)
    assert "bob" not in part.customers
    assert part.close_through(BASE_DAY + 3) == []
    assert part.kpi.terms == before


def test_a_version_1_customer_record_reads_with_an_empty_history() -> None:
    data = {
        "v": 1,
        "purchases": 2,
        "enrollments": 0,
        "redemptions": 0,
        "revenue_minor": 300,
        "points_earned": 0,
        "points_redeemed": 0,
        "recent_ids": {},
        "applied_offsets": {},
    }
    state = decode_state(orjson.dumps(data))
    assert state.purchases == 2 and state.history.is_empty


def test_a_partition_that_never_closed_starts_at_the_first_final_day() -> None:
    """A partition that joins after the stream declared days final reports every
    final day since the first, so each day has a partial from every partition."""
    part = fresh(KpiParams())
    part.apply(Purchase("e1", "alice", BASE_DAY * DAY_MS, 1000, "o1"), "s", 0, now_ms=0)
    closed = part.close_through(BASE_DAY + 3, first_day=BASE_DAY + 1)
    assert [d for d, _ in closed] == [BASE_DAY + 1, BASE_DAY + 2, BASE_DAY + 3]
    assert all(t.windows[30].purchases.orders == 1 for _, t in closed)
    part.published([BASE_DAY + 1, BASE_DAY + 2])
    assert list(part.meta().unpublished) == [BASE_DAY + 3]
    assert part.meta().closed_day == BASE_DAY + 3


def test_a_long_backlog_of_days_closes_a_bounded_number_at_a_time() -> None:
    part = fresh(KpiParams())
    part.apply(Purchase("e1", "alice", BASE_DAY * DAY_MS, 1000, "o1"), "s", 0, now_ms=0)
    first = part.close_through(BASE_DAY + 100, first_day=BASE_DAY, max_days=40)
    assert [d for d, _ in first] == list(range(BASE_DAY, BASE_DAY + 40))
    part.published(d for d, _ in first)
    # every day through the stream's final day is late, closed here or not yet
    late = Purchase("e2", "bob", (BASE_DAY + 90) * DAY_MS, 500, "o2")
    assert part.apply(late, "s", 1, now_ms=0) == Late(BASE_DAY + 90, BASE_DAY + 100)
    second = part.close_through(BASE_DAY + 100, first_day=BASE_DAY, max_days=40)
    assert [d for d, _ in second] == list(range(BASE_DAY + 40, BASE_DAY + 80))
    part.published(d for d, _ in second)
    assert [d for d, _ in part.close_through(BASE_DAY + 100)] == list(
        range(BASE_DAY + 80, BASE_DAY + 101)
    )


def test_closing_pauses_while_too_many_closed_days_wait_to_be_published() -> None:
    part = fresh(KpiParams())
    part.apply(Purchase("e1", "alice", BASE_DAY * DAY_MS, 1000, "o1"), "s", 0, now_ms=0)
    closed = part.close_through(BASE_DAY + 500, first_day=BASE_DAY)
    assert len(closed) == len(part.unpublished) == MAX_UNPUBLISHED_DAYS
    assert part.close_through(BASE_DAY + 500) == []  # the serving store is away
    part.published(list(part.unpublished))
    assert len(part.close_through(BASE_DAY + 500)) == MAX_UNPUBLISHED_DAYS


def test_closing_pauses_when_the_unpublished_days_grow_too_large() -> None:
    """Big days (many stores) fill the meta record's byte budget before its day cap."""
    part = fresh(KpiParams())
    for n in range(2000):  # 2,000 stores: ~200 kB of terms a day
        when = BASE_DAY * DAY_MS
        part.apply(Purchase(f"e{n}", f"c{n}", when, 100, f"o{n}", "pos", f"s{n}"), "s", n, 0)
    closed = part.close_through(BASE_DAY + 500, first_day=BASE_DAY)
    assert 1 < len(closed) < MAX_UNPUBLISHED_DAYS
    assert part.unpublished_bytes >= MAX_UNPUBLISHED_BYTES
    assert part.unpublished_bytes - part._unpublished_bytes[closed[-1][0]] < MAX_UNPUBLISHED_BYTES
    assert part.close_through(BASE_DAY + 500) == []  # paused until published
    part.published([d for d, _ in closed])
    assert part.close_through(BASE_DAY + 500)[0][0] == closed[-1][0] + 1
    restored = fresh(KpiParams()).restore(part.customers.items(), [], part.meta())
    assert restored.unpublished_bytes == part.unpublished_bytes
