"""Hand-computed worked examples that pin the brute-force KPI reference.

Every expected number below is worked out by hand in the comment next to it
(money in cents -> dollars in the JSON).  Floats are compared exactly where the
reference converts an exact Fraction: `a / b` on ints is correctly rounded in
CPython, just like `float(Fraction(a, b))`.  Date arithmetic used in a comment
is asserted once with `timedelta` so that the hand work itself is checked.
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

from stream_app.contract import Enrollment, Event, Purchase, Redemption
from tests.kpi_reference import SEGMENTS, KpiParams, business_day, kpis_as_of

_ids = itertools.count()
NY = "America/New_York"


def at(stamp: str) -> int:
    """Epoch ms of an RFC 3339 stamp; a bare date means 12:00Z on that day."""
    if len(stamp) == 10:
        stamp += "T12:00:00Z"
    return int(datetime.fromisoformat(stamp).timestamp()) * 1000


def buy(
    customer: str, when: str, cents: int, channel: str = "unknown", points: int = 0
) -> Purchase:
    eid = f"p{next(_ids)}"
    return Purchase(eid, customer, at(when), cents, eid, channel=channel, points_earned=points)


def enroll(customer: str, when: str, cohort: str = "member", eid: str | None = None) -> Enrollment:
    return Enrollment(eid or f"e{next(_ids)}", customer, at(when), cohort=cohort)


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
    return {"orders": orders, "revenue": revenue, "active_customers": active, "aov": aov}


EMPTY_SEG = seg(0, 0.0, 0, 0, None, None, None)
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


# ------------------------------------------------------------------ empty


def test_empty_stream_is_the_spec_shape_with_nulls() -> None:
    doc = kpis_as_of([buy("late", "1998-07-01T00:00:00Z", 500)], date(1998, 6, 30), KpiParams())
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
        },
        "clv": {
            "window_days": 365,
            "annual_churn_rate": None,
            "expected_lifetime_years": None,
            "value": None,
        },
        "program": {
            "members_total": 0,
            "control_total": 0,
            "outstanding_points": 0,
            "program_cost": 0.0,
            "incremental_revenue": None,
            "roi": None,
        },
    }


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
    events: list[Event] = [
        enroll("A", "2024-01-05"),
        buy("A", "2024-03-01T23:59:59Z", 2000, "pos", 200),  # in 90d, not 30d
        buy("A", "2024-03-02T00:00:00Z", 1000, "pos", 100),  # first second of 30d
        buy("A", "2024-03-31T23:59:59Z", 550, "web", 50),  # last second of D
        redeem("A", "2024-03-05", 120, value=100),
        buy("B", "2024-01-01T23:59:59Z", 10000, "pos"),  # in 365d only
        buy("B", "2024-03-15", 725, "web"),
        enroll("B", "2024-04-01T00:00:00Z"),  # after D: B stays non_member
        enroll("C", "2024-02-01", "control"),
        buy("C", "2024-03-20", 0, "app"),  # zero-value order counts
        buy("C", "2024-03-21", 300, "app"),
        enroll("D", "2024-03-10"),
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
        },
        # 365d: 7 orders, 14575 cents, 3 customers; aov x freq = 14575 / 3 cents;
        # churn 0 -> annual 0 -> max_years 10 -> 145750 / 3 cents = 2915 / 6 dollars
        "clv": {
            "window_days": 365,
            "annual_churn_rate": 0.0,
            "expected_lifetime_years": 10.0,
            "value": 2915 / 6,
        },
        "program": {
            "members_total": 2,  # A, D
            "control_total": 1,  # C
            "outstanding_points": 190,  # 350 - 160
            "program_cost": 1.40,  # 100 + 40 x 1 cent
            # 365d: rpc(member) = 3550 / 1, rpc(control) = 300 / 1 (control active)
            # (3550 - 300) x 1 = 3250 cents
            "incremental_revenue": 32.50,
            "roi": 311 / 14,  # (3250 - 140) / 140
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
    assert doc["windows"]["30d"] == EMPTY_WINDOW  # Jun 1..Jun 30
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
    }


# ------------------------------------------------------------------ §3.4


def _program_events(control_day: str = "2024-05-03") -> list[Event]:
    return [
        enroll("M1", "2024-01-01"),
        buy("M1", "2024-05-01", 10000),
        enroll("M2", "2024-01-01"),
        buy("M2", "2024-05-02", 2000),
        buy("M2", "2024-06-01", 3000),
        enroll("C1", "2024-01-01", "control"),
        buy("C1", control_day, 3000),
        buy("N1", "2024-05-04", 1000),
        redeem("M1", "2024-06-10", 500, value=2000),
    ]


def _program(events: Sequence[Event]) -> dict[str, Any]:
    doc = kpis_as_of(events, date(2024, 6, 30), KpiParams(windows=(30,)))
    program: dict[str, Any] = doc["program"]
    return program


def test_program_roi_against_control_baseline() -> None:
    # rpc(member) = 15000 / 2 = 7500; rpc(control) = 3000 / 1
    # incremental = (7500 - 3000) x 2 = 9000 cents; roi = (9000 - 2000) / 2000
    assert _program(_program_events()) == {
        "members_total": 2,
        "control_total": 1,
        "outstanding_points": -500,  # nothing issued, 500 redeemed
        "program_cost": 20.0,
        "incremental_revenue": 90.0,
        "roi": 3.5,
    }


def test_program_roi_falls_back_to_non_member_baseline() -> None:
    # C1's only purchase is before the 365d window (starts 2023-07-02): control
    # has no active customer -> baseline non_member: rpc = 1000 / 1.
    # incremental = (7500 - 1000) x 2 = 13000 cents; roi = (13000 - 2000) / 2000
    program = _program(_program_events(control_day="2023-06-01"))
    assert program["control_total"] == 1
    assert (program["incremental_revenue"], program["roi"]) == (130.0, 5.5)
    # ... and with no non_member purchase either, rpc(baseline) is null.
    events = [e for e in _program_events("2023-06-01") if e.customer_id != "N1"]
    assert (_program(events)["incremental_revenue"], _program(events)["roi"]) == (None, None)


def test_program_nulls() -> None:
    no_cost = [e for e in _program_events() if not isinstance(e, Redemption)]
    assert _program(no_cost)["program_cost"] == 0.0
    assert _program(no_cost)["incremental_revenue"] == 90.0
    assert _program(no_cost)["roi"] is None  # cost 0
    no_member_sales = [
        e
        for e in _program_events()
        if not (isinstance(e, Purchase) and e.customer_id in ("M1", "M2"))
    ]
    # rpc(member) = null (0 active members) -> incremental and roi null
    assert _program(no_member_sales)["incremental_revenue"] is None
    assert _program(no_member_sales)["roi"] is None
    assert _program(no_member_sales)["members_total"] == 2


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
    assert doc["program"]["program_cost"] == 5.50  # 250 + 300 x 1 + 0
    half = KpiParams(windows=(30,), point_value_minor=Decimal("0.5"))
    assert kpis_as_of(events, d, half)["program"]["program_cost"] == 4.0  # 250 + 150
    # 300 x 0.125 = 37.5 cents, kept exact: 287.5 cents
    eighth = KpiParams(windows=(30,), point_value_minor=Fraction(1, 8))
    assert kpis_as_of(events, d, eighth)["program"]["program_cost"] == 2.875


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
            points = draw(st.integers(0, 300))
            events.append(Purchase(eid, customer, ms, amount, eid, channel, points_earned=points))
        elif kind == "enrollment":
            events.append(
                Enrollment(eid, customer, ms, draw(st.sampled_from(["member", "control"])))
            )
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
    )


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


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
    assert all(c["orders"] >= 1 for c in chans)
    assert sum(c["orders"] for c in chans) == w["orders"]
    assert _close(sum(c["revenue"] for c in chans), w["revenue"])
    assert max((c["active_customers"] for c in chans), default=0) <= w["active_customers"]
    assert w["active_customers"] <= sum(c["active_customers"] for c in chans)


@settings(max_examples=150, deadline=None)
@given(streams(), params(), st.integers(0, 70))
def test_invariants(events: list[Event], p: KpiParams, offset: int) -> None:
    d = BASE + timedelta(days=offset)
    doc = kpis_as_of(events, d, p)
    windows = [doc["windows"][f"{w}d"] for w in p.windows]
    for w in windows:
        _check_window(w)
    for small, large in itertools.pairwise(windows):
        for key in ("orders", "active_customers", "points_issued", "new_enrollments"):
            assert small[key] <= large[key]
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
    clv = doc["clv"]
    if clv["annual_churn_rate"] is not None:
        assert 0 <= clv["annual_churn_rate"] <= 1
        assert 1 <= clv["expected_lifetime_years"] <= p.max_years
    prog = doc["program"]
    enrolled = {
        x.customer_id
        for x in events
        if isinstance(x, Enrollment) and business_day(x.occurred_ms, p.reporting_tz) <= d
    }
    assert prog["members_total"] + prog["control_total"] == len(enrolled)
    everything = doc["windows"]["1000d"]  # holds every event up to D
    assert prog["outstanding_points"] == everything["points_issued"] - everything["points_redeemed"]
    assert all(w["active_members"] <= prog["members_total"] for w in windows)
    # order of the events and events after D do not matter
    assert kpis_as_of(events[::-1], d, p) == doc
    kept = [x for x in events if business_day(x.occurred_ms, p.reporting_tz) <= d]
    assert kpis_as_of(kept, d, p) == doc
