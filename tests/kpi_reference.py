"""Brute-force reference for /work/shared/KPI_SPEC.md (version 2): §2, §3.1-3.4,
§3.6, §3.7 and the §5 JSON.

Each KPI is recomputed from the whole event list, straight from its definition
(no incremental state): read each function next to the spec.  Days are date
ordinals; money is exact integer minor units (or Fractions of them), ratios are
Fractions; both become JSON floats only when rendered.  The only floating-point
steps are the ones §3.6 leaves to floating point: the square root of the exact
se², the Student t quantile and survival function (scipy).  Output units: money
(revenue, aov, value_*, clv.value, lift means/difference/interval,
outstanding_points_value, program_cost, incremental_*, cohort revenue) in major
units (dollars); roi, p_value and the other ratios dimensionless; lifetime in
years.  `events` must be accepted and deduplicated; "final"/"watermark" are the
caller's.

Public: `KpiParams`, `business_day`, `first_day`, `kpis_as_of` (the document)
and `lift_as_of` (the §3.6 lift of one window, as rendered in the document).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from scipy import stats

from stream_app.contract import Enrollment, Event, Purchase, Redemption

Json: TypeAlias = dict[str, Any]
Ratio: TypeAlias = Fraction | None
Interval: TypeAlias = tuple[Ratio, Ratio]

SEGMENTS = ("member", "non_member", "control")
CLV_WINDOW = 365
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUANTILES = {"p25": Fraction(1, 4), "median": Fraction(1, 2), "p75": Fraction(3, 4)}


@dataclass(frozen=True)
class KpiParams:
    windows: tuple[int, ...] = (30, 90, 365)
    churn_period: int = 30  # P
    inactivity: int = 90  # T
    # cost of one point in minor units; the spec's default 0.01 is in major
    # units, i.e. 1 cent with minor_digits=2 (set it for other currencies)
    point_value_minor: Fraction | Decimal = Fraction(1)
    margin: Fraction | Decimal = Fraction(1)
    max_years: int = 10
    reporting_tz: str = "UTC"
    currency: str = "USD"
    minor_digits: int = 2
    # §3.4 "program_fixed_cost_per_day": in MAJOR units (dollars per day),
    # like the setting; converted to minor units where it is used.
    program_fixed_cost_per_day: Fraction | Decimal = Fraction(0)
    lift_confidence: Fraction | Decimal = Fraction(95, 100)  # §3.6 c
    cohort_months: int = 12  # §3.7 K

    def __post_init__(self) -> None:
        # "T > P is required (configuration is refused otherwise)."
        if not 0 < self.churn_period < self.inactivity:
            raise ValueError("need 0 < churn_period < inactivity")
        if not self.windows or any(w < 1 for w in self.windows):
            raise ValueError("need at least one window, each >= 1 day")
        if self.program_fixed_cost_per_day < 0:
            raise ValueError("program_fixed_cost_per_day must be >= 0")
        if not 0 < self.lift_confidence < 1:
            raise ValueError("lift_confidence must be in (0, 1)")
        if self.cohort_months < 1:
            raise ValueError("cohort_months must be >= 1")

    @property
    def w_max(self) -> int:
        """§3.4 "W_max is the longest window"."""
        return max(self.windows)


def business_day(occurred_ms: int, tz: str) -> date:
    """§2: "The business day of an event is its calendar date in the configured
    reporting time zone"."""
    return (_EPOCH + timedelta(milliseconds=occurred_ms)).astimezone(ZoneInfo(tz)).date()


def first_day(events: Iterable[Event], params: KpiParams) -> date | None:
    """§2: "The stream's first day F is the earliest business day of any
    accepted event" -- every event passed in counts, also those after D (they
    cannot move F below an event <= D).  None when there are no events."""
    return min((business_day(e.occurred_ms, params.reporting_tz) for e in events), default=None)


def _ratio(numerator: Fraction | int, denominator: Fraction | int) -> Ratio:
    # "A ratio whose denominator is 0 is `null`, never 0 and never an error."
    return None if denominator == 0 else Fraction(numerator) / Fraction(denominator)


def _num(value: Ratio) -> float | None:
    return None if value is None else float(value)


def _money(minor: Fraction | int | None, params: KpiParams) -> float | None:
    """Exact minor units -> a JSON number in major units."""
    # SPEC: "Money is ... served as a JSON number": the exact value converted once
    # (correctly rounded float); derived money (aov, CLV, lift, incremental
    # revenue, points x point_value) is never rounded to the minor unit first.
    return None if minor is None else float(Fraction(minor) / 10**params.minor_digits)


def _major_to_minor(major: Fraction | Decimal, params: KpiParams) -> Fraction:
    return Fraction(major) * 10**params.minor_digits


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    """base ** exponent: exact for a whole exponent, else to 60 significant digits."""
    if exponent.denominator == 1:
        return base**exponent.numerator
    with localcontext() as ctx:
        ctx.prec = 60
        b = Decimal(base.numerator) / Decimal(base.denominator)
        e = Decimal(exponent.numerator) / Decimal(exponent.denominator)
        return Fraction(b**e)


@dataclass(frozen=True)
class _Events:
    """The events with business day <= D, each paired with its day ordinal."""

    purchases: list[tuple[int, Purchase]]
    enrollments: list[tuple[int, Enrollment]]
    redemptions: list[tuple[int, Redemption]]

    @classmethod
    def as_of(cls, events: Iterable[Event], d: int, params: KpiParams) -> _Events:
        # "KPIs are defined as of a business day D: from every accepted event
        # whose business day is <= D."
        dated = [(business_day(e.occurred_ms, params.reporting_tz).toordinal(), e) for e in events]
        dated = [(x, e) for x, e in dated if x <= d]
        return cls(
            purchases=[(x, e) for x, e in dated if isinstance(e, Purchase)],
            enrollments=[(x, e) for x, e in dated if isinstance(e, Enrollment)],
            redemptions=[(x, e) for x, e in dated if isinstance(e, Redemption)],
        )

    def purchases_in(self, lo: int, hi: int) -> list[Purchase]:
        return [p for day, p in self.purchases if lo <= day <= hi]

    def redemptions_in(self, lo: int, hi: int) -> list[Redemption]:
        return [r for day, r in self.redemptions if lo <= day <= hi]


# ------------------------------------------------------------------ §3 segment, tier


def _latest_enrollments(enrollments: list[tuple[int, Enrollment]]) -> dict[str, Enrollment]:
    """§3: each customer's "latest enrollment (by `occurred_at`, ties by
    `event_id`) with business day <= D"."""
    # SPEC: "ties by event_id" read as: the larger event_id (Python str order,
    # i.e. by code point) is the later enrollment.
    latest: dict[str, Enrollment] = {}
    for _, e in enrollments:
        held = latest.get(e.customer_id)
        if held is None or (e.occurred_ms, e.event_id) > (held.occurred_ms, held.event_id):
            latest[e.customer_id] = e
    return latest


def _segments(latest: dict[str, Enrollment]) -> dict[str, str]:
    """§3: "Segment of a customer as of D: the cohort of that customer's latest
    enrollment ... `non_member` when there is none" (missing from the result)."""
    return {customer: e.cohort for customer, e in latest.items()}


def _tiers(latest: dict[str, Enrollment]) -> dict[str, str]:
    """§3.1 "Tier of a customer as of D: the `tier` of their latest enrollment
    ... when that enrollment's cohort is `member` and its `tier` is present and
    non-empty; otherwise the customer has no tier" (missing from the result)."""
    # SPEC: only the latest enrollment counts: a later member enrollment without
    # a tier removes the tier of an earlier one (no carry-over).
    return {c: e.tier for c, e in latest.items() if e.cohort == "member" and e.tier}


# ------------------------------------------------------------------ §3.1


@dataclass(frozen=True)
class _Stats:
    """orders / revenue / active / repeat over a list of purchases."""

    orders: int
    revenue: int  # minor units
    active: int
    repeat: int

    @classmethod
    def of(cls, purchases: Sequence[Purchase]) -> _Stats:
        # SPEC: one order per purchase event; `order_id` is not used by any KPI.
        counts: dict[str, int] = {}
        for p in purchases:
            counts[p.customer_id] = counts.get(p.customer_id, 0) + 1
        return cls(
            orders=len(purchases),  # "number of purchases"
            revenue=sum(p.amount_minor for p in purchases),  # "sum of `amount`"
            active=len(counts),  # "distinct customers with >= 1 purchase"
            repeat=sum(1 for n in counts.values() if n >= 2),  # "... with >= 2 purchases"
        )

    def aov(self) -> Ratio:  # "revenue / orders" (minor units)
        return _ratio(self.revenue, self.orders)

    def frequency(self) -> Ratio:  # "orders / active_customers"
        return _ratio(self.orders, self.active)

    def render(self, params: KpiParams, *, brief: bool = False) -> Json:
        """The `segments` entry, or with brief=True the `channels` / `tiers` /
        `stores` entry ("`orders`, `revenue`, `active_customers`, `aov`")."""
        out: Json = {"orders": self.orders, "revenue": _money(self.revenue, params)}
        out["active_customers"] = self.active
        if not brief:
            out["repeat_customers"] = self.repeat
        out["aov"] = _money(self.aov(), params)
        if not brief:
            out["purchase_frequency"] = _num(self.frequency())
            # "repeat_purchase_rate = repeat_customers / active_customers"
            out["repeat_purchase_rate"] = _num(_ratio(self.repeat, self.active))
        return out


def _by_segment(purchases: list[Purchase], segment: dict[str, str]) -> dict[str, _Stats]:
    # "over the purchases of customers in that segment (segment as of D)"
    return {
        s: _Stats.of([p for p in purchases if segment.get(p.customer_id, "non_member") == s])
        for s in SEGMENTS
    }


def _breakdown(
    purchases: list[Purchase], key: Callable[[Purchase], str | None], params: KpiParams
) -> Json:
    """`channels` / `tiers` / `stores`: the purchases grouped by key(purchase),
    those whose key is None left out; "only [names] with >= 1 purchase in the
    window", i.e. the keys present, sorted by name."""
    names = sorted({name for p in purchases if (name := key(p)) is not None})
    return {
        name: _Stats.of([p for p in purchases if key(p) == name]).render(params, brief=True)
        for name in names
    }


def _second_purchase_days(ev: _Events) -> dict[str, tuple[int, int]]:
    """§3.1 "sort the business days of all of a customer's purchases, ascending,
    with repeats (two orders on one day are two entries); the first two entries
    are the days of the first and second purchase" -- customers with >= 2."""
    days: dict[str, list[int]] = {}
    for day, p in ev.purchases:
        days.setdefault(p.customer_id, []).append(day)
    first_two: dict[str, tuple[int, int]] = {}
    for customer, ds in days.items():
        ds.sort()
        if len(ds) >= 2:
            first_two[customer] = (ds[0], ds[1])
    return first_two


def _nearest_rank(ascending: list[int], q: Fraction) -> int:
    # "the value at position ceil(q*n) (1-based) of the ascending list"
    return ascending[math.ceil(q * len(ascending)) - 1]


def _days_to_second(gaps: list[int]) -> Json | None:
    """`days_to_second_purchase`: "{p25, median, p75, mean}; null when there are none"."""
    if not gaps:
        return None
    ascending = sorted(gaps)
    out: Json = {name: _nearest_rank(ascending, q) for name, q in _QUANTILES.items()}
    out["mean"] = float(Fraction(sum(gaps), len(gaps)))  # "the sum over n"
    return out


@dataclass(frozen=True)
class _AsOf:
    """Everything shared by the KPIs of one day D."""

    ev: _Events
    d: int  # ordinal of D
    segment: dict[str, str]
    tier: dict[str, str]
    params: KpiParams

    @classmethod
    def build(cls, events: Iterable[Event], day: date, params: KpiParams) -> _AsOf:
        d = day.toordinal()
        ev = _Events.as_of(events, d, params)
        latest = _latest_enrollments(ev.enrollments)
        return cls(ev, d, _segments(latest), _tiers(latest), params)


def _window(a: _AsOf, w: int, lift: _Lift) -> Json:
    ev, d, segment, params = a.ev, a.d, a.segment, a.params
    # "A rolling window of W days as of D covers the business days D-W+1 ... D"
    lo = d - w + 1
    purchases = ev.purchases_in(lo, d)
    redemptions = ev.redemptions_in(lo, d)
    active = {p.customer_id for p in purchases}
    issued = sum(p.points_earned for p in purchases)  # "sum of `points_earned`"
    redeemed = sum(r.points for r in redemptions)  # "sum of redemption `points`"
    # "active customers whose segment as of D is `member`"
    active_members = sum(1 for c in active if segment.get(c) == "member")
    out = _Stats.of(purchases).render(params)
    out["points_issued"] = issued
    out["points_redeemed"] = redeemed
    out["redemption_rate"] = _num(_ratio(redeemed, issued))  # "points_redeemed / points_issued"
    # "distinct customers with >= 1 redemption"
    out["redeeming_customers"] = len({r.customer_id for r in redemptions})
    out["active_members"] = active_members
    out["enrollment_rate"] = _num(_ratio(active_members, len(active)))
    # "distinct customers with a `member` enrollment in the window"
    # SPEC: any `member` enrollment event dated in the window counts, even a
    # re-enrollment of a customer who was already a member, and even when a
    # later enrollment moved the customer to `control`.
    out["new_enrollments"] = len(
        {e.customer_id for day, e in ev.enrollments if lo <= day <= d and e.cohort == "member"}
    )
    by_segment = _by_segment(purchases, segment)
    out["segments"] = {s: by_segment[s].render(params) for s in SEGMENTS}
    out["channels"] = _breakdown(purchases, lambda p: p.channel, params)
    # "over the purchases of customers whose tier as of D is that tier"
    out["tiers"] = _breakdown(purchases, lambda p: a.tier.get(p.customer_id), params)
    # "purchases without one (absent or empty) are left out"
    out["stores"] = _breakdown(purchases, lambda p: p.store_id or None, params)
    # "customers whose second purchase is on a day in the window"
    gaps = [second - first for first, second in _second_purchase_days(ev).values() if second >= lo]
    out["second_purchases"] = len(gaps)
    out["days_to_second_purchase"] = _days_to_second(gaps)
    out["lift"] = lift.render(params)
    return out


# ------------------------------------------------------------------ §3.6


@dataclass(frozen=True)
class _Group:
    """§3.6 one group: x_i, "their revenue in W (0 when none)", of each of its
    customers, in integer minor units."""

    xs: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.xs)

    def mean(self) -> Ratio:  # "mean = Σx / n"; "null for an empty group"
        return _ratio(sum(self.xs), self.n)

    def variance(self) -> Ratio:  # "s² = (Σx² − n·mean²) / (n − 1)", exact
        mean = self.mean()
        if mean is None:
            return None
        return _ratio(sum(x * x for x in self.xs) - self.n * mean**2, self.n - 1)


def _groups(a: _AsOf) -> dict[str, list[str]]:
    """§3.6 "Groups as of D: `member` -- customers whose segment is `member`;
    `control` -- segment `control`; `non_member` -- segment `non_member` with at
    least one purchase on a day <= D"."""
    buyers = {p.customer_id for _, p in a.ev.purchases}
    return {
        "member": [c for c, s in a.segment.items() if s == "member"],
        "control": [c for c, s in a.segment.items() if s == "control"],
        "non_member": [c for c in buyers if c not in a.segment],
    }


@dataclass(frozen=True)
class _Lift:
    baseline: str
    members: int  # n_m
    baseline_customers: int  # n_b
    mean_m: Ratio  # minor units
    mean_b: Ratio
    difference: Ratio  # d
    interval: Interval  # [ci_low, ci_high], minor units (exact values of the floats)
    p_value: float | None
    relative_lift: Ratio

    def render(self, params: KpiParams) -> Json:
        return {
            "baseline": self.baseline,
            "members": self.members,
            "baseline_customers": self.baseline_customers,
            "revenue_per_member": _money(self.mean_m, params),
            "revenue_per_baseline": _money(self.mean_b, params),
            "difference": _money(self.difference, params),
            "ci_low": _money(self.interval[0], params),
            "ci_high": _money(self.interval[1], params),
            "p_value": self.p_value,
            "relative_lift": _num(self.relative_lift),
        }


def _welch(m: _Group, b: _Group, d: Fraction, c: Fraction) -> tuple[Interval, float | None]:
    """Interval and p-value of d = mean_m - mean_b; both groups have >= 2."""
    s2_m, s2_b = m.variance(), b.variance()  # exact
    assert s2_m is not None and s2_b is not None  # n >= 2
    vm, vb = s2_m / m.n, s2_b / b.n
    se2 = vm + vb  # se = √(s²_m/n_m + s²_b/n_b)
    if se2 == 0:
        # "when se = 0, `ci_low` = `ci_high` = d and `p_value` is `null`"
        return (d, d), None
    se = math.sqrt(se2)
    # "ν = se⁴ / ((s²_m/n_m)²/(n_m − 1) + (s²_b/n_b)²/(n_b − 1))", exact
    nu = float(se2**2 / (vm**2 / (m.n - 1) + vb**2 / (b.n - 1)))
    # "t the Student t quantile at (1 + c)/2 with ν degrees of freedom"
    t = float(stats.t.ppf(float((1 + c) / 2), nu))
    # "`ci_low`, `ci_high` = d ∓ t·se"
    half = Fraction(t * se)
    # "`p_value` = 2·S_ν(|d| / se), S_ν the Student t survival function"
    p_value = 2 * float(stats.t.sf(float(abs(d)) / se, nu))
    return (d - half, d + half), p_value


def _lift(a: _AsOf, w: int) -> _Lift:
    groups = _groups(a)
    # "The baseline is `control` when it has at least 2 customers, else `non_member`"
    baseline = "control" if len(groups["control"]) >= 2 else "non_member"
    revenue: dict[str, int] = {}
    for p in a.ev.purchases_in(a.d - w + 1, a.d):
        revenue[p.customer_id] = revenue.get(p.customer_id, 0) + p.amount_minor
    m = _Group(tuple(revenue.get(c, 0) for c in groups["member"]))
    b = _Group(tuple(revenue.get(c, 0) for c in groups[baseline]))
    mean_m, mean_b = m.mean(), b.mean()
    # "d is `null` when either mean is"
    d = None if mean_m is None or mean_b is None else mean_m - mean_b
    interval: Interval = (None, None)
    p_value = None
    # "interval and p-value are `null` unless both groups have >= 2 customers"
    if d is not None and m.n >= 2 and b.n >= 2:
        interval, p_value = _welch(m, b, d, Fraction(a.params.lift_confidence))
    # "`relative_lift` = d / mean_b ... `null` when mean_b is 0 or `null`"
    relative = None if d is None or mean_b is None else _ratio(d, mean_b)
    return _Lift(baseline, m.n, b.n, mean_m, mean_b, d, interval, p_value, relative)


# ------------------------------------------------------------------ §3.2, §3.3


def _active_as_of(ev: _Events, x: int, t: int) -> set[str]:
    """§3.2: a customer is "active as of day X when their latest purchase with
    business day <= X is on a day > X - T"."""
    latest: dict[str, int] = {}
    for day, p in ev.purchases:
        if day <= x:
            latest[p.customer_id] = max(day, latest.get(p.customer_id, day))
    return {c for c, day in latest.items() if day > x - t}


def _history_complete(d: int, f: date | None, params: KpiParams) -> bool:
    """§3.2 "`history_complete` = D − P − T + 1 >= F (§2)"."""
    # SPEC: with no event at all F is undefined; the look-back of S cannot lie
    # inside a stream that has not started, so the flag is false.
    if f is None:
        return False
    return d - params.churn_period - params.inactivity + 1 >= f.toordinal()


def _churn(ev: _Events, d: int, params: KpiParams, complete: bool) -> tuple[Json, Ratio]:
    p, t = params.churn_period, params.inactivity
    start = _active_as_of(ev, d - p, t)  # "S = customers active as of D - P"
    end = _active_as_of(ev, d, t)  # "E = customers active as of D"
    churned = start - end  # "active as of D - P and not active as of D"
    first: dict[str, int] = {}
    for day, purchase in ev.purchases:
        first[purchase.customer_id] = min(day, first.get(purchase.customer_id, day))
    # "N = customers whose first-ever purchase is on a day in (D - P, D]"
    new = {c for c, day in first.items() if d - p < day <= d}
    # "base value is their revenue on days in (D - P - T, D - P]"
    base = {c: 0 for c in start}
    for purchase in ev.purchases_in(d - p - t + 1, d - p):
        if purchase.customer_id in base:
            base[purchase.customer_id] += purchase.amount_minor
    value_at_start = sum(base.values())
    value_churned = sum(base[c] for c in churned)
    churn_rate = _ratio(len(churned), len(start))  # "churned / S"
    doc: Json = {
        "period_days": p,
        "inactivity_days": t,
        "customers_at_start": len(start),
        "active_at_end": len(end),
        "churned": len(churned),
        "new_customers": len(new),
        "churn_rate": _num(churn_rate),
        "retention_rate": _num(_ratio(len(end) - len(new), len(start))),  # "(E - N) / S"
        "value_at_start": _money(value_at_start, params),
        "value_churned": _money(value_churned, params),
        "value_churn_rate": _num(_ratio(value_churned, value_at_start)),
        # "customers active as of D - 1 and not active as of D"
        "churned_on_day": len(_active_as_of(ev, d - 1, t) - end),
        "history_complete": complete,
    }
    return doc, churn_rate


def _clv(year: _Stats, churn_rate: Ratio, params: KpiParams, complete: bool) -> Json:
    annual: Ratio = None
    years: Ratio = None
    value: Ratio = None
    if churn_rate is not None:
        # "annual_churn_rate = 1 - (1 - churn_rate)^(365 / P)"
        annual = 1 - _power(1 - churn_rate, Fraction(365, params.churn_period))
        # "min(1 / annual_churn_rate, max_years) ... (and = max_years when annual_churn_rate is 0)"
        cap = Fraction(params.max_years)
        years = cap if annual == 0 else min(1 / annual, cap)
    # SPEC: "Over the 365-day window": aov and purchase_frequency are the 365d
    # window's overall ones (all segments), whether or not 365 is in `windows`.
    aov, frequency = year.aov(), year.frequency()
    if years is not None and aov is not None and frequency is not None:
        # "value (CLV) = margin x aov x purchase_frequency x expected_lifetime_years"
        value = Fraction(params.margin) * aov * frequency * years
    return {
        "window_days": CLV_WINDOW,
        "annual_churn_rate": _num(annual),
        "expected_lifetime_years": _num(years),
        "value": _money(value, params),
        "history_complete": complete,  # "the flag of §3.2"
    }


# ------------------------------------------------------------------ §3.4


def _cost_minor(r: Redemption, params: KpiParams) -> Fraction:
    # "sum over redemptions of `reward_value`, or `points x point_value` where absent"
    # SPEC: points x point_value is kept exact (no rounding to the minor unit).
    if r.reward_value_minor is not None:
        return Fraction(r.reward_value_minor)
    return r.points * Fraction(params.point_value_minor)


def _times(value: Ratio, factor: Fraction | int) -> Ratio:
    return None if value is None else value * factor


def _roi(incremental_margin: Ratio, cost: Fraction) -> Ratio:
    # "roi = (incremental_margin − program_cost) / program_cost"; "`null` when
    # program_cost is 0" (_ratio) or when an input is `null`
    return None if incremental_margin is None else _ratio(incremental_margin - cost, cost)


def _program(a: _AsOf, lift: _Lift) -> Json:
    """`lift` is the §3.6 lift over W_max."""
    ev, d, params = a.ev, a.d, a.params
    w_max = params.w_max
    rewards = sum(
        (_cost_minor(r, params) for r in ev.redemptions_in(d - w_max + 1, d)), Fraction(0)
    )
    # "plus `program_fixed_cost_per_day` x W_max"
    cost = rewards + _major_to_minor(params.program_fixed_cost_per_day, params) * w_max
    margin = Fraction(params.margin)
    n_m = lift.members  # "n_m the members of §3.6"
    incremental = _times(lift.difference, n_m)  # "d x n_m"
    # "[d_low x n_m, d_high x n_m]"
    incremental_ci = [_times(end, n_m) for end in lift.interval]
    incremental_margin = _times(incremental, margin)  # "margin x incremental_revenue"
    issued = sum(p.points_earned for _, p in ev.purchases)
    redeemed = sum(r.points for _, r in ev.redemptions)
    # "all points issued minus all points redeemed, business day <= D"
    # SPEC: not clamped; negative when more was redeemed than issued.
    outstanding = issued - redeemed
    by_tier: dict[str, int] = {}
    for tier in a.tier.values():  # a customer with a tier is a member (§3.1)
        by_tier[tier] = by_tier.get(tier, 0) + 1
    return {
        # "customers whose segment as of D is `member`, `control`"
        "members_total": sum(1 for s in a.segment.values() if s == "member"),
        "control_total": sum(1 for s in a.segment.values() if s == "control"),
        # "members by tier as of D"; SPEC: only tiers with >= 1 member, sorted
        "members_by_tier": dict(sorted(by_tier.items())),
        "outstanding_points": outstanding,
        # "outstanding_points x point_value"
        "outstanding_points_value": _money(
            outstanding * Fraction(params.point_value_minor), params
        ),
        "program_cost": _money(cost, params),
        "incremental_revenue": _money(incremental, params),
        "incremental_revenue_ci": [_money(end, params) for end in incremental_ci],
        "incremental_margin": _money(incremental_margin, params),
        "roi": _num(_roi(incremental_margin, cost)),
        # "roi_ci the same formula over the interval's two ends"
        "roi_ci": [_num(_roi(_times(end, margin), cost)) for end in incremental_ci],
    }


# ------------------------------------------------------------------ §3.7


def _month(ordinal: int) -> int:
    """Calendar month of a day as a month count (year x 12 + month - 1)."""
    day = date.fromordinal(ordinal)
    return day.year * 12 + day.month - 1


def _cohorts(ev: _Events, d: int, params: KpiParams) -> Json:
    months = params.cohort_months  # K
    # "A customer's cohort is the calendar month of their first purchase's business day"
    first: dict[str, int] = {}
    for day, p in ev.purchases:
        first[p.customer_id] = min(day, first.get(p.customer_id, day))
    cohort = {c: _month(day) for c, day in first.items()}
    # each purchase as (its month, its customer's cohort)
    bought = [(_month(day), cohort[p.customer_id], p) for day, p in ev.purchases]
    last = _month(d)  # M(D)
    rows = []
    # "one row per calendar month m from M(D) − K + 1 to M(D), oldest first"
    for m in range(last - months + 1, last + 1):
        size = sum(1 for c in cohort.values() if c == m)  # "first purchase is in month m"
        active: list[int] = []
        revenue: list[float | None] = []
        for month in range(m, last + 1):  # "k = 0 … M(D) − m"
            buys = [p for at, c, p in bought if at == month and c == m]
            active.append(len({p.customer_id for p in buys}))  # ">= 1 purchase in month m + k"
            revenue.append(_money(sum(p.amount_minor for p in buys), params))  # "their revenue"
        rows.append(
            {
                "cohort": f"{m // 12:04d}-{m % 12 + 1:02d}",
                "size": size,
                "active": active,
                "revenue": revenue,
                # "retention[k] = active[k] / size (`null` when size is 0)"
                "retention": [_num(_ratio(n, size)) for n in active],
            }
        )
    return {"months": months, "rows": rows}


# ------------------------------------------------------------------ §5


def lift_as_of(events: Iterable[Event], day: date, window: int, params: KpiParams) -> Json:
    """The §3.6 lift over a window of `window` days as of `day`, as rendered in
    the document (it need not be one of params.windows)."""
    return _lift(_AsOf.build(events, day, params), window).render(params)


def kpis_as_of(events: Iterable[Event], day: date, params: KpiParams) -> Json:
    """The §5 document as of business day `day`, without "final" and "watermark"."""
    events = list(events)
    a = _AsOf.build(events, day, params)
    complete = _history_complete(a.d, first_day(events, params), params)
    churn, churn_rate = _churn(a.ev, a.d, params, complete)
    year = _Stats.of(a.ev.purchases_in(a.d - CLV_WINDOW + 1, a.d))
    lifts = {w: _lift(a, w) for w in params.windows}
    return {
        "as_of": day.isoformat(),
        "currency": params.currency,
        "windows": {f"{w}d": _window(a, w, lifts[w]) for w in params.windows},
        "churn": churn,
        "clv": _clv(year, churn_rate, params, complete),
        "program": _program(a, lifts[params.w_max]),
        "cohorts": _cohorts(a.ev, a.d, params),
    }
