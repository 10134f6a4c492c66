"""Churn-spike detection (spec §3.5) against a brute force straight from the words."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.kpi.spike import DayChurn, SpikeRule, judge, step

RULE = SpikeRule()


def brute_force(churn: dict[int, DayChurn], rule: SpikeRule) -> list[tuple[str, int, int]]:
    """(status, raised day, day) of every raise and resolve, days judged in order."""
    out: list[tuple[str, int, int]] = []
    open_since = None
    for day in sorted(churn):
        today = churn[day]
        if today.customers_at_start == 0 or not today.history_complete:
            continue  # churn_rate null, or churn history incomplete: no verdict
        rate = Fraction(today.churned, today.customers_at_start)
        before = [
            Fraction(c.churned, c.customers_at_start)
            for d, c in churn.items()
            if day - rule.baseline_days <= d < day
            and c.customers_at_start > 0
            and c.history_complete
        ]
        if len(before) < rule.min_days:
            continue
        baseline = sum(before) / len(before)
        spike = rate >= baseline * Fraction(str(rule.factor)) and today.churned >= rule.min_churned
        if spike and open_since is None:
            open_since = day
            out.append(("raised", day, day))
        elif not spike and open_since is not None:
            out.append(("resolved", open_since, day))
            open_since = None
    return out


def detector(churn: dict[int, DayChurn], rule: SpikeRule) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    open_since = None
    for day in sorted(churn):
        open_since, change = step(open_since, judge(day, churn, rule))
        if change is not None:
            out.append((change.status, change.raised_day, change.verdict.day))
    return out


days = st.dictionaries(
    st.integers(0, 120),
    st.builds(
        lambda s, share, complete: DayChurn(min(s, round(s * share)), s, complete),
        st.integers(0, 400),
        st.floats(0, 1),
        st.booleans() | st.just(True),
    ),
    max_size=120,
)
rules = st.builds(
    SpikeRule,
    baseline_days=st.integers(1, 40),
    min_days=st.integers(1, 10),
    factor=st.sampled_from([Decimal("1.5"), Decimal("1.25"), Decimal("2"), Decimal("1")]),
    min_churned=st.integers(0, 40),
)


@settings(max_examples=400, deadline=None)
@given(churn=days, rule=rules)
def test_raises_and_resolves_equal_the_brute_force(
    churn: dict[int, DayChurn], rule: SpikeRule
) -> None:
    assert detector(churn, rule) == brute_force(churn, rule)


def steady(first: int, last: int, churned: int = 20, at_start: int = 1000) -> dict[int, DayChurn]:
    return {d: DayChurn(churned, at_start) for d in range(first, last + 1)}


def test_a_worked_example() -> None:
    # 28 days at 2 % churn, then 3 % with 30 churned: exactly 1.5 x the baseline.
    churn = steady(0, 27) | {28: DayChurn(30, 1000), 29: DayChurn(29, 1000), 30: DayChurn(20, 1000)}
    verdict = judge(28, churn, RULE)
    assert verdict.baseline == Fraction(2, 100) and verdict.threshold == Fraction(3, 100)
    assert verdict.spike  # equal to the threshold counts (exact fractions, no float slack)
    # Day 29: its baseline holds day 28's 3 % (mean 2.0357 %, threshold 3.0536 %);
    # 2.9 % is below it, so day 29 resolves the alert.
    day29 = judge(29, churn, RULE)
    assert day29.baseline == Fraction(27 * 20 + 30, 28 * 1000) and not day29.spike
    assert detector(churn, RULE) == [("raised", 28, 28), ("resolved", 28, 29)]


def test_too_few_churned_customers_is_no_spike() -> None:
    churn = steady(0, 27, churned=2, at_start=100) | {28: DayChurn(19, 100)}
    assert not judge(28, churn, RULE).spike


def test_without_seven_days_of_baseline_there_is_no_verdict_and_nothing_changes() -> None:
    churn = steady(0, 5) | {6: DayChurn(300, 1000)}
    verdict = judge(6, churn, RULE)
    assert verdict.baseline is None and not verdict.spike
    assert step(6, verdict) == (6, None)  # an open alert stays open


def test_days_without_customers_at_start_are_left_out_of_the_baseline() -> None:
    churn = steady(0, 27) | {d: DayChurn(0, 0) for d in range(10, 27)} | {28: DayChurn(30, 1000)}
    verdict = judge(28, churn, RULE)
    assert verdict.baseline == Fraction(2, 100)  # 11 days with a rate


def test_a_warm_up_gives_no_verdict_and_stays_out_of_later_baselines() -> None:
    # The stream's first months: churn is 0 until customers can have been inactive
    # for T days, then jumps. Those incomplete days are no spike and no baseline.
    warm_up = {d: DayChurn(0, 1000, history_complete=False) for d in range(0, 30)}
    churn = warm_up | {30: DayChurn(300, 1000, history_complete=False)}
    assert judge(30, churn, RULE).baseline is None
    churn |= steady(31, 37, churned=30) | {38: DayChurn(44, 1000)}
    verdict = judge(38, churn, RULE)
    assert verdict.baseline == Fraction(30, 1000)  # the 7 complete days only
    assert not verdict.spike  # 4.4 % < 4.5 %; with the zeros it would have been one
    assert detector(churn, RULE) == []
