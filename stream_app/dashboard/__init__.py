"""The dashboard at ``GET /``: a static page (package data, no CDN) that polls the
JSON endpoints (stream_app/web.py serves it).

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
from typing import Any

import orjson

from stream_app.alerts import rule_json, rule_of
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
        # warm-up (spec §3.2): churn history is complete from the first day + P + T - 1
        "inactivity_days": settings.inactivity_days,
        # the lift intervals' confidence (spec §3.6): significant when p < 1 - confidence
        "lift_confidence": float(settings.lift_confidence),
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
