"""Churn-spike detection on final days (spec §3.5). Pure: no I/O.

On final day D the baseline is the mean churn rate over the final days
D - baseline_days .. D - 1 that have a churn rate and a complete churn history
(spec §3.2 ``history_complete``); with fewer than ``min_days`` of them there is
no verdict, and a day whose own history is incomplete gets none either (in a
stream's first months nobody can have been inactive for T days yet, so churn
first appears then out of nothing: not a spike). D is a spike when its churn rate is
at least baseline x factor and at least ``min_churned`` customers churned. An
alert is raised on the first spike day and resolved on the first later day
with a verdict that is not a spike; a day without a verdict changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal


@dataclass(frozen=True, slots=True)
class SpikeRule:
    baseline_days: int = 28
    min_days: int = 7
    factor: Decimal = Decimal("1.5")
    min_churned: int = 20


@dataclass(frozen=True, slots=True)
class DayChurn:
    """A final day's churn counts (spec §3.2): churned of S customers at start."""

    churned: int
    customers_at_start: int
    history_complete: bool = True

    @property
    def rate(self) -> Fraction | None:
        """Exact, so that a rate equal to the threshold is a spike whatever floats say."""
        if not self.customers_at_start:
            return None
        return Fraction(self.churned, self.customers_at_start)


@dataclass(frozen=True, slots=True)
class Verdict:
    day: int
    churn: DayChurn
    baseline: Fraction | None  # None: no verdict
    threshold: Fraction | None
    spike: bool


@dataclass(frozen=True, slots=True)
class AlertChange:
    status: Literal["raised", "resolved"]
    raised_day: int
    verdict: Verdict


NO_CHURN = DayChurn(0, 0)


def judge(day: int, churn: Mapping[int, DayChurn], rule: SpikeRule) -> Verdict:
    """The verdict on final ``day`` given the churn of the final days up to it."""
    today = churn.get(day, NO_CHURN)
    rate = today.rate
    rates = [
        r
        for d in range(day - rule.baseline_days, day)
        if (c := churn.get(d)) is not None and c.history_complete and (r := c.rate) is not None
    ]
    if rate is None or not today.history_complete or len(rates) < rule.min_days:
        return Verdict(day, today, None, None, False)
    baseline = sum(rates, Fraction(0)) / len(rates)
    threshold = baseline * Fraction(rule.factor)
    spike = rate >= threshold and today.churned >= rule.min_churned
    return Verdict(day, today, baseline, threshold, spike)


def step(open_since: int | None, verdict: Verdict) -> tuple[int | None, AlertChange | None]:
    """The open alert (the day it was raised, or None) after ``verdict``."""
    if verdict.baseline is None:
        return open_since, None
    if verdict.spike and open_since is None:
        return verdict.day, AlertChange("raised", verdict.day, verdict)
    if not verdict.spike and open_since is not None:
        return None, AlertChange("resolved", open_since, verdict)
    return open_since, None
