"""The KPI API's answers and errors, against an in-memory store."""

from __future__ import annotations

from datetime import date
from typing import Any

from stream_app.kpi.days import from_date
from stream_app.kpi_api import history, kpis


def doc(day: str, churn: float | None) -> dict[str, Any]:
    return {
        "as_of": day,
        "final": True,
        "churn": {"churn_rate": churn},
        "windows": {"30d": {"orders": 1, "channels": {"pos": {"orders": 1}}, "tiers": {}}},
        "cohorts": {"months": 1, "rows": [{"cohort": day[:7], "size": 2}]},
    }


class MemoryStore:
    def __init__(self, finals: dict[str, dict[str, Any]], current: dict[str, Any] | None) -> None:
        self.finals = {from_date(date.fromisoformat(k)): v for k, v in finals.items()}
        self._current = current

    async def current(self) -> dict[str, Any] | None:
        return self._current

    async def final(self, day: int) -> dict[str, Any] | None:
        return self.finals.get(day)

    async def history(self, first: int, last: int) -> list[dict[str, Any]]:
        return [self.finals[d] for d in sorted(self.finals) if first <= d <= last]

    async def kept_days(self) -> list[int]:
        return sorted(self.finals)


STORE = MemoryStore(
    {"2025-01-01": doc("2025-01-01", 0.1), "2025-01-02": doc("2025-01-02", None)},
    {"as_of": "2025-01-03", "final": False},
)


async def test_current_and_final_days() -> None:
    assert await kpis(STORE, {}) == (200, {"as_of": "2025-01-03", "final": False})
    status, body = await kpis(STORE, {"as_of": "2025-01-02"})
    assert status == 200 and body["as_of"] == "2025-01-02"


async def test_errors_are_json_with_a_message() -> None:
    status, body = await kpis(STORE, {"as_of": "2025-02-30"})
    assert status == 400 and "YYYY-MM-DD" in body["error"]
    status, body = await kpis(STORE, {"as_of": "2024-12-31"})
    assert status == 404 and "not final yet or too old" in body["error"]
    status, body = await kpis(MemoryStore({}, None), {})
    assert status == 503 and "no KPIs yet" in body["error"]


async def test_history_series_by_dotted_fields() -> None:
    query = {
        "from": "2025-01-01",
        "to": "2025-01-02",
        "fields": "churn.churn_rate,windows.30d.orders",
    }
    status, body = await history(STORE, query)
    assert status == 200
    assert body == {
        "days": ["2025-01-01", "2025-01-02"],
        "series": {"churn.churn_rate": [0.1, None], "windows.30d.orders": [1, 1]},
    }
    status, body = await history(STORE, {"fields": "windows.30d.channels.web.orders"})
    assert status == 200 and body["series"]["windows.30d.channels.web.orders"] == [None, None]
    # a tier with no purchase that day is null too; a list entry is read by its index
    fields = "windows.30d.tiers.gold.orders,cohorts.rows.0.size"
    status, body = await history(STORE, {"fields": fields})
    assert status == 200 and body["series"] == {
        "windows.30d.tiers.gold.orders": [None, None],
        "cohorts.rows.0.size": [2, 2],
    }
    status, body = await history(STORE, {"fields": "cohorts.rows.1.size"})
    assert status == 400 and "unknown field" in body["error"]


async def test_history_rejects_unknown_fields_and_bad_ranges() -> None:
    status, body = await history(STORE, {"fields": "churn.nope"})
    assert status == 400 and "unknown field 'churn.nope'" in body["error"]
    status, body = await history(STORE, {"from": "2025-01-02", "to": "2025-01-01"})
    assert status == 400 and "from <= to" in body["error"]
    empty = MemoryStore({}, None)
    assert (await history(empty, {}))[1] == {"days": [], "documents": []}
    assert (await history(empty, {"fields": "churn.churned"}))[1] == {
        "days": [],
        "series": {"churn.churned": []},
    }
