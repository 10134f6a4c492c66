"""Merged KPI terms as of a day -> the JSON document of spec §5.

Counts and sums arrive exact (integers, money in minor units); every ratio is
formed here, from exact values, and converted to a float once.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from stream_app.kpi.contribution import Terms
from stream_app.kpi.days import to_date
from stream_app.kpi.params import CLV_WINDOW, KpiParams

SEGMENTS = ("member", "non_member", "control")
Json = dict[str, Any]


def ratio(numerator: Fraction | int, denominator: Fraction | int) -> Fraction | None:
    """Spec §3.1: a ratio whose denominator is 0 is null."""
    return None if denominator == 0 else Fraction(numerator) / Fraction(denominator)


def num(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


class Report:
    def __init__(self, terms: Terms, params: KpiParams) -> None:
        self.t = terms
        self.params = params
        self.scale = 10**params.minor_digits

    def money(self, minor: Fraction | int | None) -> float | None:
        return None if minor is None else float(Fraction(minor) / self.scale)

    def stats(self, prefix: tuple[object, ...], channel: bool = False) -> Json:
        t = self.t
        orders, revenue = t.get((*prefix, "orders"), 0), t.get((*prefix, "revenue"), 0)
        active = t.get((*prefix, "active"), 0)
        out: Json = {"orders": orders, "revenue": self.money(revenue), "active_customers": active}
        if not channel:
            out["repeat_customers"] = t.get((*prefix, "repeat"), 0)
        out["aov"] = self.money(ratio(revenue, orders))
        if not channel:
            out["purchase_frequency"] = num(ratio(orders, active))
            out["repeat_purchase_rate"] = num(ratio(out["repeat_customers"], active))
        return out

    def window(self, w: int) -> Json:
        t, key = self.t, ("w", w)
        out = self.stats(key)
        issued = t.get((*key, "points_issued"), 0)
        redeemed = t.get((*key, "points_redeemed"), 0)
        members = t.get((*key, "active_members"), 0)
        out.update(
            points_issued=issued,
            points_redeemed=redeemed,
            redemption_rate=num(ratio(redeemed, issued)),
            redeeming_customers=t.get((*key, "redeeming"), 0),
            active_members=members,
            enrollment_rate=num(ratio(members, out["active_customers"])),
            new_enrollments=t.get((*key, "new_enrollments"), 0),
            segments={s: self.stats(("seg", w, s)) for s in SEGMENTS},
            channels={ch: self.stats(("ch", w, ch), channel=True) for ch in self.channels(w)},
        )
        return out

    def channels(self, w: int) -> list[str]:
        names = {k[2] for k, v in self.t.items() if k[:2] == ("ch", w) and k[3] == "orders" and v}
        return sorted(str(n) for n in names)

    def churn_rate(self) -> Fraction | None:
        c = self.churn_counts()
        return ratio(c["churned"], c["customers_at_start"])

    def churn_counts(self) -> dict[str, int]:
        names = ("customers_at_start", "active_at_end", "churned", "new_customers")
        extra = ("value_at_start", "value_churned", "churned_on_day")
        return {n: self.t.get(("churn", n), 0) for n in names + extra}

    def churn(self) -> Json:
        c, p = self.churn_counts(), self.params
        start = c["customers_at_start"]
        return {
            "period_days": p.churn_period,
            "inactivity_days": p.inactivity,
            "customers_at_start": start,
            "active_at_end": c["active_at_end"],
            "churned": c["churned"],
            "new_customers": c["new_customers"],
            "churn_rate": num(ratio(c["churned"], start)),
            "retention_rate": num(ratio(c["active_at_end"] - c["new_customers"], start)),
            "value_at_start": self.money(c["value_at_start"]),
            "value_churned": self.money(c["value_churned"]),
            "value_churn_rate": num(ratio(c["value_churned"], c["value_at_start"])),
            "churned_on_day": c["churned_on_day"],
        }

    def clv(self) -> Json:
        p, churn = self.params, self.churn_rate()
        annual = years = value = None
        if churn is not None:
            annual = annual_churn(churn, p.churn_period)
            years = p.max_years if annual == 0 else min(1 / annual, float(p.max_years))
            w = ("w", CLV_WINDOW)
            aov = ratio(self.t.get((*w, "revenue"), 0), self.t.get((*w, "orders"), 0))
            freq = ratio(self.t.get((*w, "orders"), 0), self.t.get((*w, "active"), 0))
            if aov is not None and freq is not None:
                value = float(Fraction(p.margin) * aov * freq / self.scale) * years
        return {
            "window_days": CLV_WINDOW,
            "annual_churn_rate": annual,
            "expected_lifetime_years": None if years is None else float(years),
            "value": value,
        }

    def program(self) -> Json:
        t, p = self.t, self.params
        cost = t.get(("program", "cost_reward_minor"), 0) + p.point_value_minor * t.get(
            ("program", "cost_unpriced_points"), 0
        )
        incremental = self.incremental_revenue()
        roi = None if incremental is None else ratio(incremental - cost, cost)
        return {
            "members_total": t.get(("program", "members_total"), 0),
            "control_total": t.get(("program", "control_total"), 0),
            "outstanding_points": t.get(("program", "outstanding_points"), 0),
            "program_cost": self.money(cost),
            "incremental_revenue": self.money(incremental),
            "roi": num(roi),
        }

    def incremental_revenue(self) -> Fraction | None:
        """Spec §3.4 over the 365-day window, baseline control if it has active customers."""
        t, w = self.t, CLV_WINDOW
        baseline = "control" if t.get(("seg", w, "control", "active"), 0) else "non_member"

        def rpc(segment: str) -> Fraction | None:
            key = ("seg", w, segment)
            return ratio(t.get((*key, "revenue"), 0), t.get((*key, "active"), 0))

        member, base = rpc("member"), rpc(baseline)
        if member is None or base is None:
            return None
        return (member - base) * t.get(("seg", w, "member", "active"), 0)


def annual_churn(churn_rate: Fraction, period: int) -> float:
    """1 - (1 - churn)^(365/P), computed stably for small churn rates."""
    if churn_rate == 1:
        return 1.0
    return -math.expm1(365 / period * math.log1p(-float(churn_rate)))


def kpi_document(terms: Terms, day: int, params: KpiParams) -> Json:
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
