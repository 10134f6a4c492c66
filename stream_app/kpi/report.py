"""Merged KPI terms as of a day -> the JSON document of spec §5.

Counts and sums arrive exact (integers, money in minor units); every ratio is
formed here, from exact values, and converted to a float once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from scipy.stats import t as student_t

from stream_app.kpi.days import month_label, month_of, to_date
from stream_app.kpi.params import CLV_WINDOW, KpiParams
from stream_app.kpi.terms import Activity, CohortTerms, Count, KpiTerms, Stats

SEGMENTS = ("member", "non_member", "control")
Json = dict[str, Any]


def ratio(numerator: Fraction | int, denominator: Fraction | int) -> Fraction | None:
    """Spec §3.1: a ratio whose denominator is 0 is null."""
    return None if denominator == 0 else Fraction(numerator) / Fraction(denominator)


def num(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


class Report:
    def __init__(self, terms: KpiTerms, params: KpiParams) -> None:
        self.t = terms
        self.params = params
        self.scale = 10**params.minor_digits

    def money(self, minor: Fraction | int | None) -> float | None:
        return None if minor is None else float(Fraction(minor) / self.scale)

    def stats(self, s: Stats, channel: bool = False) -> Json:
        out: Json = {
            "orders": s.orders,
            "revenue": self.money(s.revenue),
            "active_customers": s.active,
        }
        if not channel:
            out["repeat_customers"] = s.repeat
        out["aov"] = self.money(ratio(s.revenue, s.orders))
        if not channel:
            out["purchase_frequency"] = num(ratio(s.orders, s.active))
            out["repeat_purchase_rate"] = num(ratio(s.repeat, s.active))
        return out

    def window(self, w: int) -> Json:
        t = self.t.window(w)
        out = self.stats(t.purchases)
        out.update(
            points_issued=t.points_issued,
            points_redeemed=t.points_redeemed,
            redemption_rate=num(ratio(t.points_redeemed, t.points_issued)),
            redeeming_customers=t.redeeming,
            active_members=t.active_members,
            enrollment_rate=num(ratio(t.active_members, t.purchases.active)),
            new_enrollments=t.new_enrollments,
            segments={s: self.stats(t.segments.get(s, Stats())) for s in SEGMENTS},
            channels=self.by_name(t.channels),
            tiers=self.by_name(t.tiers),
            stores=self.by_name(t.stores),
            second_purchases=sum(c.n for c in t.second_gaps.values()),
            days_to_second_purchase=days_to_second(t.second_gaps),
            lift=self.lift(w).to_json(self),
        )
        return out

    def by_name(self, groups: dict[str, Stats]) -> Json:
        """Channels, tiers or stores with a purchase, by name."""
        return {
            name: self.stats(groups[name], channel=True)
            for name in sorted(groups)
            if groups[name].orders
        }

    def lift(self, w: int) -> Lift:
        """Spec §3.6 over window ``w``."""
        t, program = self.t.window(w), self.t.program
        control = program.control_total
        baseline = "control" if control >= 2 else "non_member"
        n_b = control if baseline == "control" else program.non_member_buyers
        members = Sample.of(program.members_total, t.segments.get("member"))
        return Lift(baseline, members, Sample.of(n_b, t.segments.get(baseline)), self.params)

    def churn_rate(self) -> Fraction | None:
        return ratio(self.t.churn.churned, self.t.churn.customers_at_start)

    @property
    def history_complete(self) -> bool:
        """Spec §3.2: D - P - T + 1 >= F, i.e. some customer was known by then."""
        return self.t.churn.early_customers > 0

    def churn(self) -> Json:
        c, p = self.t.churn, self.params
        start = c.customers_at_start
        return {
            "period_days": p.churn_period,
            "inactivity_days": p.inactivity,
            "customers_at_start": start,
            "active_at_end": c.active_at_end,
            "churned": c.churned,
            "new_customers": c.new_customers,
            "churn_rate": num(ratio(c.churned, start)),
            "retention_rate": num(ratio(c.active_at_end - c.new_customers, start)),
            "value_at_start": self.money(c.value_at_start),
            "value_churned": self.money(c.value_churned),
            "value_churn_rate": num(ratio(c.value_churned, c.value_at_start)),
            "churned_on_day": c.churned_on_day,
            "history_complete": self.history_complete,
        }

    def clv(self) -> Json:
        p, churn = self.params, self.churn_rate()
        annual = years = value = None
        if churn is not None:
            annual = annual_churn(churn, p.churn_period)
            years = p.max_years if annual == 0 else min(1 / annual, float(p.max_years))
            year = self.t.window(CLV_WINDOW).purchases
            aov = ratio(year.revenue, year.orders)
            freq = ratio(year.orders, year.active)
            if aov is not None and freq is not None:
                value = float(Fraction(p.margin) * aov * freq / self.scale) * years
        return {
            "window_days": CLV_WINDOW,
            "annual_churn_rate": annual,
            "expected_lifetime_years": None if years is None else float(years),
            "value": value,
            "history_complete": self.history_complete,
        }

    def program(self) -> Json:
        """Spec §3.4: the program's economics over the longest window."""
        p, program = self.params, self.t.program
        longest = max(p.windows)
        window = self.t.window(longest)
        fixed = Fraction(p.program_fixed_cost_per_day) * self.scale * longest
        cost = window.reward_minor + p.point_value_minor * window.unpriced_points + fixed
        lift = self.lift(longest)
        n_m, margin = lift.members.n, Fraction(p.margin)
        d = lift.difference
        incremental = None if d is None else d * n_m
        low, high = lift.interval
        ends = [None if e is None else e * n_m for e in (low, high)]
        return {
            "members_total": program.members_total,
            "control_total": program.control_total,
            "members_by_tier": {
                tier: program.members_by_tier[tier].n
                for tier in sorted(program.members_by_tier)
                if program.members_by_tier[tier].n
            },
            "outstanding_points": program.outstanding_points,
            "outstanding_points_value": self.money(
                p.point_value_minor * program.outstanding_points
            ),
            "program_cost": self.money(cost),
            "incremental_revenue": self.money(incremental),
            "incremental_revenue_ci": [None if e is None else e / self.scale for e in ends],
            "incremental_margin": self.money(None if incremental is None else margin * incremental),
            "roi": num(None if incremental is None else ratio(margin * incremental - cost, cost)),
            "roi_ci": [
                None if e is None or cost == 0 else (float(margin) * e - float(cost)) / float(cost)
                for e in ends
            ],
        }

    def cohorts(self, day: int) -> Json:
        """Spec §3.7: one row per month M(D) - K + 1 .. M(D), oldest first."""
        last, k = month_of(day), self.params.cohort_months
        rows = []
        for month in range(last - k + 1, last + 1):
            cohort = self.t.cohorts.get(month, CohortTerms())
            offsets = range(last - month + 1)
            activity = [cohort.months.get(i, Activity()) for i in offsets]
            rows.append(
                {
                    "cohort": month_label(month),
                    "size": cohort.size,
                    "active": [a.active for a in activity],
                    "revenue": [self.money(a.revenue) for a in activity],
                    "retention": [num(ratio(a.active, cohort.size)) for a in activity],
                }
            )
        return {"months": k, "rows": rows}


@dataclass(frozen=True, slots=True)
class Sample:
    """One group of §3.6: n customers, the sum and sum of squares of their revenue
    in the window (minor units; customers without a purchase add 0 to both)."""

    n: int
    total: int
    squares: int

    @classmethod
    def of(cls, n: int, stats: Stats | None) -> Sample:
        return cls(n, 0, 0) if stats is None else cls(n, stats.revenue, stats.revenue_sq)

    @property
    def mean(self) -> Fraction | None:
        return None if self.n == 0 else Fraction(self.total, self.n)

    @property
    def variance_of_mean(self) -> Fraction:
        """s^2 / n with s^2 = (sum x^2 - n mean^2) / (n - 1); needs n >= 2."""
        s2 = (self.squares - Fraction(self.total**2, self.n)) / (self.n - 1)
        return s2 / self.n


@dataclass(frozen=True, slots=True)
class Lift:
    """Members against the baseline group (spec §3.6); money in minor units."""

    baseline: str
    members: Sample
    base: Sample
    params: KpiParams

    @property
    def difference(self) -> Fraction | None:
        m, b = self.members.mean, self.base.mean
        return None if m is None or b is None else m - b

    @property
    def _test(self) -> tuple[float, float, float | None] | None:
        """(t quantile, standard error, p-value); None unless both groups have 2."""
        if self.members.n < 2 or self.base.n < 2:
            return None
        vm, vb = self.members.variance_of_mean, self.base.variance_of_mean
        if vm + vb == 0:
            return (0.0, 0.0, None)
        se = math.sqrt(vm + vb)
        dof = float((vm + vb) ** 2 / (vm**2 / (self.members.n - 1) + vb**2 / (self.base.n - 1)))
        confidence = float(self.params.lift_confidence)
        quantile = float(student_t.ppf((1 + confidence) / 2, dof))
        m, b = self.members, self.base
        d = Fraction(m.total, m.n) - Fraction(b.total, b.n)
        p_value = float(2 * student_t.sf(abs(float(d)) / se, dof))
        return quantile, se, p_value

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """d -/+ t se (minor units)."""
        test, d = self._test, self.difference
        if test is None or d is None:
            return None, None
        quantile, se, _ = test
        return float(d) - quantile * se, float(d) + quantile * se

    def to_json(self, report: Report) -> Json:
        m, b, d = self.members.mean, self.base.mean, self.difference
        test = self._test
        low, high = self.interval
        scale = report.scale
        return {
            "baseline": self.baseline,
            "members": self.members.n,
            "baseline_customers": self.base.n,
            "revenue_per_member": report.money(m),
            "revenue_per_baseline": report.money(b),
            "difference": report.money(d),
            "ci_low": None if low is None else low / scale,
            "ci_high": None if high is None else high / scale,
            "p_value": None if test is None else test[2],
            "relative_lift": num(None if d is None or not b else d / b),
        }


def days_to_second(gaps: dict[int, Count]) -> Json | None:
    """Nearest-rank quartiles and the mean of a histogram of day counts (spec §3.1)."""
    n = sum(c.n for c in gaps.values())
    if n == 0:
        return None
    ordered = sorted((gap, c.n) for gap, c in gaps.items() if c.n)

    def at(q: Fraction) -> int:
        rank, seen = math.ceil(q * n), 0
        for gap, count in ordered:
            seen += count
            if seen >= rank:
                return gap
        raise AssertionError("rank beyond the histogram")

    total = sum(gap * count for gap, count in ordered)
    return {
        "p25": at(Fraction(1, 4)),
        "median": at(Fraction(1, 2)),
        "p75": at(Fraction(3, 4)),
        "mean": total / n,
    }


def annual_churn(churn_rate: Fraction, period: int) -> float:
    """1 - (1 - churn)^(365/P), computed stably for small churn rates."""
    if churn_rate == 1:
        return 1.0
    return -math.expm1(365 / period * math.log1p(-float(churn_rate)))


def kpi_document(terms: KpiTerms, day: int, params: KpiParams) -> Json:
    """Spec §5 without "final" and "watermark" (the caller knows those)."""
    r = Report(terms, params)
    return {
        "as_of": to_date(day).isoformat(),
        "currency": params.currency,
        "windows": {f"{w}d": r.window(w) for w in params.windows},
        "churn": r.churn(),
        "clv": r.clv(),
        "program": r.program(),
        "cohorts": r.cohorts(day),
    }
