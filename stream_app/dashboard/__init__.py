"""The dashboard at ``GET /``: a static page (package data, no CDN) that polls the
JSON endpoints, and the churn baseline series it charts.

The page's assets are read once at startup and served with a content hash in
their URL, so a browser may cache them for good and still never runs an old
``app.js`` against a new worker; the page itself is never cached.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import orjson
from faust.web import Request, Response, View

from stream_app import kpi_api
from stream_app.alerts import churn_by_day, rule_json, rule_of
from stream_app.kpi.days import to_date
from stream_app.kpi.spike import SpikeRule, judge
from stream_app.web import answer

if TYPE_CHECKING:
    from stream_app.app import Runtime
    from stream_app.settings import Settings

REFRESH_SECONDS = 3
ASSETS = {  # URL path -> (file under static/, Content-Type)
    "/dashboard/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/dashboard/style.css": ("style.css", "text/css; charset=utf-8"),
    "/dashboard/vendor/uPlot.iife.min.js": (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
    ),
    "/dashboard/vendor/uPlot.min.css": ("vendor/uPlot.min.css", "text/css; charset=utf-8"),
}
CACHE_FOREVER = {"Cache-Control": "public, max-age=31536000, immutable"}
NO_CACHE = {"Cache-Control": "no-cache"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    digest: str


def read_static(name: str) -> bytes:
    return (files(__package__) / "static" / name).read_bytes()


def load_assets() -> dict[str, Asset]:
    out = {}
    for path, (name, content_type) in ASSETS.items():
        body = read_static(name)
        out[path] = Asset(body, content_type, hashlib.sha256(body).hexdigest()[:12])
    return out


def page_config(settings: Settings) -> dict[str, Any]:
    """What the page needs to know that no JSON endpoint says."""
    return {
        "locale": settings.dashboard_locale,
        "currency": settings.currency,
        "windows": [f"{w}d" for w in settings.windows_days],
        "churn_period_days": settings.churn_period_days,
        "refresh_seconds": REFRESH_SECONDS,
        "spike_rule": rule_json(rule_of(settings)),
    }


def render_index(template: str, config: Mapping[str, Any], assets: Mapping[str, Asset]) -> str:
    """index.html with the config inlined and each asset URL carrying its hash."""
    text = template.replace("{{config}}", _script_json(config))
    text = text.replace("{{lang}}", html.escape(str(config["locale"]).split("-")[0]))
    for path, asset in assets.items():
        text = text.replace("{{" + path + "}}", f"{path}?v={asset.digest}")
    return text


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return orjson.dumps(value).decode().replace("<", "\\u003c")


async def churn_baseline(
    store: kpi_api.KpiSource, rule: SpikeRule, query: Mapping[str, str]
) -> kpi_api.Response:
    """GET /kpis/churn-baseline?from=&to=: each kept final day's churn rate with the
    detector's baseline, threshold and verdict (the rule of spec §3.5)."""
    kept = await store.kept_days()
    empty: dict[str, list[Any]] = {
        "days": [],
        "churn_rate": [],
        "baseline": [],
        "threshold": [],
        "spike": [],
    }
    if not kept:
        return 200, empty
    first = kpi_api.parse_day("from", query["from"]) if "from" in query else kept[-1] - 89
    last = kpi_api.parse_day("to", query["to"]) if "to" in query else kept[-1]
    if not isinstance(first, int):
        return first
    if not isinstance(last, int):
        return last
    if last < first or last - first > kpi_api.MAX_HISTORY_DAYS:
        return kpi_api.error(400, f"need from <= to, at most {kpi_api.MAX_HISTORY_DAYS} days apart")
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
    return 200, out


def register_dashboard(runtime: Runtime) -> None:
    app, settings = runtime.app, runtime.settings
    assets = load_assets()
    index = render_index(read_static("index.html").decode(), page_config(settings), assets)
    rule = rule_of(settings)

    @app.page("/")
    class Index(View):
        async def get(self, request: Request) -> Response:
            return self.html(index, headers=dict(NO_CACHE))

    for path, asset in assets.items():
        app.page(path, name=f"dashboard{path.replace('/', '_')}")(_asset_view(asset))

    @app.page("/kpis/churn-baseline")
    class ChurnBaseline(View):
        async def get(self, request: Request) -> Response:
            async def handler(
                store: kpi_api.KpiSource, query: Mapping[str, str]
            ) -> kpi_api.Response:
                return await churn_baseline(store, rule, query)

            return await answer(self, handler, runtime, request)


def _asset_view(asset: Asset) -> type[View]:
    class AssetView(View):
        async def get(self, request: Request) -> Response:
            headers = {"Content-Type": asset.content_type, **CACHE_FOREVER}
            return self.bytes(asset.body, headers=headers)

    return AssetView
