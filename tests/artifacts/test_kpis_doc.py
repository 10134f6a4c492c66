"""docs/kpis.md is right: its worked example is what the reference and the engine compute.

The example's events are embedded here as contract objects and must match the
doc's event table and JSON Lines block. Every number the doc states for the
example — the full JSON document of section 5.3 and each row of the arithmetic
tables of 5.2 (marked ``<!-- kpi-table: prefix -->``) — is compared with the
brute-force reference (tests/kpi_reference.py) and with the incremental engine
(stream_app/kpi/), floats to 1e-9 relative, and each row's arithmetic is
evaluated too. The recipes of section 6 are run on the example.
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
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import pytest

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
from stream_app.kpi.report import annual_churn, kpi_document
from stream_app.settings import settings_table
from tests import kpi_reference as ref

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "kpis.md").read_text(encoding="utf-8")
AS_OF = date(2025, 3, 14)
PARAMS = KpiParams(windows=(7,), churn_period=3, inactivity=5)
REF_PARAMS = ref.KpiParams(windows=(7,), churn_period=3, inactivity=5)
Json = dict[str, Any]


def at(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def buy(eid: str, customer: str, stamp: str, cents: int, channel: str, points: int = 0) -> Purchase:
    return Purchase(eid, customer, at(stamp), cents, eid, channel, points_earned=points)


EVENTS: list[Event] = [
    Enrollment("ev01", "ann", at("2025-02-20T09:00:00Z"), "member"),
    Enrollment("ev02", "ben", at("2025-02-21T09:00:00Z"), "control"),
    buy("ev03", "ann", "2025-02-24T10:00:00Z", 4000, "pos", 40),
    buy("ev04", "ben", "2025-03-01T10:00:00Z", 3000, "pos"),
    buy("ev05", "cat", "2025-03-02T10:00:00Z", 1200, "app"),
    buy("ev06", "ben", "2025-03-08T10:00:00Z", 2000, "pos"),
    buy("ev07", "ann", "2025-03-09T10:00:00Z", 2500, "web", 25),
    buy("ev08", "cat", "2025-03-09T18:00:00Z", 1800, "app"),
    buy("ev09", "dan", "2025-03-12T10:00:00Z", 1000, "web"),
    Redemption("ev10", "ann", at("2025-03-12T11:00:00Z"), 50, reward_value_minor=75),
    Enrollment("ev11", "dan", at("2025-03-13T09:00:00Z"), "member"),
    buy("ev12", "ann", "2025-03-13T10:00:00Z", 1550, "pos", 15),
    buy("ev13", "dan", "2025-03-14T10:00:00Z", 2200, "web", 22),
    Redemption("ev14", "dan", at("2025-03-14T12:00:00Z"), 10),
]


# -- the two implementations ---------------------------------------------------


def day_of(event: Event, params: KpiParams = PARAMS) -> int:
    return business_day(event.occurred_ms, params.zone)


def run_engine(events: list[Event], as_of: date, params: KpiParams, *, streaming: bool) -> Json:
    """Close every day up to ``as_of``; events all added first, or day by day."""
    first, last = min(day_of(e, params) for e in events), from_date(as_of)
    part = KpiPartition(params, closed_day=first - 1)
    if not streaming:
        for event in events:
            part.add(event, day_of(event, params))
    totals: dict[tuple[object, ...], int] = {}
    for day in range(first, last + 1):
        for event in events:
            if streaming and day_of(event, params) == day:
                part.add(event, day)
        totals = part.close(day)
    return kpi_document(totals, last, params)


@cache
def computed(how: str) -> Json:
    if how == "reference":
        return ref.kpis_as_of(EVENTS, AS_OF, REF_PARAMS)
    return run_engine(EVENTS, AS_OF, PARAMS, streaming=how == "engine, day by day")


IMPLEMENTATIONS = ["reference", "engine", "engine, day by day"]


def assert_close(got: Any, want: Any, path: str = "") -> None:
    """Same JSON, floats to 1e-9 relative (and still floats: 2.0 is not 2)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), (path, got, want)
        for key in want:
            assert_close(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, float):
        assert isinstance(got, float), (path, got, want)
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (path, got, want)
    else:
        assert type(got) is type(want) and got == want, (path, got, want)


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
    """(JSON path, calculation cell, stated value) of every row of 5.2."""
    rows = []
    for prefix in re.findall(r"^<!-- kpi-table: ([\w.]+) -->$", DOC, re.M):
        for name, calculation, value in marked_table(f"kpi-table: {prefix}"):
            rows.append((f"{prefix}.{code(name)}", calculation, json.loads(code(value))))
    return rows


def lookup(doc: Json, path: str) -> Any:
    value: Any = doc
    for key in path.split("."):
        value = value[key]
    return value


def leaves(doc: Json, prefix: str = "") -> Iterator[str]:
    for key, value in doc.items():
        if isinstance(value, dict):
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


def arithmetic(expression: str) -> float:
    """Evaluate plain arithmetic (numbers, + - * / **, parentheses) and nothing else."""

    def walk(node: ast.expr) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](walk(node.left), walk(node.right)))
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
            row += ["purchase", f"{money / 100:.2f}", channel, points]
        elif isinstance(event, Redemption):
            value = event.reward_value_minor
            row += ["redemption", "" if value is None else f"{value / 100:.2f}", ""]
            row += [str(event.points)]
        else:
            assert isinstance(event, Enrollment)
            row += [f"enrollment {event.cohort}", "", "", ""]
        rows.append(row)
    assert list(marked_table("example-events")) == rows


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
    assert [row[0] for row in rows] == ["ann", "ben", "cat", "dan"]
    for name, segment, *facts, first, base in rows:
        mine = [e for e in EVENTS if e.customer_id == name]
        buys = [(day_of(e), e) for e in mine if isinstance(e, Purchase)]
        joins = [e for e in mine if isinstance(e, Enrollment) and day_of(e) <= d]
        latest = max(joins, key=lambda e: (e.occurred_ms, e.event_id), default=None)
        assert segment == ("non_member" if latest is None else latest.cohort), name
        active = {}
        for i, x in enumerate((d - p, d - 1, d)):
            last = max((day for day, _ in buys if day <= x), default=None)
            active[x] = last is not None and last > x - t
            assert when(facts[2 * i]) == last, (name, x)
            assert facts[2 * i + 1] == ("yes" if active[x] else "no"), (name, x)
        assert when(first) == min(day for day, _ in buys), name
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
    expressions = ARITHMETIC.findall(calculation)
    if expressions:
        result = arithmetic(expressions[-1])
        assert math.isclose(result, value, rel_tol=1e-9), (path, expressions[-1], result)


def test_worked_tables_cover_every_kpi() -> None:
    paths = [row[0] for row in worked_rows()]
    assert len(paths) == len(set(paths))
    assert set(paths) == set(leaves(documented())) - {"as_of", "currency"}


def test_side_claims() -> None:
    # 3.3: 0.02 per 30 days -> annual 0.2179, lifetime 4.59 years
    annual = annual_churn(Fraction(2, 100), 30)
    assert (round(annual, 4), round(1 / annual, 2)) == (0.2179, 4.59)
    assert "≈ 0.2179" in DOC and "≈ 4.59" in DOC
    # 5.2: (1/3)^(365/3) ≈ 8.9e-59
    assert f"{(1 / 3) ** (365 / 3):.1e}" == "8.9e-59" and "8.9 × 10⁻⁵⁹" in DOC
    # choice 9: 3 points at half a cent cost 0.015, not rounded to 0.02
    events: list[Event] = [Redemption("r1", "x", at("2025-03-14T10:00:00Z"), 3)]
    half = KpiParams(windows=(7,), point_value=Decimal("0.005"))
    engine = run_engine(events, AS_OF, half, streaming=False)
    reference = ref.kpis_as_of(events, AS_OF, ref.KpiParams(point_value_minor=Fraction(1, 2)))
    assert engine["program"]["program_cost"] == reference["program"]["program_cost"] == 0.015
    assert "`0.015`, not `0.02`" in DOC


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
