"""Merged KPI terms as of a day -> the JSON document of spec §5.

Counts and sums arrive exact (integers, money in minor units); every ratio is
formed here, from exact values, and converted to a float once.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from stream_app.kpi.days import to_date
from stream_app.kpi.params import CLV_WINDOW, KpiParams
from stream_app.kpi.terms import KpiTerms, Stats

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
            channels={
                name: self.stats(t.channels[name], channel=True)
                for name in sorted(n for n, s in t.channels.items() if s.orders)
            },
        )
        return out

    def churn_rate(self) -> Fraction | None:
        return ratio(self.t.churn.churned, self.t.churn.customers_at_start)

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
        }

    def program(self) -> Json:
        program, year = self.t.program, self.t.window(CLV_WINDOW)
        cost = year.reward_minor + self.params.point_value_minor * year.unpriced_points
        incremental = self.incremental_revenue()
        roi = None if incremental is None else ratio(incremental - cost, cost)
        return {
            "members_total": program.members_total,
            "control_total": program.control_total,
            "outstanding_points": program.outstanding_points,
            "program_cost": self.money(cost),
            "incremental_revenue": self.money(incremental),
            "roi": num(roi),
        }

    def incremental_revenue(self) -> Fraction | None:
        """Spec §3.4 over the 365-day window, baseline control if it has active customers."""
        segments = self.t.window(CLV_WINDOW).segments
        member = segments.get("member", Stats())
        control = segments.get("control", Stats())
        baseline = control if control.active else segments.get("non_member", Stats())
        base = ratio(baseline.revenue, baseline.active)
        per_member = ratio(member.revenue, member.active)
        if per_member is None or base is None:
            return None
        return (per_member - base) * member.active


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
    }
