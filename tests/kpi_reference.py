"""Brute-force reference for /work/shared/KPI_SPEC.md §2, §3.1-3.4 and the §5 JSON.

Each KPI is recomputed from the whole event list, straight from its definition
(no incremental state): read each function next to the spec.  Days are date
ordinals; money is exact integer minor units (or Fractions of them), ratios are
Fractions; both become JSON floats only when rendered.  Output units: money
(revenue, aov, value_*, clv.value, program_cost, incremental_revenue) in major
units (dollars); roi and the other ratios dimensionless; lifetime in years.
`events` must be accepted and deduplicated; "final"/"watermark" are the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from stream_app.contract import Enrollment, Event, Purchase, Redemption

Json: TypeAlias = dict[str, Any]
Ratio: TypeAlias = Fraction | None

SEGMENTS = ("member", "non_member", "control")
CLV_WINDOW = 365
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class KpiParams:
    windows: tuple[int, ...] = (30, 90, 365)
    churn_period: int = 30  # P
    inactivity: int = 90  # T
    # cost of one point in minor units; the spec's default 0.01 is in major
    # units, i.e. 1 cent with minor_digits=2 (set it for other currencies)
    point_value_minor: Fraction | Decimal = Fraction(1)
    margin: Fraction = Fraction(1)
    max_years: int = 10
    reporting_tz: str = "UTC"
    currency: str = "USD"
    minor_digits: int = 2

    def __post_init__(self) -> None:
        # "T > P is required (configuration is refused otherwise)."
        if not 0 < self.churn_period < self.inactivity:
            raise ValueError("need 0 < churn_period < inactivity")
        if any(w < 1 for w in self.windows):
            raise ValueError("windows must be >= 1 day")


def business_day(occurred_ms: int, tz: str) -> date:
    """§2: "The business day of an event is its calendar date in the configured
    reporting time zone"."""
    return (_EPOCH + timedelta(milliseconds=occurred_ms)).astimezone(ZoneInfo(tz)).date()


def _ratio(numerator: Fraction | int, denominator: Fraction | int) -> Ratio:
    # "A ratio whose denominator is 0 is `null`, never 0 and never an error."
    return None if denominator == 0 else Fraction(numerator) / Fraction(denominator)


def _num(value: Ratio) -> float | None:
    return None if value is None else float(value)


def _money(minor: Fraction | int | None, params: KpiParams) -> float | None:
    """Exact minor units -> a JSON number in major units."""
    # SPEC: "Money is ... served as a JSON number": the exact value converted once
    # (correctly rounded float); derived money (aov, rpc, CLV, incremental
    # revenue, points x point_value) is never rounded to the minor unit first.
    return None if minor is None else float(Fraction(minor) / 10**params.minor_digits)


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

    def purchases_in(self, lo: int, hi: int) -> list[Purchase]:
        return [p for day, p in self.purchases if lo <= day <= hi]

    def redemptions_in(self, lo: int, hi: int) -> list[Redemption]:
        return [r for day, r in self.redemptions if lo <= day <= hi]


def _segments(enrollments: list[tuple[int, Enrollment]]) -> dict[str, str]:
    """§3: "Segment of a customer as of D: the cohort of that customer's latest
    enrollment (by `occurred_at`, ties by `event_id`) with business day <= D";
    customers missing from the result are `non_member`."""
    # SPEC: "ties by event_id" read as: the larger event_id (Python str order,
    # i.e. by code point) is the later enrollment.
    latest: dict[str, Enrollment] = {}
    for _, e in enrollments:
        held = latest.get(e.customer_id)
        if held is None or (e.occurred_ms, e.event_id) > (held.occurred_ms, held.event_id):
            latest[e.customer_id] = e
    return {customer: e.cohort for customer, e in latest.items()}


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

    def rpc(self) -> Ratio:  # §3.4 "rpc(s) = revenue / active_customers" (minor units)
        return _ratio(self.revenue, self.active)

    def render(self, params: KpiParams, *, channel: bool = False) -> Json:
        out: Json = {"orders": self.orders, "revenue": _money(self.revenue, params)}
        out["active_customers"] = self.active
        if not channel:
            out["repeat_customers"] = self.repeat
        out["aov"] = _money(self.aov(), params)
        if not channel:
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


def _window(ev: _Events, d: int, w: int, segment: dict[str, str], params: KpiParams) -> Json:
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
    stats = _by_segment(purchases, segment)
    out["segments"] = {s: stats[s].render(params) for s in SEGMENTS}
    # "only channels with >= 1 purchase in the window"
    out["channels"] = {
        ch: _Stats.of([p for p in purchases if p.channel == ch]).render(params, channel=True)
        for ch in sorted({p.channel for p in purchases})
    }
    return out


def _active_as_of(ev: _Events, x: int, t: int) -> set[str]:
    """§3.2: a customer is "active as of day X when their latest purchase with
    business day <= X is on a day > X - T"."""
    latest: dict[str, int] = {}
    for day, p in ev.purchases:
        if day <= x:
            latest[p.customer_id] = max(day, latest.get(p.customer_id, day))
    return {c for c, day in latest.items() if day > x - t}


def _churn(ev: _Events, d: int, params: KpiParams) -> tuple[Json, Ratio]:
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
    }
    return doc, churn_rate


def _clv(year: _Stats, churn_rate: Ratio, params: KpiParams) -> Json:
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
        value = params.margin * aov * frequency * years
    return {
        "window_days": CLV_WINDOW,
        "annual_churn_rate": _num(annual),
        "expected_lifetime_years": _num(years),
        "value": _money(value, params),
    }


def _cost_minor(r: Redemption, params: KpiParams) -> Fraction:
    # "sum over redemptions of `reward_value`, or `points x point_value` where absent"
    # SPEC: points x point_value is kept exact (no rounding to the minor unit).
    if r.reward_value_minor is not None:
        return Fraction(r.reward_value_minor)
    return r.points * Fraction(params.point_value_minor)


def _program(ev: _Events, d: int, segment: dict[str, str], params: KpiParams) -> Json:
    lo = d - CLV_WINDOW + 1  # "Over the 365-day window"
    cost = sum((_cost_minor(r, params) for r in ev.redemptions_in(lo, d)), Fraction(0))
    stats = _by_segment(ev.purchases_in(lo, d), segment)
    # "baseline segment = `control` when it has active customers, else `non_member`"
    # SPEC: "active customers" = active_customers of the segment in the 365-day window.
    baseline = "control" if stats["control"].active > 0 else "non_member"
    rpc_member, rpc_baseline = stats["member"].rpc(), stats[baseline].rpc()
    incremental: Ratio = None
    if rpc_member is not None and rpc_baseline is not None:
        # "(rpc(member) - rpc(baseline)) x active customers of `member`"
        incremental = (rpc_member - rpc_baseline) * stats["member"].active
    # "roi = (incremental_revenue - program_cost) / program_cost"
    roi = None if incremental is None else _ratio(incremental - cost, cost)
    issued = sum(p.points_earned for _, p in ev.purchases)
    redeemed = sum(r.points for _, r in ev.redemptions)
    return {
        # "customers whose segment as of D is `member`, `control`"
        "members_total": sum(1 for s in segment.values() if s == "member"),
        "control_total": sum(1 for s in segment.values() if s == "control"),
        # "all points issued minus all points redeemed, business day <= D"
        # SPEC: not clamped; negative when more was redeemed than issued.
        "outstanding_points": issued - redeemed,
        "program_cost": _money(cost, params),
        "incremental_revenue": _money(incremental, params),
        "roi": _num(roi),
    }


def kpis_as_of(events: Iterable[Event], day: date, params: KpiParams) -> Json:
    """The §5 document as of business day `day`, without "final" and "watermark"."""
    d = day.toordinal()
    # "KPIs are defined as of a business day D: from every accepted event whose
    # business day is <= D."
    dated = [(business_day(e.occurred_ms, params.reporting_tz).toordinal(), e) for e in events]
    dated = [(x, e) for x, e in dated if x <= d]
    ev = _Events(
        purchases=[(x, e) for x, e in dated if isinstance(e, Purchase)],
        enrollments=[(x, e) for x, e in dated if isinstance(e, Enrollment)],
        redemptions=[(x, e) for x, e in dated if isinstance(e, Redemption)],
    )
    segment = _segments(ev.enrollments)
    churn, churn_rate = _churn(ev, d, params)
    year = _Stats.of(ev.purchases_in(d - CLV_WINDOW + 1, d))
    return {
        "as_of": day.isoformat(),
        "currency": params.currency,
        "windows": {f"{w}d": _window(ev, d, w, segment, params) for w in params.windows},
        "churn": churn,
        "clv": _clv(year, churn_rate, params),
        "program": _program(ev, d, segment, params),
    }
