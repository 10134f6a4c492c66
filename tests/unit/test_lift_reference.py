"""The reference's §3.6 lift is Welch's t-test, as scipy computes it.

KPI_SPEC §3.6: every customer of a group counts with x_i = their revenue in
the window (0 when none); d = mean_m − mean_b, Welch–Satterthwaite ν, the
interval d ∓ t·se and the two-sided p-value.  That is exactly
`scipy.stats.ttest_ind(x_m, x_b, equal_var=False)` -- its statistic, p-value
and `confidence_interval(confidence_level=c)` -- on the per-customer revenue
vectors.  The vectors are built here straight from the drawn purchases (not
through the reference), in cents; the JSON is in dollars.  The null rules of
§3.6 (empty groups, groups of one, se = 0, a zero baseline mean) are where the
spec departs from scipy (which answers nan / inf there): checked separately.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from stream_app.contract import Enrollment, Event, Purchase, Redemption
from tests.kpi_reference import KpiParams, kpis_as_of, lift_as_of

D = date(2024, 6, 30)
W = 30  # the window: Jun 1 .. Jun 30
DAY_MS = 86_400_000
D_NOON_MS = (D - date(1970, 1, 1)).days * DAY_MS + DAY_MS // 2
assert D - timedelta(days=W - 1) == date(2024, 6, 1)


def ms(offset: int) -> int:
    """Noon UTC, `offset` days from D (0 = D, -29 = the window's first day)."""
    return D_NOON_MS + offset * DAY_MS


def in_window(offset: int) -> bool:
    return -W < offset <= 0


# ------------------------------------------------------------------ the drawn stream


@dataclass
class Customer:
    group: str  # the cohort of the latest enrollment, or "non_member"
    purchases: list[tuple[int, int]]  # (day offset from D, cents)
    switched: bool = False  # an earlier enrollment in the other cohort
    enrolls_after_d: bool = False  # a non_member whose enrollment is after D

    def x(self) -> int:
        """§3.6 "x_i = their revenue in W (0 when none)", in cents."""
        return sum(cents for day, cents in self.purchases if in_window(day))

    def bought_by_d(self) -> bool:
        return any(day <= 0 for day, _ in self.purchases)


@dataclass
class Stream:
    customers: list[Customer] = field(default_factory=list)

    def vector(self, group: str) -> list[int]:
        """§3.6 groups as of D; non_member needs a purchase on a day <= D."""
        return [
            c.x()
            for c in self.customers
            if c.group == group and (group != "non_member" or c.bought_by_d())
        ]

    def baseline(self) -> str:
        # "`control` when it has at least 2 customers, else `non_member`"
        return "control" if len(self.vector("control")) >= 2 else "non_member"

    def events(self) -> list[Event]:
        events: list[Event] = []
        for i, c in enumerate(self.customers):
            cid = f"{c.group}-{i}"
            if c.group != "non_member":
                if c.switched:  # earlier the other cohort: the latest one decides
                    other = "control" if c.group == "member" else "member"
                    events.append(Enrollment(f"e0-{cid}", cid, ms(-200), other))
                events.append(Enrollment(f"e1-{cid}", cid, ms(-100), c.group))
            elif c.enrolls_after_d:
                events.append(Enrollment(f"e1-{cid}", cid, ms(1), "member"))
            for j, (day, cents) in enumerate(c.purchases):
                events.append(Purchase(f"p{j}-{cid}", cid, ms(day), cents, f"o{j}-{cid}"))
        # in no group: a customer who only redeemed, one who only enrolled after D
        events.append(Redemption("r-only", "redeemer", ms(-3), 10))
        events.append(Enrollment("e-late", "late", ms(2), "control"))
        return events


amounts = st.one_of(st.sampled_from([0, 100, 2500]), st.integers(0, 10**6))
# days -60 .. +3: before the window, in it, and after D (ignored)
purchases = st.lists(st.tuples(st.integers(-60, 3), amounts), max_size=4)


@st.composite
def customers(draw: st.DrawFn, group: str, min_size: int, max_size: int) -> list[Customer]:
    return [
        Customer(group, draw(purchases), switched=draw(st.booleans()))
        if group != "non_member"
        else Customer(group, draw(purchases), enrolls_after_d=draw(st.booleans()))
        for _ in range(draw(st.integers(min_size, max_size)))
    ]


@st.composite
def streams(draw: st.DrawFn, min_size: int, max_size: int) -> Stream:
    stream = Stream()
    for group in ("member", "control", "non_member"):
        stream.customers += draw(customers(group, min_size, max_size))
    return stream


confidences = st.sampled_from([Fraction(95, 100), Decimal("0.9"), Decimal("0.99"), Fraction(1, 2)])


# ------------------------------------------------------------------ comparison


def close(got: float | None, want: float, scale: float) -> bool:
    """Within 1e-9 relative, or 1e-9 of `scale` for values near 0."""
    return got is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9 * scale)


def reference_lift(stream: Stream, confidence: Fraction | Decimal) -> dict[str, Any]:
    params = KpiParams(windows=(7, W), lift_confidence=confidence)
    got = lift_as_of(stream.events(), D, W, params)
    assert kpis_as_of(stream.events(), D, params)["windows"][f"{W}d"]["lift"] == got
    return got


def assert_scipy_welch(got: dict[str, Any], m: list[int], b: list[int], c: float) -> None:
    """The reference lift (dollars) against scipy on the cent vectors."""
    with warnings.catch_warnings():
        # scipy warns of "catastrophic cancellation" whenever one group's values
        # are all equal: its variance is then exactly 0, which is right.
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        res = stats.ttest_ind(m, b, equal_var=False)
    ci = res.confidence_interval(confidence_level=c)
    mean_m, mean_b = sum(m) / len(m), sum(b) / len(b)
    se = abs(mean_m - mean_b) / abs(res.statistic) if res.statistic else None
    money = (max(m + b) + 1) / 100  # dollars: the scale of every money figure here
    assert close(got["revenue_per_member"], mean_m / 100, money)
    assert close(got["revenue_per_baseline"], mean_b / 100, money)
    assert close(got["difference"], (mean_m - mean_b) / 100, money)
    width = (ci.high - ci.low) / 100
    assert close(got["ci_low"], ci.low / 100, width + money)
    assert close(got["ci_high"], ci.high / 100, width + money)
    assert close(got["p_value"], float(res.pvalue), 0.0)
    # the statistic d / se, with se recovered from the reference's interval
    t = stats.t.ppf((1 + c) / 2, res.df)
    our_se = (got["ci_high"] - got["ci_low"]) / (2 * t)
    assert close(got["difference"] / our_se, float(res.statistic), 1.0)
    if se is not None:
        assert close(our_se, se / 100, money)


# ------------------------------------------------------------------ properties


@settings(max_examples=300, deadline=None)
@given(streams(min_size=2, max_size=8), confidences)
def test_lift_is_scipy_welch_t_test(stream: Stream, confidence: Fraction | Decimal) -> None:
    baseline = stream.baseline()
    m, b = stream.vector("member"), stream.vector(baseline)
    assume(len(b) >= 2)  # non_member customers may not have bought by D
    assume(len(set(m)) > 1 or len(set(b)) > 1)  # se > 0: scipy is finite
    got = reference_lift(stream, confidence)
    assert (got["baseline"], got["members"], got["baseline_customers"]) == (
        baseline,
        len(m),
        len(b),
    )
    assert_scipy_welch(got, m, b, float(confidence))
    mean_b = Fraction(sum(b), len(b))
    if mean_b:
        want = (Fraction(sum(m), len(m)) - mean_b) / mean_b
        assert close(got["relative_lift"], float(want), 0.0)
    else:
        assert got["relative_lift"] is None


@settings(max_examples=300, deadline=None)
@given(streams(min_size=0, max_size=3), confidences)
def test_lift_null_rules(stream: Stream, confidence: Fraction | Decimal) -> None:
    baseline = stream.baseline()
    m, b = stream.vector("member"), stream.vector(baseline)
    got = reference_lift(stream, confidence)
    assert (got["baseline"], got["members"], got["baseline_customers"]) == (
        baseline,
        len(m),
        len(b),
    )
    # "Means are `null` for an empty group; d is `null` when either mean is"
    assert (got["revenue_per_member"] is None) == (not m)
    assert (got["revenue_per_baseline"] is None) == (not b)
    assert (got["difference"] is None) == (not m or not b)
    # "`relative_lift` is `null` when mean_b is 0 or `null`"
    if not m or not b or sum(b) == 0:
        assert got["relative_lift"] is None
    # "interval and p-value are `null` unless both groups have >= 2 customers"
    if len(m) < 2 or len(b) < 2:
        assert (got["ci_low"], got["ci_high"], got["p_value"]) == (None, None, None)
    elif len(set(m)) == 1 and len(set(b)) == 1:
        # "when se = 0, `ci_low` = `ci_high` = d and `p_value` is `null`"
        assert got["ci_low"] == got["ci_high"] == got["difference"]
        assert got["p_value"] is None
    else:
        assert_scipy_welch(got, m, b, float(confidence))


# ------------------------------------------------------------------ degenerate cases


def stream_of(groups: dict[str, list[int]]) -> Stream:
    """One in-window purchase of x cents per customer (x = None: no purchase at all)."""
    return Stream(
        [Customer(g, [(-1, x)] if x is not None else []) for g, xs in groups.items() for x in xs]
    )


C95 = Fraction(95, 100)


def test_zero_standard_error() -> None:
    # x_m = 500, 500; x_b = 200, 200: both variances 0 -> se = 0
    got = reference_lift(stream_of({"member": [500, 500], "control": [200, 200]}), C95)
    assert got == {
        "baseline": "control",
        "members": 2,
        "baseline_customers": 2,
        "revenue_per_member": 5.0,
        "revenue_per_baseline": 2.0,
        "difference": 3.0,
        "ci_low": 3.0,
        "ci_high": 3.0,
        "p_value": None,  # scipy: statistic inf, p-value 0
        "relative_lift": 1.5,
    }


def test_groups_of_one() -> None:
    # one member: means and d, no interval or p-value
    got = reference_lift(stream_of({"member": [700], "control": [100, 300]}), C95)
    assert (got["revenue_per_member"], got["revenue_per_baseline"]) == (7.0, 2.0)
    assert (got["difference"], got["relative_lift"]) == (5.0, 2.5)
    assert (got["ci_low"], got["ci_high"], got["p_value"]) == (None, None, None)
    # one baseline customer (non_member): the same
    got = reference_lift(stream_of({"member": [700, 100], "non_member": [200]}), C95)
    assert (got["baseline"], got["baseline_customers"], got["difference"]) == ("non_member", 1, 2.0)
    assert (got["ci_low"], got["ci_high"], got["p_value"]) == (None, None, None)
    # no baseline customer at all: mean_b, d and relative_lift null
    got = reference_lift(stream_of({"member": [700, 100]}), C95)
    assert (got["baseline"], got["baseline_customers"]) == ("non_member", 0)
    assert (got["revenue_per_member"], got["revenue_per_baseline"]) == (4.0, None)
    assert (got["difference"], got["relative_lift"], got["ci_low"]) == (None, None, None)


def test_one_control_customer_falls_back_to_non_member() -> None:
    # control C alone (x = 9999) is not the baseline: non_member N1 (300), N2
    # (bought before the window: x = 0) is; N3 never bought: in no group.
    stream = stream_of({"member": [1000, 0], "control": [9999], "non_member": [300]})
    stream.customers.append(Customer("non_member", [(-45, 800)]))
    stream.customers.append(Customer("non_member", [], enrolls_after_d=True))
    got = reference_lift(stream, C95)
    assert (got["baseline"], got["members"], got["baseline_customers"]) == ("non_member", 2, 2)
    # mean_m = 500, mean_b = 150: d = 350 cents; relative 350 / 150
    assert (got["difference"], got["relative_lift"]) == (3.5, 7 / 3)
    assert_scipy_welch(got, [1000, 0], [300, 0], 0.95)
    # with a second control customer the baseline is control
    stream.customers.append(Customer("control", []))  # enrolled, never bought: x = 0
    got = reference_lift(stream, C95)
    assert (got["baseline"], got["baseline_customers"]) == ("control", 2)
    assert_scipy_welch(got, [1000, 0], [9999, 0], 0.95)


def test_zero_baseline_mean_has_no_relative_lift() -> None:
    # x_m = 100, 300; x_b = 0, 0: se² = 10000 / 2 ... = (100 cents)², ν = 1
    got = reference_lift(stream_of({"member": [100, 300], "control": [0, 0]}), C95)
    t = stats.t.ppf(0.975, 1)
    assert (got["difference"], got["relative_lift"]) == (2.0, None)
    assert math.isclose(got["ci_low"], 2 - t, rel_tol=1e-12)
    assert math.isclose(got["ci_high"], 2 + t, rel_tol=1e-12)
    assert math.isclose(got["p_value"], 2 * stats.t.sf(2, 1), rel_tol=1e-12)
    assert_scipy_welch(got, [100, 300], [0, 0], 0.95)
