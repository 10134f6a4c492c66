"""The dashboard's server side: its page and assets, its config, the churn baseline;
and that the page's script and its HTML agree on the elements it fills."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from stream_app.dashboard import (
    ASSETS,
    load_assets,
    page_config,
    read_static,
    render_index,
)
from stream_app.kpi.spike import SpikeRule
from stream_app.kpi_api import churn_baseline
from stream_app.settings import Settings
from tests.unit.test_kpi_api import MemoryStore

RULE = SpikeRule(baseline_days=4, min_days=2, factor=Decimal("1.5"), min_churned=10)


STATIC = Path(__file__).resolve().parents[2] / "stream_app" / "dashboard" / "static"


def churn_doc(day: date, churned: int, at_start: int, complete: bool = True) -> dict[str, Any]:
    churn = {"churned": churned, "customers_at_start": at_start, "history_complete": complete}
    return {"as_of": day.isoformat(), "churn": churn}


def store_of(
    churns: list[tuple[int, int]], first: date = date(2025, 1, 1), complete_from: int = 0
) -> MemoryStore:
    days = [first + timedelta(days=i) for i in range(len(churns))]
    finals = {
        d.isoformat(): churn_doc(d, *c, complete=i >= complete_from)
        for i, (d, c) in enumerate(zip(days, churns, strict=True))
    }
    return MemoryStore(finals, None)


async def test_churn_baseline_is_the_detectors_rule_day_by_day() -> None:
    # 2 % churn for four days, then 5 % (a spike: >= 1.5 x baseline and >= 10 churned),
    # then a day with nobody at start (no rate, no verdict).
    store = store_of([(20, 1000)] * 4 + [(50, 1000), (0, 0)])
    status, body = await churn_baseline(store, RULE, {})
    assert status == 200
    assert body["days"][0] == "2025-01-01" and len(body["days"]) == 6
    assert body["churn_rate"] == [0.02] * 4 + [0.05, None]
    assert body["baseline"][:2] == [None, None]  # fewer than min_days before them
    assert body["baseline"][2:5] == [0.02, 0.02, 0.02] and body["baseline"][5] is None
    assert body["threshold"][4] == pytest.approx(0.03)
    assert body["spike"] == [False] * 4 + [True, False]
    assert body["history_complete"] == [True] * 6


async def test_no_churn_verdict_while_the_churn_history_is_incomplete() -> None:
    # The chart draws no spike marker on a warm-up day: the endpoint judges none, and
    # the days before are not part of any baseline (spec §3.5).
    store = store_of([(50, 1000)] * 2 + [(20, 1000)] * 3 + [(50, 1000)], complete_from=2)
    status, body = await churn_baseline(store, RULE, {})
    assert status == 200
    assert body["history_complete"] == [False, False, True, True, True, True]
    assert body["baseline"][:4] == [None] * 4  # warm-up days, then too few days before
    assert body["spike"][:2] == [False, False]
    assert body["baseline"][4] == 0.02  # the 5 % of the warm-up days is not in it
    assert body["spike"][5] is True


async def test_churn_baseline_uses_days_before_the_range_and_checks_its_query() -> None:
    store = store_of([(20, 1000)] * 4 + [(50, 1000)])
    status, body = await churn_baseline(store, RULE, {"from": "2025-01-05", "to": "2025-01-05"})
    assert status == 200 and body["days"] == ["2025-01-05"]
    assert body["baseline"] == [0.02] and body["spike"] == [True]
    assert (await churn_baseline(store, RULE, {"from": "x"}))[0] == 400
    assert (await churn_baseline(store, RULE, {"from": "2025-01-05", "to": "2025-01-01"}))[0] == 400
    empty = await churn_baseline(MemoryStore({}, None), RULE, {})
    assert empty == (
        200,
        {
            "days": [],
            "churn_rate": [],
            "baseline": [],
            "threshold": [],
            "spike": [],
            "history_complete": [],
        },
    )


def test_the_page_inlines_its_config_and_versions_every_asset(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dashboard_locale="de-DE", currency="EUR")
    assets = load_assets()
    page = render_index(read_static("index.html").decode(), page_config(settings), assets)
    assert "{{" not in page and '<html lang="de">' in page
    config = re.search(r'<script type="application/json" id="config">(.*?)</script>', page)
    assert config is not None
    parsed = orjson.loads(config.group(1))
    assert parsed["locale"] == "de-DE" and parsed["currency"] == "EUR"
    assert parsed["windows"] == ["30d", "90d", "365d"]
    # the warm-up's length (spec §3.2) and the lift's confidence (§3.6) are no /kpis field
    assert parsed["churn_period_days"] == 30 and parsed["inactivity_days"] == 90
    assert parsed["lift_confidence"] == 0.95
    for path, asset in assets.items():
        assert f"{path}?v={asset.digest}" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "nothing from a CDN"


def test_every_asset_is_package_data_with_its_type() -> None:
    assets = load_assets()
    assert set(assets) == set(ASSETS)
    assert all(a.body for a in assets.values())
    assert assets["/dashboard/app.js"].content_type.startswith("text/javascript")
    assert b"uPlot" in assets["/dashboard/vendor/uPlot.iife.min.js"].body
    assert read_static("vendor/uPlot.LICENSE").startswith(b"The MIT License")


def test_config_json_cannot_close_its_script_element(tmp_path: Path) -> None:
    config = page_config(Settings(data_dir=tmp_path)) | {"locale": "</script><b>"}
    page = render_index("<script>{{config}}</script>", config, {})
    assert page.count("</script>") == 1


def test_an_unknown_dashboard_locale_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="dashboard_locale"):
        Settings(data_dir=tmp_path, dashboard_locale="xx-YY")


def test_the_script_fills_only_elements_the_page_has() -> None:
    """Every id app.js looks up by $("…") is in index.html (a renamed element would
    leave a panel empty with only a console error), and every panel is there."""
    script = (STATIC / "app.js").read_text()
    page = (STATIC / "index.html").read_text()
    ids = set(re.findall(r'\$\("([a-z0-9-]+)"\)', script))
    ids |= {f"chart-{name}" for name in ("churn", "repeat", "redemption", "aov")}
    ids |= {f"chart-{name}-sum" for name in ("churn", "repeat", "redemption", "aov")}
    ids |= {"warmup", "chart-churn-warmup"}  # looked up in a loop
    missing = sorted(i for i in ids if f'id="{i}"' not in page)
    assert not missing, missing
    panels = "program-facts lift-verdict lift-bias lift cohorts tiers stores second"
    assert set(panels.split()) <= ids, "the script fills every panel of spec version 2"


def test_the_page_loads_nothing_from_the_network() -> None:
    """No URL in the page or its script and styles points off the worker."""
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"(src|href|url)\s*[=(]\s*[\"']?(https?:)?//", text), name
        assert 'fetch("http' not in text and "import(" not in text, name
