"""KPI parameters of spec §2-§3, validated when built."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CLV_WINDOW = 365


@dataclass(frozen=True)
class KpiParams:
    windows: tuple[int, ...] = (30, 90, 365)
    churn_period: int = 30  # P
    inactivity: int = 90  # T
    point_value: Decimal = Decimal("0.01")  # major currency units per point
    margin: Decimal = Decimal(1)
    max_years: int = 10
    reporting_tz: str = "UTC"
    currency: str = "USD"
    minor_digits: int = 2
    program_fixed_cost_per_day: Decimal = Decimal(0)  # major currency units
    lift_confidence: Decimal = Decimal("0.95")
    cohort_months: int = 12

    def __post_init__(self) -> None:
        if not self.windows or any(w < 1 for w in self.windows):
            raise ValueError("every window must be at least 1 day")
        if self.churn_period < 1:
            raise ValueError("the churn period P must be at least 1 day")
        if self.inactivity <= self.churn_period:
            raise ValueError(
                f"the inactivity threshold T ({self.inactivity}) must exceed the churn "
                f"period P ({self.churn_period})"
            )
        if self.max_years < 1 or self.point_value < 0 or self.margin < 0:
            raise ValueError("max_years must be >= 1, point_value and margin >= 0")
        if self.program_fixed_cost_per_day < 0:
            raise ValueError("program_fixed_cost_per_day must be >= 0")
        if not 0 < self.lift_confidence < 1:
            raise ValueError("lift_confidence must be between 0 and 1")
        if self.cohort_months < 1:
            raise ValueError("cohort_months must be at least 1")
        try:
            ZoneInfo(self.reporting_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.reporting_tz!r}") from None

    @cached_property
    def zone(self) -> ZoneInfo | None:
        """None for UTC (business days are then plain integer division)."""
        return None if self.reporting_tz in ("UTC", "Etc/UTC") else ZoneInfo(self.reporting_tz)

    @cached_property
    def all_windows(self) -> tuple[int, ...]:
        """The configured windows plus the 365-day one that CLV and ROI use."""
        return tuple(sorted(set(self.windows) | {CLV_WINDOW}))

    @cached_property
    def point_value_minor(self) -> Fraction:
        return Fraction(self.point_value) * Fraction(10**self.minor_digits)

    @cached_property
    def boundaries(self) -> frozenset[int]:
        """Offsets b such that a customer's contribution as of D can change only
        when one of its event days equals D - b (see engine.py)."""
        p, t = self.churn_period, self.inactivity
        # p + t - 1: the look-back of history_complete starts on an event day
        return frozenset({0, p, t, t + 1, p + t - 1, p + t, *self.all_windows})

    @cached_property
    def lookback_days(self) -> int:
        """Days before D that a contribution as of D can read: the boundaries, and
        the cohort rows, which start on the first of the month K - 1 months
        before D's (at most 31 K days back)."""
        return max(max(self.boundaries), 31 * self.cohort_months)

    @cached_property
    def history_days(self) -> int:
        """Days of history a contribution as of D or D-1 can look at."""
        return self.lookback_days + 2
