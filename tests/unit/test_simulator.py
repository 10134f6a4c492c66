"""Tests for the deterministic loyalty traffic simulator."""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_pulse_dev.demo import DEMO_SEED, program_economics
from loyalty_pulse_dev.simulator import (
    DAY_MS,
    EARN_RATE,
    POINT_VALUE,
    REWARDS,
    SimulationConfig,
    event_time_ms,
    generate,
    to_json_line,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
START_MS = int(START.timestamp()) * 1000
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")
CHANNEL = re.compile(r"[a-z0-9_-]{1,32}\Z")
Event = dict[str, object]
NAIVE_2000 = datetime(2000, 1, 1, tzinfo=UTC).replace(tzinfo=None)  # hypothesis wants naive bounds
NAIVE_2100 = datetime(2100, 1, 1, tzinfo=UTC).replace(tzinfo=None)


@cache
def run(**kw: object) -> tuple[Event, ...]:
    """Events of one config, cached across tests (tests must not mutate them)."""
    return tuple(generate(SimulationConfig(start=START, **kw)))  # type: ignore[arg-type]


def cents_exact(x: object) -> bool:
    return (
        isinstance(x, float | int)
        and not isinstance(x, bool)
        and math.isfinite(x)
        and (
            Decimal(repr(x)).as_tuple().exponent >= -2  # type: ignore[operator]
        )
    )


def check_common(e: Event) -> None:
    for key in ("event_id", "customer_id"):
        value = e[key]
        assert isinstance(value, str) and 1 <= len(value) <= 128
    ts = e["occurred_at"]
    assert isinstance(ts, str) and TS.match(ts), ts
    parsed = datetime.fromisoformat(ts)
    assert parsed.utcoffset() == timedelta(0)
    assert event_time_ms(e) == round(parsed.timestamp() * 1000)
    assert orjson.loads(to_json_line(e)) == e
    assert to_json_line(e).endswith(b"\n") and to_json_line(e).count(b"\n") == 1


def check_purchase(e: Event) -> None:
    amount = e["amount"]
    assert cents_exact(amount) and 0 <= amount <= 1e9  # type: ignore[operator]
    assert e.get("currency", "USD") == "USD"
    channel = e.get("channel", "unknown")
    assert isinstance(channel, str) and CHANNEL.match(channel)
    assert channel in {"pos", "web", "app"}
    store = e.get("store_id")
    assert (store is not None) == (channel == "pos")
    assert store is None or (isinstance(store, str) and len(store) <= 64)
    points = e.get("points_earned", 0)
    assert isinstance(points, int) and not isinstance(points, bool) and points >= 0


def check_event(e: Event) -> None:
    check_common(e)
    kind = e["type"]
    if kind == "purchase":
        check_purchase(e)
    elif kind == "enrollment":
        assert e["cohort"] in {"member", "control"}
        # a tier only on a member enrollment
        assert ("tier" in e) == (e["cohort"] == "member")
        assert e.get("tier", "bronze") in EARN_RATE
    else:
        assert kind == "redemption"
        points = e["points"]
        assert isinstance(points, int) and not isinstance(points, bool) and points > 0
        assert points in REWARDS and e.get("reward_value") == REWARDS[points]
        assert "reward_value" not in e or cents_exact(e["reward_value"])


def check_stream(events: Iterable[Event]) -> None:
    """Well-formed, ordered, unique ids, and a consistent points ledger."""
    cohort: dict[str, str] = {}
    tier: dict[str, str] = {}
    balance: Counter[str] = Counter()
    seen: set[str] = set()
    last = -math.inf
    for e in events:
        check_event(e)
        assert e["event_id"] not in seen
        seen.add(e["event_id"])  # type: ignore[arg-type]
        t = event_time_ms(e)
        assert t >= last
        last = t
        cid = str(e["customer_id"])
        if e["type"] == "enrollment":
            assert not (cohort.get(cid) == "member" and e["cohort"] == "control")
            cohort[cid] = str(e["cohort"])
            tier[cid] = str(e.get("tier", ""))
        elif e["type"] == "purchase":
            if "points_earned" in e:
                assert cohort.get(cid) == "member"
                base = int(int(e["amount"]) * EARN_RATE[tier[cid]])  # type: ignore[call-overload]
                assert e["points_earned"] in (base, 2 * base)  # double points on some orders
                balance[cid] += e["points_earned"]  # type: ignore[operator]
        else:
            assert cohort.get(cid) == "member"
            assert e["points"] <= balance[cid]  # type: ignore[operator]
            balance[cid] -= e["points"]  # type: ignore[operator]


def purchases_per_day(events: Iterable[Event], lo: int, hi: int) -> float:
    """Mean daily purchases with event time in [lo, hi) (epoch ms)."""
    n = sum(1 for e in events if e["type"] == "purchase" and lo <= event_time_ms(e) < hi)
    return n / ((hi - lo) / DAY_MS)


def test_equal_seeds_give_identical_sequences() -> None:
    cfg = SimulationConfig(customers=300, seed=7, start=START, days=120)
    assert list(generate(cfg)) == list(generate(cfg))
    assert list(generate(cfg)) != list(
        generate(SimulationConfig(customers=300, seed=8, start=START, days=120))
    )


def test_long_run_is_well_formed_and_ledger_consistent() -> None:
    events = run(customers=500, days=400)
    assert len(events) > 10_000
    check_stream(events)
    assert {e["type"] for e in events} == {"purchase", "enrollment", "redemption"}
    purchases = [e for e in events if e["type"] == "purchase"]
    assert {"USD"} == {e.get("currency") for e in purchases} - {None}
    assert any("currency" not in e for e in purchases)
    redemptions = [e for e in events if e["type"] == "redemption"]
    assert any("reward_value" in e for e in redemptions)
    assert any("reward_value" not in e for e in redemptions)


def test_repeat_buyers_and_churned_customers_exist() -> None:
    events = run(customers=500, days=400)
    purchases = [e for e in events if e["type"] == "purchase"]
    counts = Counter(e["customer_id"] for e in purchases)
    assert sum(1 for n in counts.values() if n >= 2) > 100
    last: dict[object, int] = {e["customer_id"]: event_time_ms(e) for e in purchases}
    end = START_MS + 400 * DAY_MS
    stopped = sum(1 for t in last.values() if t < end - 120 * DAY_MS)
    assert stopped >= 20
    first = {e["customer_id"]: event_time_ms(e) for e in reversed(purchases)}
    assert sum(1 for t in first.values() if t > START_MS + 60 * DAY_MS) >= 50  # late joiners


def test_enrollment_and_control_shares() -> None:
    events = run(customers=2000, days=200)
    customers = {e["customer_id"] for e in events}
    enrolled = Counter(e["cohort"] for e in events if e["type"] == "enrollment")
    assert 0.3 < sum(enrolled.values()) / len(customers) < 0.75
    assert 0.05 < enrolled["control"] / sum(enrolled.values()) < 0.2
    history: dict[object, list[object]] = {}
    for e in events:
        if e["type"] == "enrollment":
            history.setdefault(e["customer_id"], []).append(e["cohort"])
    assert any(h == ["control", "member"] for h in history.values())  # rare segment switch
    assert all(h in (["member"], ["control"], ["control", "member"]) for h in history.values())


def test_days_bound_is_respected() -> None:
    events = run(customers=500, days=400)
    times = [event_time_ms(e) for e in events]
    assert START_MS <= min(times) and max(times) < START_MS + 400 * DAY_MS
    assert max(times) > START_MS + 399 * DAY_MS
    assert list(generate(SimulationConfig(customers=50, start=START, days=0))) == []
    short = list(generate(SimulationConfig(customers=50, start=START, days=0.5)))
    assert all(event_time_ms(e) < START_MS + DAY_MS // 2 for e in short)


def test_endless_stream_keeps_flowing() -> None:
    cfg = SimulationConfig(customers=20, start=START)
    events = list(itertools.islice(generate(cfg), 5000))
    assert len(events) == 5000
    assert event_time_ms(events[-1]) - START_MS > 5 * 365 * DAY_MS
    late = events[-1000:]
    assert sum(1 for e in late if e["type"] == "purchase") > 500


def test_churn_spike_drops_purchases() -> None:
    spike = date(2024, 6, 1)
    lo = START_MS + (spike - START.date()).days * DAY_MS
    window = (lo, lo + 14 * DAY_MS)
    before = (lo - 28 * DAY_MS, lo)
    spiked = run(customers=2000, days=200, churn_spike_at=spike, spike_strength=0.5)
    calm = run(customers=2000, days=200)
    ratio = purchases_per_day(spiked, *window) / purchases_per_day(spiked, *before)
    calm_ratio = purchases_per_day(calm, *window) / purchases_per_day(calm, *before)
    assert ratio < 0.75 < 0.9 < calm_ratio

    def without_ids(events: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in e.items() if k != "event_id"} for e in events]

    # identical until the spike, but other ids: another config is another run
    head = len(spiked) // 3
    assert without_ids(spiked[:head]) == without_ids(calm[:head])
    assert not {e["event_id"] for e in spiked} & {e["event_id"] for e in calm}

    check_stream(spiked)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SimulationConfig(start=datetime(2024, 1, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError):
        SimulationConfig(start=START, control_share=1.5)
    with pytest.raises(ValueError):
        SimulationConfig(start=START, days=-1)
    default = SimulationConfig()
    assert default.start.tzinfo is not None and default.start.hour == 0


def test_non_utc_start_and_event_time_helpers() -> None:
    start = datetime(2024, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    events = list(generate(SimulationConfig(customers=30, start=start, days=3)))
    assert events and min(event_time_ms(e) for e in events) >= START_MS
    assert event_time_ms({"occurred_at": 1_700_000_000_123}) == 1_700_000_000_123
    with pytest.raises(ValueError):
        event_time_ms({"occurred_at": "2024-01-01T00:00:00+00:00"})


@settings(max_examples=60, deadline=None, database=None)
@given(
    customers=st.integers(1, 50),
    seed=st.integers(0, 2**32),
    days=st.floats(1, 60),
    shares=st.tuples(*[st.floats(0, 1)] * 4),
    start=st.datetimes(NAIVE_2000, NAIVE_2100, timezones=st.just(UTC)),
    spike_offset=st.none() | st.integers(-10, 60),
)
def test_small_random_configs_are_well_formed(
    customers: int,
    seed: int,
    days: float,
    shares: tuple[float, float, float, float],
    start: datetime,
    spike_offset: int | None,
) -> None:
    control, enroll, web, strength = shares
    spike = None if spike_offset is None else start.date() + timedelta(days=spike_offset)
    cfg = SimulationConfig(
        customers=customers,
        seed=seed,
        start=start,
        days=days,
        control_share=control,
        enrollment_share=enroll,
        web_share=web,
        churn_spike_at=spike,
        spike_strength=strength,
    )
    events = list(generate(cfg))
    check_stream(events)
    start_ms = (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert all(start_ms <= event_time_ms(e) < start_ms + days * DAY_MS for e in events)


# -- the demo's year -----------------------------------------------------------


def demo_year() -> tuple[Event, ...]:
    """A year of the demo's traffic: its population and seed (the demo starts a year ago)."""
    return run(customers=5000, seed=DEMO_SEED, days=365)


def test_demo_year_fills_tiers_stores_cohorts_and_second_purchases() -> None:
    events = demo_year()
    enrollments = [e for e in events if e["type"] == "enrollment"]
    tiers = Counter(e["tier"] for e in enrollments if e["cohort"] == "member")
    assert set(tiers) == {"bronze", "silver", "gold"}
    assert tiers["bronze"] > tiers["silver"] > tiers["gold"] > 0.05 * tiers.total()
    cohorts = Counter(e["cohort"] for e in enrollments)
    assert 0.07 < cohorts["control"] / cohorts.total() < 0.13  # ~10 % of enrollees held out

    purchases = [e for e in events if e["type"] == "purchase"]
    stores = Counter(str(e["store_id"]) for e in purchases if "store_id" in e)
    assert 25 <= len(stores) <= 40
    sizes = sorted(stores.values())
    assert sizes[-1] > 4 * sizes[0]  # a flagship and small stores
    assert 0.3 < sum(1 for e in purchases if "store_id" not in e) / len(purchases) < 0.7

    days: dict[object, list[int]] = {}
    for e in purchases:
        days.setdefault(e["customer_id"], []).append((event_time_ms(e) - START_MS) // DAY_MS)
    once = sum(1 for d in days.values() if len(d) == 1)
    assert 0.1 < once / len(days) < 0.4  # customers who bought once and never came back
    # every monthly cohort (month of the first purchase) fills
    first_months = Counter(min(d) * 12 // 365 for d in days.values())
    assert len(first_months) == 12 and min(first_months.values()) > 150
    to_second = [d[1] - d[0] for d in days.values() if len(d) >= 2]
    assert 7 <= statistics.median(to_second) <= 45


def test_demo_year_economics_are_believable() -> None:
    """Spec §3.4 and §3.6 by hand over the demo's first year (one 365-day window
    holds it all), with the margin and running cost the demo gives its worker.

    Members spend modestly more than the control group, rewards cost a few percent
    of what members spend, and the ROI lands in the tens to hundreds of percent,
    not in the thousands. The old model (members bought 25 % more often, 1 point
    per dollar) gave an ROI of 6 to 11 with this margin and running cost (near 40
    with the default margin of 1 and no running cost), rewards 0.6 % of member
    revenue. At this population the lift is noisy (10 % of enrollees, ~350, are
    control): across seeds the year's ROI spreads by about +-1; the demo's seed
    is a representative year, near the model's expectation (~1).
    """
    economics = program_economics(5000)
    margin = float(economics["margin"])
    fixed_per_day = float(economics["program_fixed_cost_per_day"])
    segment: dict[object, object] = {}
    revenue: Counter[object] = Counter()  # cents
    rewards = 0.0
    for e in demo_year():
        if e["type"] == "enrollment":
            segment[e["customer_id"]] = e["cohort"]  # the latest enrollment wins
        elif e["type"] == "purchase":
            revenue[e["customer_id"]] += round(e["amount"] * 100)  # type: ignore[operator]
        else:
            rewards += e.get("reward_value", e["points"] * POINT_VALUE)  # type: ignore[operator]
    # intention to treat: every member and every control customer counts
    member = [revenue[c] / 100 for c, s in segment.items() if s == "member"]
    control = [revenue[c] / 100 for c, s in segment.items() if s == "control"]
    assert len(member) > 2500 and len(control) > 250
    per_member, per_control = statistics.fmean(member), statistics.fmean(control)
    difference = per_member - per_control
    se = math.sqrt(
        statistics.variance(member) / len(member) + statistics.variance(control) / len(control)
    )
    assert 0.03 < difference / per_control < 0.25  # a modest lift ...
    assert 0.5 * difference < 1.96 * se  # ... and a noisy one: the interval is wide

    reward_share = rewards / sum(member)
    assert 0.01 < reward_share < 0.05
    program_cost = rewards + fixed_per_day * 365
    assert 0.05 < fixed_per_day * 365 / program_cost < 0.5

    def roi(per_member_difference: float) -> float:
        return (margin * per_member_difference * len(member) - program_cost) / program_cost

    assert 0.2 < roi(difference) < 4.0
    low, high = roi(difference - 1.96 * se), roi(difference + 1.96 * se)
    assert low < roi(difference) < high < 5
