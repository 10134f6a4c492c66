"""Hand-computed worked examples that pin the brute-force KPI reference (spec v2).

Every expected number below is worked out by hand in the comment next to it
(money in cents -> dollars in the JSON).  Floats are compared exactly where the
reference converts an exact Fraction: `a / b` on ints is correctly rounded in
CPython, just like `float(Fraction(a, b))`.  Date arithmetic used in a comment
is asserted once with `timedelta` so that the hand work itself is checked.
The lift's Student t quantile is the one figure not done by hand: its degrees
of freedom are, and scipy gives the quantile (tests/unit/test_lift_reference.py
checks the whole lift against scipy.stats.ttest_ind).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from stream_app.contract import Enrollment, Event, Purchase, Redemption
from tests.kpi_reference import SEGMENTS, KpiParams, business_day, first_day, kpis_as_of

_ids = itertools.count()
NY = "America/New_York"


def at(stamp: str) -> int:
    """Epoch ms of an RFC 3339 stamp; a bare date means 12:00Z on that day."""
    if len(stamp) == 10:
        stamp += "T12:00:00Z"
    return int(datetime.fromisoformat(stamp).timestamp()) * 1000


def buy(
    customer: str,
    when: str,
    cents: int,
    channel: str = "unknown",
    points: int = 0,
    store: str | None = None,
) -> Purchase:
    eid = f"p{next(_ids)}"
    return Purchase(
        eid, customer, at(when), cents, eid, channel=channel, store_id=store, points_earned=points
    )


def enroll(
    customer: str,
    when: str,
    cohort: str = "member",
    eid: str | None = None,
    tier: str | None = None,
) -> Enrollment:
    return Enrollment(eid or f"e{next(_ids)}", customer, at(when), cohort=cohort, tier=tier)


def redeem(customer: str, when: str, points: int, value: int | None = None) -> Redemption:
    return Redemption(f"r{next(_ids)}", customer, at(when), points, reward_value_minor=value)


def seg(
    orders: int,
    revenue: float,
    active: int,
    repeat: int,
    aov: float | None,
    freq: float | None,
    rpr: float | None,
) -> dict[str, Any]:
    return {
        "orders": orders,
        "revenue": revenue,
        "active_customers": active,
        "repeat_customers": repeat,
        "aov": aov,
        "purchase_frequency": freq,
        "repeat_purchase_rate": rpr,
    }


def chan(orders: int, revenue: float, active: int, aov: float | None) -> dict[str, Any]:
    """A `channels`, `tiers` or `stores` entry."""
    return {"orders": orders, "revenue": revenue, "active_customers": active, "aov": aov}


def lift(
    baseline: str = "non_member",
    members: int = 0,
    baseline_customers: int = 0,
    per_member: float | None = None,
    per_baseline: float | None = None,
    difference: float | None = None,
    ci: tuple[float | None, float | None] = (None, None),
    p_value: float | None = None,
    relative: float | None = None,
) -> dict[str, Any]:
    return {
        "baseline": baseline,
        "members": members,
        "baseline_customers": baseline_customers,
        "revenue_per_member": per_member,
        "revenue_per_baseline": per_baseline,
        "difference": difference,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "p_value": p_value,
        "relative_lift": relative,
    }


def empty_row(cohort: str, length: int) -> dict[str, Any]:
    """A §3.7 row of a month in which no customer made a first purchase."""
    return {
        "cohort": cohort,
        "size": 0,
        "active": [0] * length,
        "revenue": [0.0] * length,
        "retention": [None] * length,
    }


EMPTY_SEG = seg(0, 0.0, 0, 0, None, None, None)
# No member, fewer than 2 control customers -> baseline non_member, empty too.
NO_LIFT = lift()
EMPTY_WINDOW: dict[str, Any] = {
    **EMPTY_SEG,
    "points_issued": 0,
    "points_redeemed": 0,
    "redemption_rate": None,
    "redeeming_customers": 0,
    "active_members": 0,
    "enrollment_rate": None,
    "new_enrollments": 0,
    "segments": {s: EMPTY_SEG for s in SEGMENTS},
    "channels": {},
    "tiers": {},
    "stores": {},
    "second_purchases": 0,
    "days_to_second_purchase": None,
    "lift": NO_LIFT,
}
NO_PROGRAM: dict[str, Any] = {
    "members_total": 0,
    "control_total": 0,
    "members_by_tier": {},
    "outstanding_points": 0,
    "outstanding_points_value": 0.0,
    "program_cost": 0.0,
    "incremental_revenue": None,
    "incremental_revenue_ci": [None, None],
    "incremental_margin": None,
    "roi": None,
    "roi_ci": [None, None],
}


# ------------------------------------------------------------------ time


def test_business_day_in_reporting_time_zone() -> None:
    # 2024-03-01T03:00Z is 2024-02-29 22:00 EST (UTC-5).
    assert business_day(at("2024-03-01T03:00:00Z"), NY) == date(2024, 2, 29)
    assert business_day(at("2024-03-01T03:00:00Z"), "UTC") == date(2024, 3, 1)
    # DST starts 2024-03-10 07:00Z: 04:30Z is still EST (Mar 9 23:30) ...
    assert business_day(at("2024-03-10T04:30:00Z"), NY) == date(2024, 3, 9)
    # ... and 2024-03-11T03:30Z is EDT (UTC-4): Mar 10 23:30.
    assert business_day(at("2024-03-11T03:30:00Z"), NY) == date(2024, 3, 10)
    assert business_day(at("2024-03-11T04:00:00Z"), NY) == date(2024, 3, 11)


def test_non_utc_reporting_zone_moves_events_across_days() -> None:
    events: list[Event] = [
        buy("a", "2024-03-01T03:00:00Z", 1000),  # NY: Feb 29 22:00
        enroll("a", "2024-03-01T04:30:00Z"),  # NY: Feb 29 23:30
        buy("b", "2024-03-01T05:00:00Z", 2000),  # NY: Mar 1 00:00
    ]
    ny = KpiParams(windows=(1,), reporting_tz=NY)
    feb29 = kpis_as_of(events, date(2024, 2, 29), ny)
    w = feb29["windows"]["1d"]
    assert (w["orders"], w["revenue"], w["active_members"], w["new_enrollments"]) == (1, 10.0, 1, 1)
    assert w["segments"]["member"]["orders"] == 1  # a enrolled later that same local day
    assert feb29["program"]["members_total"] == 1
    mar1 = kpis_as_of(events, date(2024, 3, 1), ny)["windows"]["1d"]
    assert (mar1["orders"], mar1["revenue"], mar1["new_enrollments"]) == (1, 20.0, 0)
    assert mar1["segments"]["non_member"]["orders"] == 1  # b
    utc = KpiParams(windows=(1,))
    assert kpis_as_of(events, date(2024, 2, 29), utc)["windows"]["1d"] == EMPTY_WINDOW
    assert kpis_as_of(events, date(2024, 2, 29), utc)["program"]["members_total"] == 0
    assert kpis_as_of(events, date(2024, 3, 1), utc)["windows"]["1d"]["orders"] == 2
    # §2 F is a business day in the reporting zone too
    assert first_day(events, ny) == date(2024, 2, 29)
    assert first_day(events, utc) == date(2024, 3, 1)


# ------------------------------------------------------------------ empty


def test_empty_stream_is_the_spec_shape_with_nulls() -> None:
    doc = kpis_as_of([buy("late", "1998-07-01T00:00:00Z", 500)], date(1998, 6, 30), KpiParams())
    # K = 12 rows: 1997-07 (offsets 0..11, 12 entries) ... 1998-06 (1 entry)
    months = [f"1997-{m:02d}" for m in range(7, 13)] + [f"1998-{m:02d}" for m in range(1, 7)]
    assert doc == {
        "as_of": "1998-06-30",
        "currency": "USD",
        "windows": {"30d": EMPTY_WINDOW, "90d": EMPTY_WINDOW, "365d": EMPTY_WINDOW},
        "churn": {
            "period_days": 30,
            "inactivity_days": 90,
            "customers_at_start": 0,
            "active_at_end": 0,
            "churned": 0,
            "new_customers": 0,
            "churn_rate": None,
            "retention_rate": None,
            "value_at_start": 0.0,
            "value_churned": 0.0,
            "value_churn_rate": None,
            "churned_on_day": 0,
            "history_complete": False,  # F = 1998-07-01 is after D
        },
        "clv": {
            "window_days": 365,
            "annual_churn_rate": None,
            "expected_lifetime_years": None,
            "value": None,
            "history_complete": False,
        },
        "program": NO_PROGRAM,
        "cohorts": {"months": 12, "rows": [empty_row(c, 12 - i) for i, c in enumerate(months)]},
    }
    # no event at all: F is undefined and history_complete is false
    nothing = kpis_as_of([], date(1998, 6, 30), KpiParams())
    assert nothing == doc


def test_document_key_order_is_the_spec_example() -> None:
    """§5: the keys come in the order of the spec's example JSON."""
    events: list[Event] = [
        enroll("m", "2024-03-01", tier="gold"),
        buy("m", "2024-03-02", 100, "pos", store="s1"),
        buy("m", "2024-03-03", 100, "pos", store="s1"),
    ]
    doc = kpis_as_of(events, date(2024, 3, 31), KpiParams(windows=(30,)))
    assert list(doc) == ["as_of", "currency", "windows", "churn", "clv", "program", "cohorts"]
    window = doc["windows"]["30d"]
    assert list(window) == [
        *("orders", "revenue", "active_customers", "repeat_customers", "aov"),
        *("purchase_frequency", "repeat_purchase_rate", "points_issued", "points_redeemed"),
        *("redemption_rate", "redeeming_customers", "active_members", "enrollment_rate"),
        *("new_enrollments", "segments", "channels", "tiers", "stores", "second_purchases"),
        *("days_to_second_purchase", "lift"),
    ]
    assert list(window["segments"]) == ["member", "non_member", "control"]
    assert list(window["segments"]["member"]) == list(EMPTY_SEG)
    brief = ["orders", "revenue", "active_customers", "aov"]
    for key in ("channels", "tiers", "stores"):
        assert list(window[key]) == [{"channels": "pos", "tiers": "gold", "stores": "s1"}[key]]
        assert list(next(iter(window[key].values()))) == brief
    assert list(window["days_to_second_purchase"]) == ["p25", "median", "p75", "mean"]
    assert list(window["lift"]) == [
        *("baseline", "members", "baseline_customers", "revenue_per_member"),
        *("revenue_per_baseline", "difference", "ci_low", "ci_high", "p_value"),
        "relative_lift",
    ]
    assert list(doc["churn"]) == [
        *("period_days", "inactivity_days", "customers_at_start", "active_at_end", "churned"),
        *("new_customers", "churn_rate", "retention_rate", "value_at_start", "value_churned"),
        *("value_churn_rate", "churned_on_day", "history_complete"),
    ]
    assert list(doc["clv"]) == [
        *("window_days", "annual_churn_rate", "expected_lifetime_years", "value"),
        "history_complete",
    ]
    assert list(doc["program"]) == list(NO_PROGRAM)
    assert list(doc["program"]) == [
        *("members_total", "control_total", "members_by_tier", "outstanding_points"),
        *("outstanding_points_value", "program_cost", "incremental_revenue"),
        *("incremental_revenue_ci", "incremental_margin", "roi", "roi_ci"),
    ]
    assert list(doc["cohorts"]) == ["months", "rows"]
    assert list(doc["cohorts"]["rows"][-1]) == ["cohort", "size", "active", "revenue", "retention"]


def test_invalid_churn_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        KpiParams(churn_period=30, inactivity=30)
    with pytest.raises(ValueError):
        KpiParams(windows=(0,))


# ------------------------------------------------------------------ §3.1 + everything


def test_full_document_worked_example() -> None:
    d = date(2024, 3, 31)
    # 30d = Mar 2..Mar 31, 90d = Jan 2..Mar 31, 365d = 2023-04-02..2024-03-31
    assert d - timedelta(days=29) == date(2024, 3, 2)
    assert d - timedelta(days=89) == date(2024, 1, 2)
    assert d - timedelta(days=364) == date(2023, 4, 2)
    # B: first purchase Jan 1, second Mar 15 (2024 is a leap year)
    assert date(2024, 3, 15) - date(2024, 1, 1) == timedelta(days=74)
    events: list[Event] = [
        enroll("A", "2024-01-05", tier="gold"),
        buy("A", "2024-03-01T23:59:59Z", 2000, "pos", 200, store="s1"),  # in 90d, not 30d
        buy("A", "2024-03-02T00:00:00Z", 1000, "pos", 100, store="s1"),  # first second of 30d
        buy("A", "2024-03-31T23:59:59Z", 550, "web", 50, store=""),  # last second of D
        redeem("A", "2024-03-05", 120, value=100),
        buy("B", "2024-01-01T23:59:59Z", 10000, "pos"),  # in 365d only
        buy("B", "2024-03-15", 725, "web", store="s1"),
        enroll("B", "2024-04-01T00:00:00Z"),  # after D: B stays non_member
        enroll("C", "2024-02-01", "control", tier="gold"),  # control: no tier
        buy("C", "2024-03-20", 0, "app"),  # zero-value order counts
        buy("C", "2024-03-21", 300, "app", store="s2"),
        enroll("D", "2024-03-10", tier="silver"),
        redeem("D", "2024-03-12", 40),  # no reward_value: 40 x 1 cent
        buy("E", "2024-04-01T00:00:00Z", 5000, "pos"),  # after D: ignored
    ]
    doc = kpis_as_of(events, d, KpiParams(windows=(30, 90)))
    w30 = {
        # purchases A 1000, A 550, B 725, C 0, C 300
        **seg(
            5,
            25.75,  # 1000 + 550 + 725 + 0 + 300 = 2575 cents
            3,  # A, B, C
            2,  # A (2), C (2)
            5.15,  # 2575 / 5 = 515 cents
            5 / 3,
            2 / 3,
        ),
        "points_issued": 150,  # 100 + 50
        "points_redeemed": 160,  # 120 + 40
        "redemption_rate": 16 / 15,  # 160 / 150 (> 1 is allowed)
        "redeeming_customers": 2,  # A, D
        "active_members": 1,  # A (C is control, B non_member)
        "enrollment_rate": 1 / 3,
        "new_enrollments": 1,  # D on Mar 10 (A's Jan 5 is outside, C is control)
        "segments": {
            "member": seg(2, 15.50, 1, 1, 7.75, 2.0, 1.0),  # A: 1000 + 550
            "non_member": seg(1, 7.25, 1, 0, 7.25, 1.0, 0.0),  # B: 725
            "control": seg(2, 3.0, 1, 1, 1.5, 2.0, 1.0),  # C: 0 + 300
        },
        "channels": {
            "app": chan(2, 3.0, 1, 1.5),  # C 0 + 300
            "pos": chan(1, 10.0, 1, 10.0),  # A 1000
            "web": chan(2, 12.75, 2, 6.375),  # A 550 + B 725 = 1275 / 2
        },
        # tier as of D: A gold, D silver (no purchase: no entry), C none (control)
        "tiers": {"gold": chan(2, 15.50, 1, 7.75)},  # A 1000 + 550
        # A's 550 has store "" and C's 0 none: left out
        "stores": {
            "s1": chan(2, 17.25, 2, 8.625),  # A 1000 + B 725 = 1725 / 2
            "s2": chan(1, 3.0, 1, 3.0),  # C 300
        },
        # second purchases: A Mar 2 (first Mar 1: 1 day), B Mar 15 (74 days),
        # C Mar 21 (1 day) -> gaps 1, 1, 74: p25 at ceil(0.75) = 1 -> 1,
        # median at ceil(1.5) = 2 -> 1, p75 at ceil(2.25) = 3 -> 74, mean 76 / 3
        "second_purchases": 3,
        "days_to_second_purchase": {"p25": 1, "median": 1, "p75": 74, "mean": 76 / 3},
        # groups as of D: member A, D; control C alone (< 2) -> baseline
        # non_member: B (E's purchase is after D).  x: A 1550, D 0; B 725
        "lift": lift(
            "non_member",
            members=2,
            baseline_customers=1,
            per_member=7.75,  # (1550 + 0) / 2
            per_baseline=7.25,
            difference=0.5,  # 775 - 725 = 50 cents; n_b = 1: no interval
            relative=2 / 29,  # 50 / 725
        ),
    }
    w90 = {
        # + A 2000 on Mar 1 (B's Jan 1 is before Jan 2)
        **seg(6, 45.75, 3, 2, 7.625, 2.0, 2 / 3),  # 4575 / 6 = 762.5 cents, 6 / 3
        "points_issued": 350,  # 200 + 100 + 50
        "points_redeemed": 160,
        "redemption_rate": 16 / 35,  # 160 / 350
        "redeeming_customers": 2,
        "active_members": 1,
        "enrollment_rate": 1 / 3,
        "new_enrollments": 2,  # A (Jan 5), D (Mar 10)
        "segments": {
            "member": seg(3, 35.50, 1, 1, 71 / 6, 3.0, 1.0),  # 3550 / 3 cents = 71/6 dollars
            "non_member": seg(1, 7.25, 1, 0, 7.25, 1.0, 0.0),
            "control": seg(2, 3.0, 1, 1, 1.5, 2.0, 1.0),
        },
        "channels": {
            "app": chan(2, 3.0, 1, 1.5),
            "pos": chan(2, 30.0, 1, 15.0),  # A 2000 + 1000
            "web": chan(2, 12.75, 2, 6.375),
        },
        "tiers": {"gold": chan(3, 35.50, 1, 71 / 6)},  # A 2000 + 1000 + 550
        "stores": {
            "s1": chan(3, 37.25, 2, 149 / 12),  # A 2000 + 1000 + B 725 = 3725 / 3 cents
            "s2": chan(1, 3.0, 1, 3.0),
        },
        "second_purchases": 3,  # the same three second purchases
        "days_to_second_purchase": {"p25": 1, "median": 1, "p75": 74, "mean": 76 / 3},
        # x: A 3550, D 0 -> 1775; B 725 -> d = 1050 cents
        "lift": lift("non_member", 2, 1, 17.75, 7.25, 10.5, relative=42 / 29),  # 1050 / 725
    }
    assert doc == {
        "as_of": "2024-03-31",
        "currency": "USD",
        "windows": {"30d": w30, "90d": w90},
        # D-P = Mar 1; active as of Mar 1 = last purchase <= Mar 1 after Dec 2:
        # A (Mar 1), B (Jan 1) -> S = 2.  Active as of Mar 31 (after Jan 1): A, B, C.
        "churn": {
            "period_days": 30,
            "inactivity_days": 90,
            "customers_at_start": 2,
            "active_at_end": 3,
            "churned": 0,
            "new_customers": 1,  # C (Mar 20); A's first purchase is Mar 1 = D-P: not new
            "churn_rate": 0.0,
            "retention_rate": 1.0,  # (3 - 1) / 2
            "value_at_start": 120.0,  # (Dec 2, Mar 1]: A 2000 + B 10000
            "value_churned": 0.0,
            "value_churn_rate": 0.0,
            "churned_on_day": 0,  # active on Mar 30: A, B, C, all still active
            # F = Jan 1 (B); D - P - T + 1 = 2023-12-03 < F
            "history_complete": False,
        },
        # 365d: 7 orders, 14575 cents, 3 customers; aov x freq = 14575 / 3 cents;
        # churn 0 -> annual 0 -> max_years 10 -> 145750 / 3 cents = 2915 / 6 dollars
        "clv": {
            "window_days": 365,
            "annual_churn_rate": 0.0,
            "expected_lifetime_years": 10.0,
            "value": 2915 / 6,
            "history_complete": False,
        },
        # W_max = 90 (the longest of the windows given)
        "program": {
            "members_total": 2,  # A, D
            "control_total": 1,  # C
            "members_by_tier": {"gold": 1, "silver": 1},  # A, D
            "outstanding_points": 190,  # 350 - 160
            "outstanding_points_value": 1.90,  # 190 x 1 cent
            "program_cost": 1.40,  # 100 + 40 x 1 cent, both in Jan 2..Mar 31
            "incremental_revenue": 21.0,  # d x n_m = 1050 x 2 cents
            "incremental_revenue_ci": [None, None],  # baseline of one customer
            "incremental_margin": 21.0,  # margin 1
            "roi": 14.0,  # (2100 - 140) / 140
            "roi_ci": [None, None],
        },
        # M(D) = 2024-03; rows 2023-04 .. 2024-03.  First purchases: B Jan 1,
        # A Mar 1, C Mar 20 (E's is after D).
        "cohorts": {
            "months": 12,
            "rows": [
                *(empty_row(f"2023-{m:02d}", 16 - m) for m in range(4, 13)),  # 12 .. 4 entries
                {  # B: Jan 10000, Feb nothing, Mar 725
                    "cohort": "2024-01",
                    "size": 1,
                    "active": [1, 0, 1],
                    "revenue": [100.0, 0.0, 7.25],
                    "retention": [1.0, 0.0, 1.0],
                },
                empty_row("2024-02", 2),
                {  # A 2000 + 1000 + 550, C 0 + 300
                    "cohort": "2024-03",
                    "size": 2,
                    "active": [2],
                    "revenue": [38.5],
                    "retention": [1.0],
                },
            ],
        },
    }


def test_segment_switching_same_day_and_ties() -> None:
    events: list[Event] = [
        # X: control, then re-enrolled as member on Mar 10
        enroll("X", "2024-01-10", "control"),
        enroll("X", "2024-03-10"),
        buy("X", "2024-02-01", 1000),
        buy("X", "2024-03-20", 2000),
        # Y: purchase at 09:00 and enrollment at 18:00 on the same business day
        buy("Y", "2024-03-15T09:00:00Z", 500),
        enroll("Y", "2024-03-15T18:00:00Z"),
        # Z, W: two enrollments at the same instant -> the larger event_id wins
        enroll("Z", "2024-02-01", "control", eid="z-a"),
        enroll("Z", "2024-02-01", "member", eid="z-b"),
        buy("Z", "2024-03-05", 300),
        enroll("W", "2024-02-01", "member", eid="w-a"),
        enroll("W", "2024-02-01", "control", eid="w-b"),
        buy("W", "2024-03-06", 400),
        # V: occurred_at decides before event_id does
        enroll("V", "2024-02-02T10:00:00Z", "control", eid="v-9"),
        enroll("V", "2024-02-02T11:00:00Z", "member", eid="v-1"),
        buy("V", "2024-03-07", 600),
    ]
    params = KpiParams(windows=(30, 90))
    for stream in (events, events[::-1]):
        doc = kpis_as_of(stream, date(2024, 3, 31), params)
        w30, w90 = doc["windows"]["30d"], doc["windows"]["90d"]
        # 30d (Mar 2..31): members X 2000, Y 500, Z 300, V 600 = 3400; control W 400
        assert w30["segments"]["member"] == seg(4, 34.0, 4, 0, 8.5, 1.0, 0.0)
        assert w30["segments"]["control"] == seg(1, 4.0, 1, 0, 4.0, 1.0, 0.0)
        assert w30["segments"]["non_member"] == EMPTY_SEG
        assert (w30["active_members"], w30["enrollment_rate"]) == (4, 4 / 5)
        assert w30["new_enrollments"] == 2  # X (Mar 10), Y (Mar 15)
        # 90d adds X's Feb 1 purchase, made while X was control: segment as of D
        # is member, so it counts as member: 5 orders, 4400 cents, X repeats.
        assert w90["segments"]["member"] == seg(5, 44.0, 4, 1, 8.8, 5 / 4, 1 / 4)
        # member enrollments dated in Jan 2..Mar 31: X, Y, Z (z-b), W (w-a), V (v-1)
        assert w90["new_enrollments"] == 5
        assert doc["program"]["members_total"] == 4  # X, Y, Z, V
        assert doc["program"]["control_total"] == 1  # W
    # As of Feb 29, X is still control, Y unknown: 30d = Jan 31..Feb 29.
    feb = kpis_as_of(events, date(2024, 2, 29), params)
    assert feb["windows"]["30d"]["segments"]["control"] == seg(1, 10.0, 1, 0, 10.0, 1.0, 0.0)
    assert (feb["program"]["members_total"], feb["program"]["control_total"]) == (2, 2)
    # As of Mar 15, Y's purchase counts as member (enrolled later that day).
    mar15 = kpis_as_of(events, date(2024, 3, 15), params)["windows"]["30d"]
    assert mar15["segments"]["member"]["orders"] == 3  # Y 500, Z 300, V 600
    assert mar15["segments"]["member"]["revenue"] == 14.0


# ------------------------------------------------------------------ §3.2


def test_churn_return_and_value_churn() -> None:
    d = date(2024, 6, 30)
    # P = 30, T = 90: D-P = May 31; active as of May 31 <=> last purchase after
    # Mar 2; active as of Jun 30 <=> after Apr 1; as of Jun 29 <=> after Mar 31.
    assert d - timedelta(days=30) == date(2024, 5, 31)
    assert date(2024, 5, 31) - timedelta(days=90) == date(2024, 3, 2)
    assert d - timedelta(days=90) == date(2024, 4, 1)
    assert d - timedelta(days=91) == date(2024, 3, 31)
    events: list[Event] = [
        buy("A", "2024-03-03", 1000),  # S (Mar 3 > Mar 2), churned
        buy("B", "2024-03-02", 500),  # not in S (Mar 2 is not > Mar 2) ...
        buy("B", "2024-06-10", 800),  # ... returns: in E, not new
        buy("C", "2024-03-02", 40000),  # on D-P-T: not in (Mar 2, May 31]
        buy("C", "2024-04-15", 2000),  # S and E
        buy("C", "2024-05-20", 3000),
        buy("C", "2024-06-05", 0),
        buy("D", "2024-06-01", 1200),  # first-ever purchase in (May 31, Jun 30]: N
        buy("E", "2024-02-01", 10000),  # outside (Mar 2, May 31]: not base value
        buy("E", "2024-04-01", 4000),  # S; Apr 1 is not > Apr 1: churned, on D itself
        buy("F", "2024-05-31", 700),  # S (first purchase on D-P: not new), E
    ]
    churn = kpis_as_of(events, d, KpiParams())["churn"]
    assert churn == {
        "period_days": 30,
        "inactivity_days": 90,
        "customers_at_start": 4,  # A, C, E, F
        "active_at_end": 4,  # B, C, D, F
        "churned": 2,  # A, E
        "new_customers": 1,  # D
        "churn_rate": 0.5,  # 2 / 4
        "retention_rate": 0.75,  # (4 - 1) / 4
        "value_at_start": 107.0,  # A 1000 + C 2000 + 3000 + E 4000 + F 700
        "value_churned": 50.0,  # A 1000 + E 4000
        "value_churn_rate": 50 / 107,  # 5000 / 10700
        "churned_on_day": 1,  # E: active as of Jun 29 (Apr 1 > Mar 31), not Jun 30
        "history_complete": True,  # D - P - T + 1 = Mar 3 >= F = Feb 1 (E)
    }
    # B churned earlier: as of May 31, D-P = May 1, S = last purchase in
    # (Feb 1, May 1]: A, B, C, E; E = (Mar 2, May 31]: A, C, E, F; N = F.
    may = kpis_as_of(events, date(2024, 5, 31), KpiParams())["churn"]
    assert date(2024, 5, 1) - timedelta(days=90) == date(2024, 2, 1)
    assert (may["customers_at_start"], may["active_at_end"]) == (4, 4)
    assert (may["churned"], may["new_customers"]) == (1, 1)  # B; F
    # CLV: 365d (2023-07-02..2024-06-30) holds all 11 orders, 63200 cents, 6
    # customers: aov x freq = 63200 / 6 cents; annual = 1 - 0.5^(365/30).
    clv = kpis_as_of(events, d, KpiParams())["clv"]
    annual = 1 - 0.5 ** (365 / 30)
    assert clv["annual_churn_rate"] == pytest.approx(annual, rel=1e-12)
    assert clv["expected_lifetime_years"] == pytest.approx(1 / annual, rel=1e-12)
    assert clv["value"] == pytest.approx(632 / 6 / annual, rel=1e-12)


def test_retention_counts_returning_customers_and_can_exceed_one() -> None:
    events: list[Event] = [
        buy("G", "2024-05-01", 100),  # S and E
        buy("G", "2024-06-15", 100),
        buy("H", "2024-01-01", 100),  # lapsed before D-P, back on Jun 15: E only
        buy("H", "2024-06-15", 100),
        buy("I", "2024-02-01", 100),  # idem
        buy("I", "2024-06-20", 100),
        buy("J", "2024-06-20", 100),  # new
    ]
    churn = kpis_as_of(events, date(2024, 6, 30), KpiParams())["churn"]
    assert (churn["customers_at_start"], churn["active_at_end"]) == (1, 4)
    assert (churn["churned"], churn["new_customers"]) == (0, 1)
    assert churn["churn_rate"] == 0.0
    assert churn["retention_rate"] == 3.0  # (4 - 1) / 1: E - N <= S does not hold


def test_inactivity_just_above_churn_period() -> None:
    d = date(2024, 6, 30)
    params = KpiParams(churn_period=30, inactivity=31)
    # active as of May 31 <=> after Apr 30; as of Jun 30 <=> after May 30;
    # as of Jun 29 <=> after May 29; base value on (Apr 30, May 31].
    assert date(2024, 5, 31) - timedelta(days=31) == date(2024, 4, 30)
    assert d - timedelta(days=31) == date(2024, 5, 30)
    events: list[Event] = [
        buy("K", "2024-04-30", 7000),  # on D-P-T: not base value
        buy("K", "2024-05-01", 1000),  # S, churned
        buy("L", "2024-05-31", 2000),  # S, E
        buy("M", "2024-04-30", 5000),  # neither
        buy("N", "2024-06-01", 900),  # E, new
        buy("O", "2024-05-30", 3000),  # S, active Jun 29, churned on D
    ]
    churn = kpis_as_of(events, d, params)["churn"]
    assert churn == {
        "period_days": 30,
        "inactivity_days": 31,
        "customers_at_start": 3,  # K, L, O
        "active_at_end": 2,  # L, N
        "churned": 2,  # K, O
        "new_customers": 1,  # N
        "churn_rate": 2 / 3,
        "retention_rate": 1 / 3,  # (2 - 1) / 3
        "value_at_start": 60.0,  # 1000 + 2000 + 3000
        "value_churned": 40.0,  # 1000 + 3000
        "value_churn_rate": 2 / 3,  # 4000 / 6000
        "churned_on_day": 1,  # O
        "history_complete": True,  # D - P - T + 1 = May 1 >= F = Apr 30 (K, M)
    }


def test_zero_amount_orders_and_null_value_churn_rate() -> None:
    d = date(2024, 6, 30)
    params = KpiParams(churn_period=30, inactivity=31)
    doc = kpis_as_of([buy("z", "2024-05-10", 0)], d, params)
    # May 10 > Apr 30: in S; May 10 <= May 30: churned.  Base value is 0 cents.
    churn = doc["churn"]
    assert (churn["customers_at_start"], churn["churned"], churn["churn_rate"]) == (1, 1, 1.0)
    assert (churn["value_at_start"], churn["value_churned"]) == (0.0, 0.0)
    assert churn["value_churn_rate"] is None  # 0 / 0
    # Jun 1..Jun 30: no purchase, but z (non_member, bought on a day <= D) is
    # a baseline customer with x = 0: mean_b = 0; no member -> d and relative null
    assert doc["windows"]["30d"] == {
        **EMPTY_WINDOW,
        "lift": lift(baseline_customers=1, per_baseline=0.0),
    }
    w90 = doc["windows"]["90d"]
    assert {k: w90[k] for k in EMPTY_SEG} == seg(1, 0.0, 1, 0, 0.0, 1.0, 0.0)
    assert w90["channels"] == {"unknown": chan(1, 0.0, 1, 0.0)}
    assert w90["segments"]["non_member"] == seg(1, 0.0, 1, 0, 0.0, 1.0, 0.0)
    # churn 1 -> annual 1 - 0^(365/30) = 1 -> 1 year; aov 0 -> CLV 0 (not null)
    assert doc["clv"] == {
        "window_days": 365,
        "annual_churn_rate": 1.0,
        "expected_lifetime_years": 1.0,
        "value": 0.0,
        "history_complete": False,  # D - P - T + 1 = May 1 < F = May 10
    }


# ------------------------------------------------------------------ §3.3


def _clv_events() -> list[Event]:
    # P = 73 (365 / 73 = 5, exact): D-P = Apr 18; S <=> last purchase in
    # (Jan 19, Apr 18]; E <=> after Apr 1.
    assert date(2024, 6, 30) - timedelta(days=73) == date(2024, 4, 18)
    assert date(2024, 4, 18) - timedelta(days=90) == date(2024, 1, 19)
    return [
        buy("Q", "2024-04-10", 3000),  # S, E
        buy("Q", "2024-06-20", 1000),
        buy("R", "2024-03-01", 5000),  # S, churned
    ]


def test_clv_exact_with_margin_and_cap() -> None:
    d = date(2024, 6, 30)
    params = KpiParams(churn_period=73, margin=Fraction(3, 10))
    clv = kpis_as_of(_clv_events(), d, params)["clv"]
    # churn 1/2; annual = 1 - (1/2)^5 = 31/32; years = 32/31;
    # 365d: 3 orders, 9000 cents, 2 customers -> aov x freq = 4500 cents;
    # value = 3/10 x 4500 x 32/31 = 43200/31 cents = 432/31 dollars
    assert clv == {
        "window_days": 365,
        "annual_churn_rate": 31 / 32,
        "expected_lifetime_years": 32 / 31,
        "value": 432 / 31,
        "history_complete": False,  # D - P - T + 1 = Jan 20 < F = Mar 1 (R)
    }
    capped = kpis_as_of(_clv_events(), d, KpiParams(churn_period=73, max_years=1))["clv"]
    # min(32/31, 1) = 1 -> value = 4500 cents x 1 = 45.00
    assert (capped["expected_lifetime_years"], capped["value"]) == (1.0, 45.0)


def test_clv_zero_churn_uses_max_years() -> None:
    # Q alone: in S and E, churn 0 -> annual 0 -> max_years 3; 4000 cents / 1
    events = [e for e in _clv_events() if e.customer_id == "Q"]
    clv = kpis_as_of(events, date(2024, 6, 30), KpiParams(churn_period=73, max_years=3))["clv"]
    assert clv == {
        "window_days": 365,
        "annual_churn_rate": 0.0,
        "expected_lifetime_years": 3.0,
        "value": 120.0,  # 4000 x 3 cents
        "history_complete": False,  # F = Apr 10
    }


def test_clv_value_null_when_year_window_is_empty() -> None:
    d = date(2024, 6, 30)
    params = KpiParams(churn_period=30, inactivity=400, windows=(30,))
    # D-P = May 31; S <=> after 2023-04-27; E <=> after 2023-05-27; the
    # 365d window starts 2023-07-02, so the one purchase is outside it.
    assert date(2024, 5, 31) - timedelta(days=400) == date(2023, 4, 27)
    assert d - timedelta(days=400) == date(2023, 5, 27)
    clv = kpis_as_of([buy("old", "2023-05-01", 999)], d, params)["clv"]
    assert clv == {
        "window_days": 365,
        "annual_churn_rate": 1.0,  # churn 1/1
        "expected_lifetime_years": 1.0,
        "value": None,  # aov and purchase_frequency are null
        "history_complete": False,  # D - P - T + 1 = 2023-04-28 < F = 2023-05-01
    }


# ------------------------------------------------------------------ §3.1 v2 fields


def test_days_to_second_purchase_nearest_rank() -> None:
    # 1d = Mar 31, 30d = Mar 2..Mar 31, 90d = Jan 2..Mar 31
    assert date(2024, 3, 2) - date(2024, 2, 20) == timedelta(days=11)
    assert date(2024, 3, 31) - date(2024, 1, 15) == timedelta(days=76)
    events: list[Event] = [
        buy("tie", "2024-03-10T08:00:00Z", 100),  # two orders on one day:
        buy("tie", "2024-03-10T20:00:00Z", 200),  # second purchase after 0 days
        buy("tie", "2024-03-11", 300),  # a third purchase plays no part
        buy("once", "2024-03-05", 500),  # one purchase: no second purchase
        buy("slow", "2024-02-20", 100),  # first before the 30d window ...
        buy("slow", "2024-03-02", 100),  # ... second on its first day: 11 days
        buy("early", "2024-02-01", 100),
        buy("early", "2024-02-03", 100),  # second on Feb 3: in 90d only, 2 days
        buy("early", "2024-03-20", 100),
        buy("late", "2024-01-15", 100),
        buy("late", "2024-03-31T23:00:00Z", 100),  # on D: 76 days
        buy("rev", "2024-03-25", 100),  # listed out of order: days are sorted,
        buy("rev", "2024-03-20", 100),  # Mar 20 -> Mar 25: 5 days
    ]
    params = KpiParams(windows=(1, 30, 90))
    doc = kpis_as_of(events, date(2024, 3, 31), params)
    w1, w30, w90 = (doc["windows"][k] for k in ("1d", "30d", "90d"))
    assert (w1["second_purchases"], w1["days_to_second_purchase"]) == (
        1,
        {"p25": 76, "median": 76, "p75": 76, "mean": 76.0},  # late alone
    )
    # gaps 0, 5, 11, 76 (tie, rev, slow, late): positions ceil(1) = 1, ceil(2) = 2,
    # ceil(3) = 3; mean 92 / 4
    assert (w30["second_purchases"], w30["days_to_second_purchase"]) == (
        4,
        {"p25": 0, "median": 5, "p75": 11, "mean": 23.0},
    )
    # + early: 0, 2, 5, 11, 76: positions ceil(1.25) = 2, ceil(2.5) = 3,
    # ceil(3.75) = 4; mean 94 / 5
    assert (w90["second_purchases"], w90["days_to_second_purchase"]) == (
        5,
        {"p25": 2, "median": 5, "p75": 11, "mean": 18.8},
    )
    assert all(type(w90["days_to_second_purchase"][q]) is int for q in ("p25", "median", "p75"))
    # as of Mar 30 late has one purchase (<= D): none on Mar 30 -> null
    mar30 = kpis_as_of(events, date(2024, 3, 30), params)["windows"]
    assert (mar30["1d"]["second_purchases"], mar30["1d"]["days_to_second_purchase"]) == (0, None)
    assert mar30["30d"]["second_purchases"] == 3  # tie, rev, slow


def test_tiers_as_of_d() -> None:
    events: list[Event] = [
        enroll("G", "2024-01-01", tier="gold"),
        buy("G", "2024-03-10", 1000),
        buy("G", "2024-03-11", 500),
        enroll("G", "2024-04-01T00:00:00Z", tier="platinum"),  # after D: no effect
        # tier change: silver until Mar 15, then gold
        enroll("S", "2024-01-01", tier="silver"),
        enroll("S", "2024-03-15", tier="gold"),
        buy("S", "2024-03-05", 2000),  # bought while silver: counts as gold as of D
        # a control enrollment removes the tier (even one carrying a tier)
        enroll("X", "2024-01-01", tier="gold"),
        enroll("X", "2024-02-01", "control", tier="gold"),
        buy("X", "2024-03-12", 700),
        # a later member enrollment without a tier: no tier (no carry-over)
        enroll("N", "2024-01-01", tier="silver"),
        enroll("N", "2024-02-01"),
        buy("N", "2024-03-13", 300),
        enroll("E", "2024-01-01", tier=""),  # empty tier: none
        buy("E", "2024-03-14", 400),
        enroll("Q", "2024-01-01", tier="silver"),  # silver, no purchase in 30d
        buy("Q", "2024-01-20", 900),
    ]
    params = KpiParams(windows=(30,))
    doc = kpis_as_of(events, date(2024, 3, 31), params)  # 30d = Mar 2..Mar 31
    # gold: G 1000 + 500, S 2000 = 3500 cents, 3 orders, 2 customers
    assert doc["windows"]["30d"]["tiers"] == {"gold": chan(3, 35.0, 2, 35 / 3)}
    program = doc["program"]
    assert (program["members_total"], program["control_total"]) == (5, 1)  # G S N E Q; X
    assert program["members_by_tier"] == {"gold": 2, "silver": 1}  # G, S; Q
    # As of Mar 14 (30d = Feb 14..Mar 14) S is still silver.
    mar14 = kpis_as_of(events, date(2024, 3, 14), params)
    assert mar14["windows"]["30d"]["tiers"] == {
        "gold": chan(2, 15.0, 1, 7.5),  # G 1000 + 500
        "silver": chan(1, 20.0, 1, 20.0),  # S 2000
    }
    assert mar14["program"]["members_by_tier"] == {"gold": 1, "silver": 2}  # G; S, Q
    # As of Jan 31 (30d = Jan 2..Jan 31): X still gold, N silver.
    jan31 = kpis_as_of(events, date(2024, 1, 31), params)
    assert jan31["windows"]["30d"]["tiers"] == {"silver": chan(1, 9.0, 1, 9.0)}  # Q
    assert jan31["program"]["members_by_tier"] == {"gold": 2, "silver": 3}  # G X; S N Q


def test_stores_leave_out_missing_and_empty_store_ids() -> None:
    events: list[Event] = [
        buy("a", "2024-03-10", 1000, store="s1"),
        buy("b", "2024-03-11", 500, store="s1"),
        buy("a", "2024-03-12", 250, store="s2"),
        buy("c", "2024-03-13", 700, store=""),  # empty: left out
        buy("c", "2024-03-14", 300),  # absent: left out
        buy("d", "2024-02-01", 900, store="s3"),  # outside 30d: no s3 entry
    ]
    w30 = kpis_as_of(events, date(2024, 3, 31), KpiParams(windows=(30,)))["windows"]["30d"]
    assert w30["orders"] == 5  # the store-less orders still count everywhere else
    assert w30["stores"] == {
        "s1": chan(2, 15.0, 2, 7.5),  # a 1000 + b 500
        "s2": chan(1, 2.5, 1, 2.5),  # a 250
    }


# ------------------------------------------------------------------ §2 F, §3.2 flag


def test_history_complete_from_the_first_day_exactly() -> None:
    # P = 30, T = 90: complete when D - 119 >= F.  F = Jan 1: the earliest
    # business day of ANY event (here an enrollment, not a purchase).
    assert date(2024, 1, 1) + timedelta(days=119) == date(2024, 4, 29)
    events: list[Event] = [
        enroll("a", "2024-01-01T03:00:00Z"),  # NY: Dec 31, 22:00
        buy("b", "2024-01-05", 100),
        redeem("b", "2024-01-03", 10),
        buy("c", "2024-06-01", 100),  # after D: does not move F
    ]
    params = KpiParams(windows=(30,))
    assert first_day(events, params) == date(2024, 1, 1)

    def complete(day: date, p: KpiParams) -> tuple[bool, bool]:
        doc = kpis_as_of(events, day, p)
        return doc["churn"]["history_complete"], doc["clv"]["history_complete"]

    assert complete(date(2024, 4, 29), params) == (True, True)  # D - P - T + 1 = F
    assert complete(date(2024, 4, 28), params) == (False, False)  # one day earlier
    assert complete(date(2024, 12, 31), params) == (True, True)
    # in New York F is Dec 31, one day earlier
    ny = KpiParams(windows=(30,), reporting_tz=NY)
    assert complete(date(2024, 4, 28), ny) == (True, True)
    assert complete(date(2024, 4, 27), ny) == (False, False)
    # with P = 1, T = 2: D - 2 >= Jan 1 from Jan 3 on
    short = KpiParams(windows=(30,), churn_period=1, inactivity=2)
    assert complete(date(2024, 1, 3), short) == (True, True)
    assert complete(date(2024, 1, 2), short) == (False, False)


# ------------------------------------------------------------------ §3.7


def test_cohort_rows_across_a_month_change() -> None:
    d = date(2024, 3, 5)
    params = KpiParams(windows=(30,), cohort_months=3)  # rows 2024-01, 2024-02, 2024-03
    events: list[Event] = [
        buy("x", "2024-01-31T23:00:00Z", 1000),  # cohort 2024-01 ...
        buy("x", "2024-02-01T01:00:00Z", 500),  # ... active again in 2024-02
        buy("y", "2024-02-01", 2000),  # cohort 2024-02
        buy("y", "2024-02-20", 100),
        buy("z", "2023-12-15", 50),  # cohort 2023-12: older than the rows
        buy("z", "2024-03-01", 70),  # counts in z's own cohort only
        buy("w", "2024-03-05", 300),  # cohort 2024-03
        buy("w", "2024-03-06", 999),  # after D
        buy("x", "2024-03-06", 999),  # after D
    ]
    assert kpis_as_of(events, d, params)["cohorts"] == {
        "months": 3,
        "rows": [
            {
                "cohort": "2024-01",
                "size": 1,  # x
                "active": [1, 1, 0],  # Jan, Feb, Mar up to Mar 5
                "revenue": [10.0, 5.0, 0.0],
                "retention": [1.0, 1.0, 0.0],
            },
            {
                "cohort": "2024-02",
                "size": 1,  # y
                "active": [1, 0],
                "revenue": [21.0, 0.0],  # 2000 + 100
                "retention": [1.0, 0.0],
            },
            {"cohort": "2024-03", "size": 1, "active": [1], "revenue": [3.0], "retention": [1.0]},
        ],
    }
    # In New York both of x's first orders fall on Jan 31 (18:00 and 20:00).
    ny = KpiParams(windows=(30,), cohort_months=3, reporting_tz=NY)
    january = kpis_as_of(events, d, ny)["cohorts"]["rows"][0]
    assert (january["active"], january["revenue"]) == ([1, 0, 0], [15.0, 0.0, 0.0])
    # As of Jan 10: rows 2023-11 .. 2024-01; x's first purchase is after D.
    assert kpis_as_of(events, date(2024, 1, 10), params)["cohorts"]["rows"] == [
        empty_row("2023-11", 3),
        {  # z: Dec 50, nothing in Jan up to Jan 10
            "cohort": "2023-12",
            "size": 1,
            "active": [1, 0],
            "revenue": [0.5, 0.0],
            "retention": [1.0, 0.0],
        },
        empty_row("2024-01", 1),
    ]


# ------------------------------------------------------------------ §3.4


def _program_events() -> list[Event]:
    # W_max = 90: Apr 2..Jun 30.  Members M1, M2; control C1, C2; N1 non_member.
    return [
        enroll("M1", "2024-01-01", tier="gold"),
        buy("M1", "2024-05-01", 10000, points=700),
        enroll("M2", "2024-01-01"),
        buy("M2", "2024-05-02", 2000),
        buy("M2", "2024-06-01", 3000),
        enroll("C1", "2024-01-01", "control"),
        buy("C1", "2024-05-03", 3000),
        enroll("C2", "2024-01-01", "control"),
        buy("C2", "2024-05-04", 1000),
        buy("C2", "2024-01-15", 4000),  # before W_max: not in x
        buy("N1", "2024-05-04", 1000),
        redeem("M1", "2024-06-10", 500, value=2000),
        redeem("M2", "2024-03-01", 100),  # before W_max: no cost
    ]


FIXED = Decimal("1.50")  # dollars per day
MARGIN = Fraction(3, 10)


def _program(events: Sequence[Event], fixed: Decimal = FIXED) -> dict[str, Any]:
    params = KpiParams(windows=(30, 90), margin=MARGIN, program_fixed_cost_per_day=fixed)
    doc = kpis_as_of(events, date(2024, 6, 30), params)
    return {"lift": doc["windows"]["90d"]["lift"], **doc["program"]}


def test_program_economics_with_fixed_cost_and_interval() -> None:
    assert date(2024, 6, 30) - timedelta(days=89) == date(2024, 4, 2)
    got = _program(_program_events())
    # x_m = 10000, 5000: mean 7500, s² = 2 x 2500² = 12 500 000, s²/n = 6 250 000
    # x_b = 3000, 1000 (control has 2): mean 2000, s² = 2 x 1000², s²/n = 1 000 000
    # d = 5500 cents; se² = 7 250 000 = (500 √29)²; se = 5 √29 dollars;
    # ν = 7.25² / (6.25² + 1²) = 52.5625 / 40.0625 = 841 / 641
    t = stats.t.ppf(0.975, 841 / 641)
    half = t * 5 * math.sqrt(29)  # dollars
    p_value = 2 * stats.t.sf(11 / math.sqrt(29), 841 / 641)  # |d| / se = 5500 / (500 √29)
    approx = pytest.approx
    assert got["lift"] == lift(
        "control",
        members=2,
        baseline_customers=2,
        per_member=75.0,
        per_baseline=20.0,
        difference=55.0,
        ci=(approx(55 - half, rel=1e-12), approx(55 + half, rel=1e-12)),
        p_value=approx(p_value, rel=1e-12),
        relative=2.75,  # 5500 / 2000
    )
    # cost: 2000 cents (M1 Jun 10) + 1.50 x 90 = 135.00 -> 155.00 dollars
    # incremental = 5500 x 2 = 11000 cents; margin 3/10 -> 3300 cents
    low, high = 2 * (55 - half), 2 * (55 + half)
    assert got == {
        "lift": got["lift"],
        "members_total": 2,
        "control_total": 2,
        "members_by_tier": {"gold": 1},
        "outstanding_points": 100,  # 700 - 500 - 100
        "outstanding_points_value": 1.0,
        "program_cost": 155.0,
        "incremental_revenue": 110.0,
        "incremental_revenue_ci": [approx(low, rel=1e-12), approx(high, rel=1e-12)],
        "incremental_margin": 33.0,
        "roi": -122 / 155,  # (33 - 155) / 155
        "roi_ci": [
            approx((0.3 * low - 155) / 155, rel=1e-12),
            approx((0.3 * high - 155) / 155, rel=1e-12),
        ],
    }


def test_program_roi_null_with_zero_cost() -> None:
    no_cost = [e for e in _program_events() if not isinstance(e, Redemption)]
    got = _program(no_cost, fixed=Decimal(0))
    assert got["program_cost"] == 0.0
    assert (got["incremental_revenue"], got["incremental_margin"]) == (110.0, 33.0)
    assert None not in got["incremental_revenue_ci"]
    assert (got["roi"], got["roi_ci"]) == (None, [None, None])  # cost 0
    # the fixed cost alone: 1.50 x 90 = 135.00; roi = (33 - 135) / 135
    fixed_only = _program(no_cost)
    assert (fixed_only["program_cost"], fixed_only["roi"]) == (135.0, -102 / 135)


def test_program_baseline_falls_back_to_non_member_with_one_control() -> None:
    events = [e for e in _program_events() if e.customer_id != "C2"]
    got = _program(events)
    # control = C1 alone -> baseline non_member = N1 (1000): d = 7500 - 1000;
    # one baseline customer: no interval
    assert got["lift"] == lift("non_member", 2, 1, 75.0, 10.0, 65.0, relative=6.5)
    assert got["control_total"] == 1
    assert got["incremental_revenue"] == 130.0  # 6500 x 2 cents
    assert got["incremental_revenue_ci"] == [None, None]
    assert got["incremental_margin"] == 39.0  # 3/10 x 13000 cents
    assert got["roi"] == -116 / 155  # (3900 - 15500) / 15500
    assert got["roi_ci"] == [None, None]


def test_program_counts_members_who_bought_nothing() -> None:
    # intention to treat: members with no purchase count with x = 0
    events = [
        e
        for e in _program_events()
        if not (isinstance(e, Purchase) and e.customer_id in ("M1", "M2"))
    ]
    got = _program(events)
    # x_m = 0, 0; x_b = 3000, 1000: d = -2000; se² = 0 + 1 000 000 -> se = 10 dollars;
    # ν = 1e12² / (0 + (1e6)² / 1) = 1
    t = stats.t.ppf(0.975, 1)
    assert got["lift"]["difference"] == -20.0
    assert got["lift"]["ci_low"] == pytest.approx(-20 - 10 * t, rel=1e-12)
    assert got["lift"]["ci_high"] == pytest.approx(-20 + 10 * t, rel=1e-12)
    assert got["lift"]["p_value"] == pytest.approx(2 * stats.t.sf(2, 1), rel=1e-12)
    assert got["lift"]["relative_lift"] == -1.0
    assert got["incremental_revenue"] == -40.0  # -2000 x 2 cents
    assert got["roi"] == -167 / 155  # (3/10 x -4000 - 15500) / 15500


def test_program_nulls_without_members() -> None:
    events = [e for e in _program_events() if e.customer_id not in ("M1", "M2")]
    got = _program(events)
    assert got["lift"] == lift("control", 0, 2, None, 20.0)  # mean_m null -> d null
    assert got["program_cost"] == 135.0  # the fixed cost only
    assert got["members_by_tier"] == {}
    for key in ("incremental_revenue", "incremental_margin", "roi"):
        assert got[key] is None
    assert got["incremental_revenue_ci"] == got["roi_ci"] == [None, None]


def test_redemptions_with_and_without_reward_value() -> None:
    events: list[Event] = [
        buy("c1", "2024-01-10", 100, points=2000),
        redeem("c1", "2024-06-05", 500, value=250),  # cost 250 cents
        redeem("c1", "2024-06-06", 300),  # cost 300 x point_value
        redeem("c2", "2024-05-01", 100, value=0),  # reward_value 0 is present: 0
        redeem("c2", "2023-06-01", 1000),  # before the 365d window: no cost
        redeem("c2", "2024-07-01", 7),  # after D: ignored everywhere
    ]
    d = date(2024, 6, 30)
    doc = kpis_as_of(events, d, KpiParams(windows=(30, 365)))
    w30, w365 = doc["windows"]["30d"], doc["windows"]["365d"]
    assert (w30["points_issued"], w30["points_redeemed"]) == (0, 800)  # 500 + 300
    assert (w30["redemption_rate"], w30["redeeming_customers"]) == (None, 1)
    assert (w365["points_issued"], w365["points_redeemed"]) == (2000, 900)
    assert (w365["redemption_rate"], w365["redeeming_customers"]) == (0.45, 2)
    assert doc["program"]["outstanding_points"] == 100  # 2000 - 500 - 300 - 100 - 1000
    assert doc["program"]["outstanding_points_value"] == 1.0  # 100 x 1 cent
    # W_max = 365: 250 + 300 x 1 + 0
    assert doc["program"]["program_cost"] == 5.50
    # W_max = 30 (Jun 1..Jun 30): 250 + 300 x 0.5 = 400 cents
    half = KpiParams(windows=(30,), point_value_minor=Decimal("0.5"))
    assert kpis_as_of(events, d, half)["program"]["program_cost"] == 4.0
    assert kpis_as_of(events, d, half)["program"]["outstanding_points_value"] == 0.5
    # 300 x 0.125 = 37.5 cents, kept exact: 287.5 cents
    eighth = KpiParams(windows=(30,), point_value_minor=Fraction(1, 8))
    assert kpis_as_of(events, d, eighth)["program"]["program_cost"] == 2.875
    # W_max = 30 at 1 cent a point: 250 + 300 = 5.50, + 0.25 dollars a day x 30 = 7.50
    fixed = KpiParams(windows=(30,), program_fixed_cost_per_day=Fraction(1, 4))
    assert kpis_as_of(events, d, fixed)["program"]["program_cost"] == 13.0


# ------------------------------------------------------------------ invariants

BASE = date(2024, 1, 1)
DAY_MS = 86_400_000
BASE_MS = at("2024-01-01T00:00:00Z")


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    for i in range(draw(st.integers(0, 40))):
        customer = draw(st.sampled_from("abcdef"))
        # coarse times: ties on occurred_ms happen; event_id order is random
        hour = draw(st.sampled_from([0, 3, 12, 23]))
        ms = BASE_MS + draw(st.integers(0, 60)) * DAY_MS + hour * 3_600_000
        eid = f"{draw(st.integers(0, 99)):02d}-{i}"
        kind = draw(st.sampled_from(["purchase", "enrollment", "redemption"]))
        if kind == "purchase":
            amount = draw(st.one_of(st.just(0), st.integers(0, 10**6)))
            channel = draw(st.sampled_from(["pos", "web", "unknown"]))
            store = draw(st.sampled_from([None, "", "s1", "s2"]))
            points = draw(st.integers(0, 300))
            events.append(
                Purchase(eid, customer, ms, amount, eid, channel, store, points_earned=points)
            )
        elif kind == "enrollment":
            cohort = draw(st.sampled_from(["member", "control"]))
            tier = draw(st.sampled_from([None, "", "gold", "silver"]))
            events.append(Enrollment(eid, customer, ms, cohort, tier))
        else:
            value = draw(st.one_of(st.none(), st.integers(0, 10**4)))
            events.append(Redemption(eid, customer, ms, draw(st.integers(1, 300)), value))
    return events


@st.composite
def params(draw: st.DrawFn) -> KpiParams:
    p = draw(st.integers(1, 10))
    return KpiParams(
        windows=(1, 7, 30, 1000),
        churn_period=p,
        inactivity=draw(st.integers(p + 1, 30)),
        reporting_tz=draw(st.sampled_from(["UTC", NY, "Asia/Kolkata"])),
        program_fixed_cost_per_day=draw(st.sampled_from([Fraction(0), Decimal("0.25")])),
        cohort_months=draw(st.integers(1, 4)),
    )


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def _check_brief(entries: dict[str, Any], w: dict[str, Any]) -> None:
    """`channels` / `tiers` / `stores`: only names with >= 1 purchase, within the window."""
    assert all(e["orders"] >= 1 for e in entries.values())
    assert sum(e["orders"] for e in entries.values()) <= w["orders"]
    assert (
        max((e["active_customers"] for e in entries.values()), default=0) <= w["active_customers"]
    )


def _check_lift(lift: dict[str, Any], prog: dict[str, Any]) -> None:
    assert lift["members"] == prog["members_total"]
    # "control when it has at least 2 customers, else non_member"
    assert lift["baseline"] == ("control" if prog["control_total"] >= 2 else "non_member")
    if lift["baseline"] == "control":
        assert lift["baseline_customers"] == prog["control_total"]
    assert (lift["revenue_per_member"] is None) == (lift["members"] == 0)
    assert (lift["revenue_per_baseline"] is None) == (lift["baseline_customers"] == 0)
    both = lift["members"] >= 2 and lift["baseline_customers"] >= 2
    assert (lift["ci_low"] is None) == (lift["ci_high"] is None) == (not both)
    if both:
        assert lift["ci_low"] <= lift["difference"] <= lift["ci_high"]
        if lift["p_value"] is None:  # se = 0
            assert lift["ci_low"] == lift["ci_high"] == lift["difference"]
        else:
            assert 0 <= lift["p_value"] <= 1
    else:
        assert lift["p_value"] is None


def _check_window(w: dict[str, Any]) -> None:
    assert w["repeat_customers"] <= w["active_customers"] <= w["orders"]
    assert w["active_members"] <= w["active_customers"]
    assert (w["aov"] is None) == (w["orders"] == 0)
    assert (w["enrollment_rate"] is None) == (w["active_customers"] == 0)
    assert (w["redemption_rate"] is None) == (w["points_issued"] == 0)
    segs = w["segments"].values()
    for key in ("orders", "active_customers", "repeat_customers"):
        assert sum(s[key] for s in segs) == w[key]  # segments partition customers
    assert _close(sum(s["revenue"] for s in segs), w["revenue"])
    assert w["segments"]["member"]["active_customers"] == w["active_members"]
    chans = w["channels"].values()
    assert sum(c["orders"] for c in chans) == w["orders"]
    assert _close(sum(c["revenue"] for c in chans), w["revenue"])
    assert w["active_customers"] <= sum(c["active_customers"] for c in chans)
    for key in ("channels", "tiers", "stores"):
        _check_brief(w[key], w)
    assert "" not in w["stores"] and "" not in w["tiers"]
    # a tiered customer is a member (§3.1)
    assert sum(t["orders"] for t in w["tiers"].values()) <= w["segments"]["member"]["orders"]
    # a customer whose second purchase is in the window is active in it
    assert w["second_purchases"] <= w["active_customers"]
    gaps = w["days_to_second_purchase"]
    assert (gaps is None) == (w["second_purchases"] == 0)
    if gaps is not None:
        assert 0 <= gaps["p25"] <= gaps["median"] <= gaps["p75"]


@settings(max_examples=150, deadline=None)
@given(streams(), params(), st.integers(0, 70))
def test_invariants(events: list[Event], p: KpiParams, offset: int) -> None:
    d = BASE + timedelta(days=offset)
    doc = kpis_as_of(events, d, p)
    windows = [doc["windows"][f"{w}d"] for w in p.windows]
    prog = doc["program"]
    for w in windows:
        _check_window(w)
        _check_lift(w["lift"], prog)
    for small, large in itertools.pairwise(windows):
        for key in ("orders", "active_customers", "points_issued", "new_enrollments"):
            assert small[key] <= large[key]
        assert small["second_purchases"] <= large["second_purchases"]
    c = doc["churn"]
    s, e, churned, n = c["customers_at_start"], c["active_at_end"], c["churned"], c["new_customers"]
    assert churned <= s and n <= e
    assert s - churned <= e - n  # S and E minus the churned are not new
    if s:
        assert 0 <= c["churn_rate"] <= 1
        assert c["retention_rate"] >= 1 - c["churn_rate"] - 1e-12
    assert c["value_churned"] <= c["value_at_start"]
    prev = kpis_as_of(events, d - timedelta(days=1), p)["churn"]
    assert c["churned_on_day"] <= prev["active_at_end"]
    assert e >= prev["active_at_end"] - c["churned_on_day"]
    # history_complete never goes back to false
    assert c["history_complete"] >= prev["history_complete"]
    assert doc["clv"]["history_complete"] == c["history_complete"]
    clv = doc["clv"]
    if clv["annual_churn_rate"] is not None:
        assert 0 <= clv["annual_churn_rate"] <= 1
        assert 1 <= clv["expected_lifetime_years"] <= p.max_years
    enrolled = {
        x.customer_id
        for x in events
        if isinstance(x, Enrollment) and business_day(x.occurred_ms, p.reporting_tz) <= d
    }
    assert prog["members_total"] + prog["control_total"] == len(enrolled)
    assert sum(prog["members_by_tier"].values()) <= prog["members_total"]
    assert all(n >= 1 for n in prog["members_by_tier"].values())
    everything = doc["windows"]["1000d"]  # holds every event up to D
    assert prog["outstanding_points"] == everything["points_issued"] - everything["points_redeemed"]
    assert _close(prog["outstanding_points_value"], prog["outstanding_points"] / 100)
    assert prog["program_cost"] >= float(p.program_fixed_cost_per_day) * 1000
    assert all(w["active_members"] <= prog["members_total"] for w in windows)
    assert (prog["roi"] is None) == (
        prog["program_cost"] == 0 or prog["incremental_revenue"] is None
    )
    assert len(prog["incremental_revenue_ci"]) == len(prog["roi_ci"]) == 2
    rows = doc["cohorts"]["rows"]
    assert doc["cohorts"]["months"] == len(rows) == p.cohort_months
    assert rows[-1]["cohort"] == d.strftime("%Y-%m")
    for row in rows:
        assert row["active"][0] == row["size"]
        assert all(a <= row["size"] for a in row["active"])
        assert len(row["active"]) == len(row["revenue"]) == len(row["retention"])
    assert len(rows[-1]["active"]) == 1
    # order of the events and events after D do not matter
    assert kpis_as_of(events[::-1], d, p) == doc
    kept = [x for x in events if business_day(x.occurred_ms, p.reporting_tz) <= d]
    assert kpis_as_of(kept, d, p) == doc
