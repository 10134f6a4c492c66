"""The KPI HTTP API as plain functions: query parameters in, (status, JSON) out.

The Faust web views only adapt requests to these; errors are JSON with a
message, never a stack trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any, Protocol

from stream_app.alerts import churn_by_day
from stream_app.kpi.days import from_date, to_date
from stream_app.kpi.spike import SpikeRule, judge

Response = tuple[int, dict[str, Any]]
MAX_HISTORY_DAYS = 3660


class KpiSource(Protocol):
    async def current(self) -> dict[str, Any] | None: ...
    async def final(self, day: int) -> dict[str, Any] | None: ...
    async def history(self, first: int, last: int) -> list[dict[str, Any]]: ...
    async def kept_days(self) -> list[int]: ...


Handler = Callable[[KpiSource, Mapping[str, str]], Awaitable[Response]]


def error(status: int, message: str) -> Response:
    return status, {"error": message, "status": status}


def redis_unreachable(exc: Exception) -> str:
    return f"the serving store (Redis) is unreachable: {exc}"


class QueryError(ValueError):
    """A query parameter the client has to fix (a 400 with this message)."""


def day_of(name: str, text: str) -> int:
    try:
        return from_date(date.fromisoformat(text))
    except ValueError:
        raise QueryError(f"{name} must be a date as YYYY-MM-DD, got {text[:40]!r}") from None


def day_range(query: Mapping[str, str], first: int, last: int) -> tuple[int, int]:
    """``from`` and ``to`` of the query (defaults ``first`` and ``last``), checked."""
    if "from" in query:
        first = day_of("from", query["from"])
    if "to" in query:
        last = day_of("to", query["to"])
    if last < first or last - first > MAX_HISTORY_DAYS:
        raise QueryError(f"need from <= to, at most {MAX_HISTORY_DAYS} days apart")
    return first, last


async def kpis(store: KpiSource, query: Mapping[str, str]) -> Response:
    """GET /kpis and GET /kpis?as_of=YYYY-MM-DD."""
    as_of = query.get("as_of")
    if as_of is None:
        doc = await store.current()
        if doc is None:
            return error(503, "no KPIs yet: the worker has not processed any event")
        return 200, doc
    try:
        day = day_of("as_of", as_of)
    except QueryError as exc:
        return error(400, str(exc))
    doc = await store.final(day)
    if doc is None:
        return error(404, f"no final KPIs kept for {as_of}: the day is not final yet or too old")
    return 200, doc


def pick(document: dict[str, Any], path: str) -> Any:
    """The value at a dotted path such as "windows.30d.churn_rate" (a list entry by
    its index: "cohorts.rows.0.size"); KeyError if absent."""
    node: Any = document
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


# Groups by name that hold only the names with data that day: a name absent on
# a day is a null in its series, not an unknown field.
_NAMED_GROUPS = (".channels.", ".tiers.", ".stores.", "program.members_by_tier.")


async def history(store: KpiSource, query: Mapping[str, str]) -> Response:
    """GET /kpis/history?from=&to=&fields=a.b,c.d: daily series for charts."""
    kept = await store.kept_days()
    fields = [f for f in query.get("fields", "").split(",") if f]
    if not kept:  # no final day yet: the shape of an answer, empty
        if fields:
            return 200, {"days": [], "series": {f: [] for f in fields}}
        return 200, {"days": [], "documents": []}
    try:
        first, last = day_range(query, max(kept[0], kept[-1] - 89), kept[-1])
    except QueryError as exc:
        return error(400, str(exc))
    docs = await store.history(first, last)
    if not fields:
        return 200, {"days": [d["as_of"] for d in docs], "documents": docs}
    return _series(docs, fields)


def _series(docs: list[dict[str, Any]], fields: list[str]) -> Response:
    series: dict[str, list[Any]] = {f: [] for f in fields}
    for doc in docs:
        for field in fields:
            try:
                series[field].append(pick(doc, field))
            except KeyError:
                if any(group in field for group in _NAMED_GROUPS):
                    series[field].append(None)  # e.g. a channel with no purchase that day
                    continue
                return error(400, f"unknown field {field!r}; use dotted paths of /kpis")
    return 200, {"days": [d["as_of"] for d in docs], "series": series}


async def churn_baseline(store: KpiSource, rule: SpikeRule, query: Mapping[str, str]) -> Response:
    """GET /kpis/churn-baseline?from=&to=: each kept final day's churn rate with the
    detector's baseline, threshold and verdict (the rule of spec §3.5), and whether
    the day's churn history is complete (no verdict before)."""
    kept = await store.kept_days()
    empty: dict[str, list[Any]] = {
        "days": [],
        "churn_rate": [],
        "baseline": [],
        "threshold": [],
        "spike": [],
        "history_complete": [],
    }
    if not kept:
        return 200, empty
    try:
        first, last = day_range(query, kept[-1] - 89, kept[-1])
    except QueryError as exc:
        return error(400, str(exc))
    churn = churn_by_day(await store.history(first - rule.baseline_days, last))
    out: dict[str, list[Any]] = {key: [] for key in empty}
    for day in sorted(d for d in churn if first <= d <= last):
        verdict = judge(day, churn, rule)
        rate = verdict.churn.rate
        out["days"].append(to_date(day).isoformat())
        out["churn_rate"].append(None if rate is None else float(rate))
        out["baseline"].append(None if verdict.baseline is None else float(verdict.baseline))
        out["threshold"].append(None if verdict.threshold is None else float(verdict.threshold))
        out["spike"].append(verdict.spike)
        out["history_complete"].append(verdict.churn.history_complete)
    return 200, out
