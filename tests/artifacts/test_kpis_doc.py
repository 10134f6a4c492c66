"""docs/kpis.md is right: its worked example is what the reference and the engine compute.

The example's events and settings are embedded here and must match the doc's
event table, JSON Lines block and settings table. Every number the doc states
for the example — the full JSON document of section 5.4, each row of the
arithmetic tables of 5.2 and 5.3 (marked ``<!-- kpi-table: prefix -->``) and
each intermediate step of the lift (``<!-- lift-steps -->``) — is compared
with the brute-force reference (tests/kpi_reference.py) and with the
incremental engine (stream_app/kpi/), floats to 1e-9 relative, and each row's
arithmetic is evaluated too. The side claims made in prose are recomputed, and
the recipes of section 6 are run on the example.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from stream_app.contract import (
    ContractConfig,
    Enrollment,
    Event,
    EventType,
    Purchase,
    Redemption,
    decode_object,
)
from stream_app.kpi.days import business_day, from_date
from stream_app.kpi.engine import KpiPartition
from stream_app.kpi.params import KpiParams
from stream_app.kpi.report import Report, annual_churn, kpi_document
from stream_app.kpi.spike import DayChurn, SpikeRule, judge
from stream_app.kpi.terms import KpiTerms
from stream_app.settings import Settings, settings_table
from tests import kpi_reference as ref
from tests.unit.test_kpi_engine import assert_same

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "kpis.md").read_text(encoding="utf-8")
PROSE = " ".join(DOC.split())  # line breaks as spaces, for claims made in running text
AS_OF = date(2025, 3, 14)
WINDOW = 7  # the example's one window, so also W_max
# The example's settings (section 5's table): the rest are the defaults.
SHRUNK: dict[str, Any] = {
    "windows": (WINDOW,),
    "churn_period": 3,
    "inactivity": 5,
    "margin": Decimal("0.5"),
    "program_fixed_cost_per_day": Decimal("1"),
    "cohort_months": 2,
}
PARAMS = KpiParams(**SHRUNK)
REF_PARAMS = ref.KpiParams(**SHRUNK)
Json = dict[str, Any]


def at(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def buy(
    eid: str,
    customer: str,
    stamp: str,
    cents: int,
    channel: str,
    points: int = 0,
    store: str | None = None,
) -> Purchase:
    return Purchase(eid, customer, at(stamp), cents, eid, channel, store, points)


def enroll(eid: str, customer: str, stamp: str, cohort: str, tier: str | None = None) -> Enrollment:
    return Enrollment(eid, customer, at(stamp), cohort, tier)


EVENTS: list[Event] = [
    enroll("ev01", "ann", "2025-02-20T09:00:00Z", "member", "gold"),
    enroll("ev02", "ben", "2025-02-21T09:00:00Z", "control"),
    enroll("ev03", "eve", "2025-02-22T09:00:00Z", "control"),
    enroll("ev04", "fay", "2025-02-23T09:00:00Z", "member", "silver"),
    buy("ev05", "ann", "2025-02-24T10:00:00Z", 4000, "pos", 40, "s1"),
    buy("ev06", "fay", "2025-02-25T10:00:00Z", 3000, "pos", 30, "s2"),
    buy("ev07", "ben", "2025-03-01T10:00:00Z", 3000, "pos", 0, "s1"),
    buy("ev08", "cat", "2025-03-02T10:00:00Z", 1200, "app"),
    buy("ev09", "ben", "2025-03-08T10:00:00Z", 2000, "pos", 0, "s1"),
    buy("ev10", "ann", "2025-03-09T10:00:00Z", 2500, "web", 25),
    buy("ev11", "cat", "2025-03-09T18:00:00Z", 1800, "app"),
    buy("ev12", "gus", "2025-03-11T10:00:00Z", 800, "pos", 0, "s2"),
    buy("ev13", "gus", "2025-03-11T16:00:00Z", 650, "pos", 0, "s2"),
    buy("ev14", "dan", "2025-03-12T10:00:00Z", 1000, "web"),
    Redemption("ev15", "ann", at("2025-03-12T11:00:00Z"), 50, reward_value_minor=75),
    enroll("ev16", "dan", "2025-03-13T09:00:00Z", "member"),
    buy("ev17", "ann", "2025-03-13T10:00:00Z", 1700, "pos", 17, "s1"),
    buy("ev18", "dan", "2025-03-14T10:00:00Z", 2000, "web", 20),
    Redemption("ev19", "dan", at("2025-03-14T12:00:00Z"), 10),
]


# -- the two implementations ---------------------------------------------------


def day_of(event: Event, params: KpiParams = PARAMS) -> int:
    return business_day(event.occurred_ms, params.zone)


def engine_terms(
    events: list[Event], as_of: date, params: KpiParams, *, streaming: bool
) -> KpiTerms:
    """Close every day up to ``as_of``; events all added first, or day by day."""
    first, last = min(day_of(e, params) for e in events), from_date(as_of)
    part = KpiPartition(params, closed_day=first - 1)
    if not streaming:
        for event in events:
            part.add(event, day_of(event, params))
    totals = KpiTerms()
    for day in range(first, last + 1):
        for event in events:
            if streaming and day_of(event, params) == day:
                part.add(event, day)
        totals = part.close(day)
    return totals


def run_engine(events: list[Event], as_of: date, params: KpiParams, *, streaming: bool) -> Json:
    terms = engine_terms(events, as_of, params, streaming=streaming)
    return kpi_document(terms, from_date(as_of), params)


@cache
def computed(how: str) -> Json:
    if how == "reference":
        return ref.kpis_as_of(EVENTS, AS_OF, REF_PARAMS)
    return run_engine(EVENTS, AS_OF, PARAMS, streaming=how == "engine, day by day")


IMPLEMENTATIONS = ["reference", "engine", "engine, day by day"]


def assert_close(got: Any, want: Any, path: str = "") -> None:
    """Same JSON, floats to 1e-9 relative (and still floats: 2.0 is not 2)."""
    assert_same(got, want, path, strict_types=True)


# -- reading the doc -------------------------------------------------------------


def fenced(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC, re.M | re.S)


def documented() -> Json:
    """The JSON block of section 5.3: the whole document as of D."""
    blocks: list[Json] = [d for d in map(json.loads, fenced("json")) if "as_of" in d]
    [doc] = blocks
    assert doc["as_of"] == AS_OF.isoformat()
    return doc


def marked_table(mark: str) -> Iterator[list[str]]:
    """Body rows (cells) of the Markdown table right after ``<!-- mark -->``."""
    match = re.search(rf"^<!-- {re.escape(mark)} -->\n((?:\|.*\n)+)", DOC, re.M)
    assert match, f"no table marked {mark!r}"
    for line in match.group(1).splitlines()[2:]:
        yield [cell.strip() for cell in line.strip().strip("|").split("|")]


def code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected one `code span`, got {cell!r}"
    return match.group(1)


def worked_rows() -> list[tuple[str, str, Any]]:
    """(JSON path, calculation cell, stated value) of every row of 5.2 and 5.3;
    a list item is written ``name[i]`` in the doc and ``name.i`` in the path."""
    rows = []
    for prefix in re.findall(r"^<!-- kpi-table: ([\w.]+) -->$", DOC, re.M):
        for name, calculation, value in marked_table(f"kpi-table: {prefix}"):
            path = re.sub(r"\[(\d+)\]", r".\1", f"{prefix}.{code(name)}")
            rows.append((path, calculation, json.loads(code(value))))
    return rows


def lookup(doc: Json, path: str) -> Any:
    value: Any = doc
    for key in path.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def leaves(doc: Json | list[Any], prefix: str = "") -> Iterator[str]:
    """Paths of the scalars of a document; list items by index (``rows.0.size``)."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for key, value in items:
        if isinstance(value, dict | list):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


_OPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
ARITHMETIC = re.compile(r"`([0-9.+\-*/() ]+)`")
# `scipy.stats.t.ppf(q, nu)` or `2 * scipy.stats.t.sf(x, nu)`, nu plain arithmetic
SCIPY_T = re.compile(r"`(?:(\d+) \* )?scipy\.stats\.t\.(ppf|sf)\(([0-9.]+), ([0-9.+\-*/() ]+)\)`")


def check_calculation(calculation: str, value: Any, what: str) -> None:
    """The last plain arithmetic of a calculation cell, and any scipy call in it,
    give the stated value."""
    expressions = ARITHMETIC.findall(calculation)
    if expressions:
        result = arithmetic(expressions[-1])
        assert math.isclose(result, value, rel_tol=1e-9), (what, expressions[-1], result)
    for factor, function, x, nu in SCIPY_T.findall(calculation):
        result = int(factor or 1) * getattr(stats.t, function)(float(x), arithmetic(nu))
        assert math.isclose(result, value, rel_tol=1e-9), (what, function, result)


def arithmetic(expression: str) -> float:
    """Evaluate plain arithmetic (numbers, + - * / **, a leading minus, parentheses)
    and nothing else."""

    def walk(node: ast.expr) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](walk(node.left), walk(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(f"not plain arithmetic: {expression!r}")

    return walk(ast.parse(expression, mode="eval").body)


# -- the example's inputs are the doc's ---------------------------------------------


def test_example_events_are_the_doc_table() -> None:
    rows = []
    for event in EVENTS:
        stamp = datetime.fromtimestamp(event.occurred_ms / 1000, tz=UTC)
        row = [event.event_id, stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), event.customer_id]
        if isinstance(event, Purchase):
            money, channel, points = event.amount_minor, event.channel, str(event.points_earned)
            row += ["purchase", f"{money / 100:.2f}", channel, event.store_id or "", points]
        elif isinstance(event, Redemption):
            value = event.reward_value_minor
            row += ["redemption", "" if value is None else f"{value / 100:.2f}", "", ""]
            row += [str(event.points)]
        else:
            assert isinstance(event, Enrollment)
            tier = f", tier {event.tier}" if event.tier else ""
            row += [f"enrollment {event.cohort}{tier}", "", "", "", ""]
        rows.append(row)
    assert list(marked_table("example-events")) == rows


def test_example_settings_are_the_params(monkeypatch: pytest.MonkeyPatch) -> None:
    """Section 5's settings table: the worker's settings give the example's parameters."""
    defaults = {name: default for name, default, _ in settings_table()}
    for name in list(os.environ):
        if name.startswith("LOYALTY_PULSE_"):
            monkeypatch.delenv(name)
    rows = list(marked_table("example-settings"))
    for setting, value, default in rows:
        assert code(default) == defaults[code(setting)], setting
        first = re.match(r"`([^`]+)`", value)
        assert first, value
        monkeypatch.setenv(code(setting), first.group(1))
    assert len(rows) == len(SHRUNK)
    assert Settings().kpi_params == PARAMS


def test_example_jsonl_decodes_to_the_example_events() -> None:
    [block] = fenced("jsonl")
    decoded = []
    for line in block.splitlines():
        obj = json.loads(line)
        decoded.append(decode_object(EventType(obj["type"]), obj, 2**62, ContractConfig()))
    assert decoded == EVENTS


def test_customer_facts_of_the_example() -> None:
    """Section 5.1's per-customer table, recomputed from the events."""
    months = {"Feb": 2, "Mar": 3}

    def when(text: str) -> int | None:
        if text == "none":
            return None
        month, day = text.split()
        return from_date(date(2025, months[month], int(day)))

    d, p, t = from_date(AS_OF), PARAMS.churn_period, PARAMS.inactivity
    assert AS_OF - timedelta(days=p) == date(2025, 3, 11)
    rows = list(marked_table("example-customers"))
    assert [row[0] for row in rows] == sorted({e.customer_id for e in EVENTS})
    for name, segment, tier, *facts, first, base in rows:
        mine = [e for e in EVENTS if e.customer_id == name]
        buys = [(day_of(e), e) for e in mine if isinstance(e, Purchase)]
        joins = [e for e in mine if isinstance(e, Enrollment) and day_of(e) <= d]
        latest = max(joins, key=lambda e: (e.occurred_ms, e.event_id), default=None)
        assert segment == ("non_member" if latest is None else latest.cohort), name
        member_tier = latest.tier if latest is not None and latest.cohort == "member" else None
        assert tier == (member_tier or "–"), name
        active = {}
        for i, x in enumerate((d - p, d - 1, d)):
            last = max((day for day, _ in buys if day <= x), default=None)
            active[x] = last is not None and last > x - t
            assert when(facts[2 * i]) == last, (name, x)
            assert facts[2 * i + 1] == ("yes" if active[x] else "no"), (name, x)
        assert when(first) == min((day for day, _ in buys), default=None), name
        cents = sum(e.amount_minor for day, e in buys if d - p - t < day <= d - p)
        assert base == (f"${cents / 100:.2f}" if active[d - p] else "–"), name


# -- every number the doc states -------------------------------------------------


@pytest.mark.parametrize("how", IMPLEMENTATIONS)
def test_documented_document_is_what_the_code_computes(how: str) -> None:
    assert_close(computed(how), documented())


@pytest.mark.parametrize(
    ("path", "calculation", "value"), worked_rows(), ids=[row[0] for row in worked_rows()]
)
def test_worked_number(path: str, calculation: str, value: Any) -> None:
    assert_close(lookup(documented(), path), value, path)
    for how in IMPLEMENTATIONS:
        assert_close(lookup(computed(how), path), value, f"{how}: {path}")
    check_calculation(calculation, value, path)


def test_scipy_calls_of_the_doc_are_checked() -> None:
    """The t quantile and the p-value of 5.3 are stated as scipy calls."""
    calls = SCIPY_T.findall(DOC)
    assert sorted(function for _, function, _, _ in calls) == ["ppf", "sf"]


def test_worked_tables_cover_every_kpi() -> None:
    paths = [row[0] for row in worked_rows()]
    assert len(paths) == len(set(paths))
    assert set(paths) == set(leaves(documented())) - {"as_of", "currency"}


# -- the lift, step by step (section 5.3) ------------------------------------------


def lift_groups() -> dict[str, tuple[str, int]]:
    """The example's lift groups recomputed from the events, straight from spec
    §3.6: customer -> (group, revenue in the window in cents)."""
    d = from_date(AS_OF)
    latest: dict[str, Enrollment] = {}
    for e in EVENTS:
        if isinstance(e, Enrollment) and day_of(e) <= d:
            held = latest.get(e.customer_id)
            if held is None or (e.occurred_ms, e.event_id) > (held.occurred_ms, held.event_id):
                latest[e.customer_id] = e
    controls = [c for c, e in latest.items() if e.cohort == "control"]
    baseline = "control" if len(controls) >= 2 else "non_member"
    revenue: dict[str, int] = {}
    buyers = set()
    for e in EVENTS:
        if isinstance(e, Purchase) and day_of(e) <= d:
            buyers.add(e.customer_id)
            if day_of(e) > d - WINDOW:
                revenue[e.customer_id] = revenue.get(e.customer_id, 0) + e.amount_minor
    groups = {}
    for customer in sorted({e.customer_id for e in EVENTS}):
        segment = latest[customer].cohort if customer in latest else "non_member"
        if segment == "non_member" and customer not in buyers:
            continue
        if segment in ("member", baseline):
            groups[customer] = (segment, revenue.get(customer, 0))
    return groups


def test_lift_groups_are_the_example_customers_with_their_revenue() -> None:
    rows = list(marked_table("lift-groups"))
    stated = {name: (group, round(float(x) * 100)) for name, group, x in rows}
    assert stated == lift_groups()
    assert [g for _, g, _ in rows] == sorted((g for _, g, _ in rows), key=lambda g: g != "member")
    # the engine's sums over the same groups: n, sum and sum of squares
    lift = Report(engine_terms(EVENTS, AS_OF, PARAMS, streaming=False), PARAMS).lift(WINDOW)
    assert lift.baseline == documented()["windows"]["7d"]["lift"]["baseline"]
    for sample, group in ((lift.members, "member"), (lift.base, lift.baseline)):
        xs = [x for g, x in stated.values() if g == group]
        assert (sample.n, sample.total, sample.squares) == (
            len(xs),
            sum(xs),
            sum(x * x for x in xs),
        ), group


@cache
def lift_steps_from_code() -> dict[str, float]:
    """The intermediate numbers of spec §3.6, from the engine's sums (minor units
    converted to dollars), its t quantile and standard error."""
    lift = Report(engine_terms(EVENTS, AS_OF, PARAMS, streaming=False), PARAMS).lift(WINDOW)
    m, b, scale = lift.members, lift.base, 10**PARAMS.minor_digits
    test = lift._test
    assert test is not None and m.mean is not None and b.mean is not None
    quantile, se, _ = test
    vm, vb = m.variance_of_mean, b.variance_of_mean
    nu = float((vm + vb) ** 2 / (vm**2 / (m.n - 1) + vb**2 / (b.n - 1)))
    assert math.isclose(quantile, stats.t.ppf((1 + 0.95) / 2, nu), rel_tol=1e-12)
    d = m.mean - b.mean
    return {
        "mean_m": float(m.mean / scale),
        "s2_m": float(vm * m.n / scale**2),
        "mean_b": float(b.mean / scale),
        "s2_b": float(vb * b.n / scale**2),
        "s2_m / n_m": float(vm / scale**2),
        "s2_b / n_b": float(vb / scale**2),
        "se": se / scale,
        "nu": nu,
        "t": quantile,
        "t * se": quantile * se / scale,
        "d / se": float(d) / se,
    }


def lift_steps() -> list[tuple[str, str, float]]:
    return [(code(n), c, json.loads(code(v))) for n, c, v in marked_table("lift-steps")]


def test_lift_steps_are_every_step() -> None:
    assert [name for name, _, _ in lift_steps()] == list(lift_steps_from_code())


@pytest.mark.parametrize(
    ("step", "calculation", "value"), lift_steps(), ids=[row[0] for row in lift_steps()]
)
def test_lift_step(step: str, calculation: str, value: float) -> None:
    assert math.isclose(lift_steps_from_code()[step], value, rel_tol=1e-9), step
    check_calculation(calculation, value, step)
    # the reference's interval is the same d -/+ t se
    if step == "t * se":
        lift = ref.lift_as_of(EVENTS, AS_OF, WINDOW, REF_PARAMS)
        assert math.isclose((lift["ci_high"] - lift["ci_low"]) / 2, value, rel_tol=1e-9)


# -- claims made in prose ------------------------------------------------------------


def both(events: list[Event], day: date, **changes: Any) -> list[Json]:
    """The document as of ``day`` by the reference and the engine, with the
    example's parameters changed as given."""
    reference = ref.kpis_as_of(events, day, replace(REF_PARAMS, **changes))
    return [reference, run_engine(events, day, replace(PARAMS, **changes), streaming=False)]


def test_side_claims() -> None:
    # 3.3: 0.02 per 30 days -> annual 0.2179, lifetime 4.59 years
    annual = annual_churn(Fraction(2, 100), 30)
    assert (round(annual, 4), round(1 / annual, 2)) == (0.2179, 4.59)
    assert "≈ 0.2179" in DOC and "≈ 4.59" in DOC
    # 5.2: (1/2)^(365/3) ≈ 2.4e-37
    assert f"{(1 / 2) ** (365 / 3):.1e}" == "2.4e-37" and "2.4 × 10⁻³⁷" in DOC
    # choice 9: 3 points at half a cent cost 0.015, not rounded to 0.02
    events: list[Event] = [Redemption("r1", "x", at("2025-03-14T10:00:00Z"), 3)]
    half = KpiParams(windows=(7,), point_value=Decimal("0.005"))
    engine = run_engine(events, AS_OF, half, streaming=False)
    reference = ref.kpis_as_of(events, AS_OF, ref.KpiParams(point_value_minor=Fraction(1, 2)))
    assert engine["program"]["program_cost"] == reference["program"]["program_cost"] == 0.015
    assert "`0.015`, not `0.02`" in DOC


def test_warm_up_claims() -> None:
    # 3.2: with the defaults the first P + T - 1 = 119 days are a warm-up
    defaults = KpiParams()
    assert defaults.churn_period + defaults.inactivity - 1 == 119
    assert "for the first 119 days of the stream" in PROSE
    # 5.1 / 5.2: F = Feb 20 (an enrollment); complete from Feb 27 on, not on Feb 26
    assert ref.first_day(EVENTS, REF_PARAMS) == date(2025, 2, 20)
    assert isinstance(EVENTS[0], Enrollment) and day_of(EVENTS[0]) == from_date(date(2025, 2, 20))
    for day, complete in ((date(2025, 2, 26), False), (date(2025, 2, 27), True)):
        for doc in both(EVENTS, day):
            assert doc["churn"]["history_complete"] is doc["clv"]["history_complete"] is complete
    assert "from Feb 27 on" in PROSE and "As of Feb 26 or any earlier day" in PROSE
    # 3.2: a day whose history is incomplete gets no verdict, and is no baseline day
    rule = SpikeRule(baseline_days=28, min_days=7)
    steady = {day: DayChurn(1, 100) for day in range(100, 128)}
    spike = DayChurn(50, 100)
    assert judge(128, {**steady, 128: spike}, rule).spike
    warm_up_day = replace(spike, history_complete=False)
    assert judge(128, {**steady, 128: warm_up_day}, rule).baseline is None
    warming = {day: replace(c, history_complete=False) for day, c in steady.items()}
    assert judge(128, {**warming, 128: spike}, rule).baseline is None


def test_lift_and_roi_claims() -> None:
    doc = documented()
    lift, segments = doc["windows"]["7d"]["lift"], doc["windows"]["7d"]["segments"]
    program = doc["program"]
    # 5.3 "Reading it"
    assert f"(+{lift['relative_lift'] * 100:.0f} %)" in PROSE
    low, high = lift["ci_low"], lift["ci_high"]
    assert f"runs from −${-low:.2f} to +${high:.2f}" in PROSE
    assert low < 0 < high and lift["p_value"] > 1 - float(PARAMS.lift_confidence)
    assert f"p ≈ {lift['p_value']:.2f}" in PROSE
    # buyers only: the members' and control's revenue per active customer
    member = segments["member"]["revenue"] / segments["member"]["active_customers"]
    control = segments["control"]["revenue"] / segments["control"]["active_customers"]
    assert (member, control, member - control) == (36.0, 20.0, 16.0)
    assert "members $36.00 each (72.00 / 2), control $20.00, a difference of $16.00" in PROSE
    # LOYALTY_PULSE_LIFT_CONFIDENCE=0.9
    for changed in both(EVENTS, AS_OF, lift_confidence=Decimal("0.9")):
        narrow = changed["windows"]["7d"]["lift"]
        assert (round(narrow["ci_low"], 2), round(narrow["ci_high"], 2)) == (-23.88, 51.88)
    nu = lift_steps_from_code()["nu"]
    assert f"t ≈ {stats.t.ppf(0.95, nu):.3f} and the interval narrower, −$23.88" in PROSE
    # the program's reading
    assert f"An ROI of {program['roi']:.2f}" in PROSE
    assert f"{program['roi'] - 1:.0%}" == "68%" and "its cost plus 168 %" in PROSE
    roi_low, roi_high = program["roi_ci"]
    assert f"the interval, −{-roi_low:.2f} … +{roi_high:.2f}," in PROSE
    assert sum(lift[k] for k in ("members", "baseline_customers")) == 5
    # W_max = 365 (the default windows): a year of running cost against three weeks
    for year in both(EVENTS, AS_OF, windows=(30, 90, 365)):
        assert year["program"]["program_cost"] == 365.85
        assert round(year["program"]["roi"], 2) == -0.91
        assert year["program"]["roi_ci"][1] < 0
        assert round(year["windows"]["365d"]["lift"]["difference"], 2) == 22.33
    assert "($365.85 in all), and the ROI would be −0.91" in PROSE
    assert "grows to $22.33 in the longer window" in PROSE
    assert "its ROI is −0.91" in PROSE


def test_settings_named_in_the_doc_exist_with_their_defaults() -> None:
    settings = {name: default for name, default, _ in settings_table()}
    named = set(re.findall(r"LOYALTY_PULSE_[A-Z0-9_]+", DOC))
    assert named <= settings.keys(), sorted(named - settings.keys())
    rows = {code(cells[1]): code(cells[2]) for cells in marked_table("kpi-settings")}
    assert rows == {name: settings[name] for name in rows}


# -- the recipes of section 6 -------------------------------------------------------


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    [block] = fenced("jsonl")
    (tmp_path / "events.jsonl").write_text(block, encoding="utf-8")
    return tmp_path


def test_python_recipe_prints_the_documented_document(events_file: Path) -> None:
    [script] = fenced("python")
    (events_file / "recompute.py").write_text(script, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "recompute.py"],
        cwd=events_file,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert_close(json.loads(done.stdout), documented())


def test_jq_recipe_prints_the_documented_window(events_file: Path) -> None:
    jq = shutil.which("jq")
    assert jq is not None, "jq is not installed: ./dev setup installs it"
    [command] = [block for block in fenced("sh") if block.startswith("jq ")]
    argv = shlex.split(command)
    done = subprocess.run(
        [jq, *argv[1:]], cwd=events_file, capture_output=True, text=True, check=True, timeout=60
    )
    printed = json.loads(done.stdout)
    [stated] = [d for d in map(json.loads, fenced("json")) if "as_of" not in d and "aov" in d]
    assert printed.keys() == stated.keys() == {"orders", "revenue", "active_customers", "aov"}
    window = documented()["windows"]["7d"]
    for key, value in stated.items():
        assert math.isclose(printed[key], value, rel_tol=1e-9), key
        assert_close(window[key], value, key)
