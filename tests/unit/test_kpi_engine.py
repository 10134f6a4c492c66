"""The incremental KPI engine equals the brute-force reference, for every KPI."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.contract import Enrollment, Event, Purchase, Redemption
from stream_app.kpi.contribution import contribution
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.days import DAY_MS, business_day, to_date
from stream_app.kpi.engine import KpiPartition
from stream_app.kpi.params import KpiParams
from stream_app.kpi.partition import PreviewCache
from stream_app.kpi.report import kpi_document
from stream_app.kpi.state_codec import decode_state, encode_state
from stream_app.kpi.terms import merge
from tests import kpi_reference as ref

BASE_DAY = 20_000  # 2024-10-03


def reference_params(p: KpiParams) -> ref.KpiParams:
    return ref.KpiParams(
        windows=p.windows,
        churn_period=p.churn_period,
        inactivity=p.inactivity,
        point_value_minor=Fraction(p.point_value) * 10**p.minor_digits,
        margin=Fraction(p.margin),
        max_years=p.max_years,
        reporting_tz=p.reporting_tz,
        program_fixed_cost_per_day=Fraction(p.program_fixed_cost_per_day),
        lift_confidence=Fraction(p.lift_confidence),
        cohort_months=p.cohort_months,
    )


def assert_same(got: Any, want: Any, path: str = "", strict_types: bool = False) -> None:
    """Same JSON, floats to 1e-9 relative; ``strict_types``: a float stays a float
    and an int an int (2.0 is not 2)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), (path, got, want)
        for key in want:
            assert_same(got[key], want[key], f"{path}.{key}", strict_types)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (path, got, want)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}.{i}", strict_types)
    elif isinstance(want, float) or (isinstance(got, float) and not strict_types):
        assert got is not None and want is not None, (path, got, want)
        assert not strict_types or isinstance(got, float), (path, got, want)
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (path, got, want)
    else:
        assert not strict_types or type(got) is type(want), (path, got, want)
        assert got == want, (path, got, want)


params_strategy = st.sampled_from(
    [
        KpiParams(),
        KpiParams(windows=(3, 7), churn_period=2, inactivity=5, cohort_months=2),
        KpiParams(
            windows=(1, 4),
            churn_period=1,
            inactivity=2,
            reporting_tz="America/New_York",
            cohort_months=1,
            margin=Decimal("0.3"),
            program_fixed_cost_per_day=Decimal("0.25"),
        ),
        KpiParams(
            windows=(5,),
            churn_period=3,
            inactivity=4,
            point_value=Decimal("0.005"),
            lift_confidence=Decimal("0.9"),
            cohort_months=3,
        ),
    ]
)


@st.composite
def events(draw: st.DrawFn, span_days: int, max_events: int = 45) -> list[Event]:
    out: list[Event] = []
    for n in range(draw(st.integers(0, max_events))):
        customer = f"c{draw(st.integers(0, 7))}"
        when = (BASE_DAY + draw(st.integers(0, span_days))) * DAY_MS + draw(
            st.integers(0, DAY_MS - 1)
        )
        kind = draw(st.sampled_from(["p", "p", "p", "e", "r"]))
        eid = f"e{n:03d}"
        if kind == "p":
            channel = draw(st.sampled_from(["pos", "web"]))
            amount = draw(st.integers(0, 10_000))
            store = draw(st.sampled_from([None, "", "s1", "s2"]))
            out.append(Purchase(eid, customer, when, amount, eid, channel, store, amount // 100))
        elif kind == "e":
            cohort = draw(st.sampled_from(["member", "member", "control"]))
            tier = draw(st.sampled_from([None, "", "gold", "silver"]))
            out.append(Enrollment(eid, customer, when, cohort, tier))
        else:
            reward = draw(st.none() | st.integers(0, 500))
            out.append(Redemption(eid, customer, when, draw(st.integers(1, 300)), reward))
    return out


def partition_of(customer: str, partitions: int) -> int:
    return sum(customer.encode()) % partitions


@given(params_strategy, st.data())
@settings(max_examples=120, deadline=None)
def test_engine_equals_reference_on_every_closed_day_checked(
    p: KpiParams, data: st.DataObject
) -> None:
    reach = p.lookback_days  # the farthest any KPI looks back (365 for CLV)
    short = max(p.all_windows[:-1] + (p.churn_period + p.inactivity,))
    span = data.draw(st.sampled_from([short * 2 + 3, reach + short + 3]))
    evs = data.draw(events(span))
    days = {e.event_id: business_day(e.occurred_ms, p.zone) for e in evs}
    first = min(days.values(), default=BASE_DAY) - 1
    last = max(days.values(), default=BASE_DAY) + reach + 2  # every edge gets crossed
    n_parts = data.draw(st.integers(1, 3))
    parts = [KpiPartition(p, closed_day=first) for _ in range(n_parts)]
    pending = sorted(evs, key=lambda e: days[e.event_id])
    every_day = set(range(first + 1, last + 1))
    edges = sorted(  # days where an event crosses a window or churn boundary
        d + b + k
        for d in days.values()
        for b in p.boundaries
        for k in (-1, 0, 1)
        if d + b + k in every_day
    )
    edges += [d + k for d in every_day if to_date(d).day == 1 for k in (-1, 0)]  # cohort rows
    picked = data.draw(st.lists(st.sampled_from(edges), max_size=8)) if edges else []
    checks = set(picked) | set(range(first + 1, first + 2 * short + 4))
    # Arrival order and restarts, day by day: drawn from one seed (a draw per day
    # of a 700-day stream made Hypothesis' bookkeeping most of this test's time).
    rng = random.Random(data.draw(st.integers(0, 2**32), label="arrival_seed"))
    for day in range(first + 1, last + 1):
        # every event of `day` arrives before it closes, in any order with later days'
        arrived = [e for e in pending if days[e.event_id] <= day]
        pending = [e for e in pending if days[e.event_id] > day]
        early = [e for e in pending if days[e.event_id] <= day + 2 and rng.random() < 0.5]
        pending = [e for e in pending if e not in early]
        arrivals = arrived + early
        rng.shuffle(arrivals)
        for e in arrivals:
            parts[partition_of(e.customer_id, n_parts)].add(e, days[e.event_id])
        if rng.randrange(10) == 0:  # a worker restarts from its stored state
            i = rng.randrange(n_parts)
            stored = [
                (c, decode_state(encode_state(CustomerState(history=h))).history)
                for c, h in parts[i].customers.items()
            ]
            parts[i] = KpiPartition.restore(p, parts[i].closed_day, stored)
        totals = merge(part.close(day) for part in parts)
        if day in checks:
            want = ref.kpis_as_of(evs, to_date(day), reference_params(p))
            assert_same(kpi_document(totals, day, p), want)
            # Terms the document does not show (a cohort row that left the report)
            # must leave the totals too, or they would grow without bound.
            for part in parts:
                exact = merge(contribution(h, day, p) for h in part.customers.values())
                assert part.terms.to_json() == exact.to_json()


def test_a_window_edge_example_by_hand() -> None:
    p = KpiParams(windows=(2,), churn_period=1, inactivity=2)
    part = KpiPartition(p, closed_day=BASE_DAY - 1)
    part.add(Purchase("a", "c1", BASE_DAY * DAY_MS, 1000, "a", "pos"), BASE_DAY)
    part.add(Purchase("b", "c1", (BASE_DAY + 1) * DAY_MS, 500, "b", "web"), BASE_DAY + 1)
    part.close(BASE_DAY)
    doc = kpi_document(part.close(BASE_DAY + 1), BASE_DAY + 1, p)["windows"]["2d"]
    assert (doc["orders"], doc["revenue"], doc["repeat_customers"]) == (2, 15.0, 1)
    assert sorted(doc["channels"]) == ["pos", "web"]
    later = kpi_document(part.close(BASE_DAY + 2), BASE_DAY + 2, p)["windows"]["2d"]
    assert (later["orders"], later["revenue"], later["repeat_customers"]) == (1, 5.0, 0)
    assert list(later["channels"]) == ["web"]
    assert to_date(BASE_DAY + 2) - to_date(BASE_DAY) == timedelta(days=2)


@given(params_strategy, st.data())
@settings(max_examples=60, deadline=None)
def test_preview_of_an_open_day_equals_the_reference(p: KpiParams, data: st.DataObject) -> None:
    short = max(p.all_windows[:-1] + (p.churn_period + p.inactivity,))
    evs = data.draw(events(short * 2 + 3))
    days = {e.event_id: business_day(e.occurred_ms, p.zone) for e in evs}
    first = min(days.values(), default=BASE_DAY) - 1
    part = KpiPartition(p, closed_day=first)
    closed = data.draw(st.integers(first, first + short * 2))
    for e in evs:  # everything arrives before the days close
        part.add(e, days[e.event_id])
    for day in range(first + 1, closed + 1):
        part.close(day)
    ahead = data.draw(st.integers(closed + 1, closed + short + 3))
    want = ref.kpis_as_of(evs, to_date(ahead), reference_params(p))
    assert_same(kpi_document(PreviewCache().terms(ahead, part), ahead, p), want)
    assert part.closed_day == closed  # nothing closed by a preview
