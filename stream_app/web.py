"""HTTP views of a worker: KPIs, totals, health and alerts as JSON, Prometheus
metrics and the dashboard. They read only ``runtime.Views``; the response
bodies are built by plain functions (here and in kpi_api.py)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import faust
from faust.web import Request, Response, View
from redis.exceptions import RedisError

from stream_app import dashboard, kpi_api
from stream_app.alerts import rule_of
from stream_app.currency import to_major
from stream_app.kpi.days import to_date
from stream_app.kpi.partition import PartitionState
from stream_app.metrics import HEADERS, Scrape, exposition
from stream_app.runtime import Views
from stream_app.timefmt import iso_ms


def totals_json(views: Views) -> dict[str, Any]:
    pipeline, currency = views.worker.pipeline, views.settings.currency
    totals = pipeline.totals()
    rejected = pipeline.rejected()
    marks = [p.watermark_ms for p in pipeline.partitions.values() if p.watermark_ms is not None]
    return {
        "partitions": sorted(pipeline.partitions),
        "currency": currency,
        "events": {kind.value: n for kind, n in totals.events.items()},
        "customers": totals.customers,
        "revenue": to_major(totals.revenue_minor, currency),
        "points_earned": totals.points_earned,
        "points_redeemed": totals.points_redeemed,
        "duplicates_since_start": sum(p.duplicates for p in pipeline.partitions.values()),
        "rejected": rejected,
        "rejected_total": sum(rejected.values()),
        "latest_event_at": iso_ms(max(marks, default=None)),
    }


def register_views(app: faust.App, views: Views) -> None:
    @app.page("/totals")
    class Totals(View):
        async def get(self, request: Request) -> Response:
            return self.json(totals_json(views))

    @app.page("/kpis")
    class Kpis(View):
        async def get(self, request: Request) -> Response:
            return await answer(self, kpi_api.kpis, views, request)

    @app.page("/kpis/history")
    class KpiHistory(View):
        async def get(self, request: Request) -> Response:
            return await answer(self, kpi_api.history, views, request)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            body = exposition(await gather_scrape(views), views.settings.kpi_params.zone)
            return self.bytes(body, headers=dict(HEADERS))

    @app.page("/alerts")
    class Alerts(View):
        async def get(self, request: Request) -> Response:
            status, body = await alerts_json(views, dict(request.query))
            return self.json(body, status=status)

    @app.page("/pipeline")
    class PipelineHealth(View):
        async def get(self, request: Request) -> Response:
            return self.json(await pipeline_json(views))

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            status, body = await readiness_json(views)
            return self.json(body, status=status)

    register_dashboard(app, views)


def register_dashboard(app: faust.App, views: Views) -> None:
    """The page at ``/``, its assets (stream_app/dashboard) and the churn baseline."""
    assets = dashboard.load_assets()
    page = dashboard.render_index(
        dashboard.read_static("index.html").decode(), dashboard.page_config(views.settings), assets
    )
    rule = rule_of(views.settings)

    @app.page("/")
    class Index(View):
        async def get(self, request: Request) -> Response:
            return self.html(page, headers=dict(dashboard.NO_CACHE))

    for path, asset in assets.items():
        app.page(path, name=f"dashboard{path.replace('/', '_')}")(_asset_view(asset))

    async def churn_baseline(
        store: kpi_api.KpiSource, query: Mapping[str, str]
    ) -> kpi_api.Response:
        return await kpi_api.churn_baseline(store, rule, query)

    @app.page("/kpis/churn-baseline")
    class ChurnBaseline(View):
        async def get(self, request: Request) -> Response:
            return await answer(self, churn_baseline, views, request)


def _asset_view(asset: dashboard.Asset) -> type[View]:
    class AssetView(View):
        async def get(self, request: Request) -> Response:
            headers = {"Content-Type": asset.content_type, **dashboard.CACHE_FOREVER}
            return self.bytes(asset.body, headers=headers)

    return AssetView


async def pipeline_json(views: Views) -> dict[str, Any]:
    """This worker's pipeline health for the dashboard: watermark, final day, lag,
    cumulative events by outcome (the page takes rates between two answers, by
    ``server_time_ms``) and rejections by reason."""
    now_ms = int(time.time() * 1000)
    worker = views.worker
    status, metrics = worker.closer, worker.metrics
    finals, redis_error = None, None
    try:
        finals = await views.store.final_days()
    except (RedisError, OSError) as exc:
        redis_error = kpi_api.redis_unreachable(exc)
    lag = worker.lag()
    outcomes: dict[str, int] = {}
    for (_, outcome), n in sorted(metrics.events.items()):
        outcomes[outcome] = outcomes.get(outcome, 0) + n
    rejected = worker.pipeline.rejected()
    mark = status.watermark_ms
    return {
        "server_time_ms": now_ms,
        "ready": worker.readiness.recovered,
        "partitions": sorted(worker.pipeline.partitions),
        "watermark": iso_ms(mark),
        "watermark_delay_s": None if mark is None else max(0.0, (now_ms - mark) / 1000),
        "final_day": None if finals is None else to_date(finals[0]).isoformat(),
        "lag": {
            "total": sum(lag.values()),
            "partitions": [
                {"topic": topic, "partition": p, "records": n}
                for (topic, p), n in sorted(lag.items())
            ],
        },
        "events": outcomes,
        "events_total": sum(outcomes.values()),
        "rejected": dict(sorted(rejected.items())),
        "rejected_total": sum(rejected.values()),
        "redis_error": redis_error,
        "customer_state": customer_state_json(worker.pipeline.partitions.values()),
        "serving_store": {
            "refilling": status.refilling,
            "last_refill": None
            if (refill := status.last_refill) is None
            else {
                "final_days": refill.days,
                "pending_days": refill.pending_days,
                "seconds": round(refill.seconds, 3),
            },
        },
    }


def customer_state_json(partitions: Iterable[PartitionState]) -> dict[str, int]:
    """How many customers this worker owns, how many are decoded in memory and
    the limit on those, and how many records it decoded since start
    (stream_app/kpi/customer_cache.py)."""
    caches = [p.customers for p in partitions]
    return {
        "customers": sum(len(c) for c in caches),
        "decoded": sum(c.decoded for c in caches),
        "decoded_limit": sum(c.limit for c in caches),
        "records_decoded": sum(c.decodes for c in caches),
    }


REDIS_PROBE_TIMEOUT_S = 0.5
"""Below a Kubernetes probe's default timeout (1 s): a Redis that accepts
connections but does not answer must not make /readyz itself time out."""


async def redis_status(views: Views) -> dict[str, Any]:
    """Whether the serving store answers a PING now."""
    try:
        await asyncio.wait_for(views.store.r.ping(), REDIS_PROBE_TIMEOUT_S)
    except TimeoutError:
        return {
            "ok": False,
            "error": f"the serving store (Redis) did not answer within {REDIS_PROBE_TIMEOUT_S}s",
        }
    except (RedisError, OSError) as exc:
        return {"ok": False, "error": kpi_api.redis_unreachable(exc)}
    return {"ok": True}


async def readiness_json(views: Views) -> tuple[int, dict[str, Any]]:
    """503 before the state of the owned partitions is recovered (startup, a
    rebalance); 200 after, *whether or not Redis answers*, with ``redis``
    saying which.

    Redis is deliberately not a readiness condition. Kubernetes takes a pod
    that is not ready out of its Service's endpoints (and counts it against a
    rollout's and a disruption budget's unavailable pods); it neither restarts
    it nor stops its Kafka consumer. Every worker shares the one Redis, so a
    Redis outage would make every worker unready at once: the Service would
    have no endpoints and clients would get connection errors instead of the
    JSON 503 that /kpis, /kpis/history and /alerts give ("the serving store
    (Redis) is unreachable"), while /totals, /pipeline, /metrics and /healthz,
    served from the worker's memory, would be cut off too. A rolling update
    (perhaps the one fixing the Redis address) would stall. No other pod can
    serve better, so unready buys nothing; readiness fails only for what is
    wrong with this pod. Redis trouble is reported here, on /pipeline
    (``redis_error``), and in /metrics (``loyalty_redis_errors_total``, the
    alert rules) - see docs/operations.md.
    """
    worker = views.worker
    redis = await redis_status(views)
    if not worker.readiness.recovered:
        return 503, {
            "status": "recovering",
            "error": "state is being recovered from the changelog (startup or rebalance)",
            "redis": redis,
        }
    return 200, {
        "status": "ready",
        "partitions": sorted(worker.pipeline.partitions),
        "redis": redis,
    }


async def answer(view: View, handler: kpi_api.Handler, views: Views, request: Request) -> Response:
    """Serve a KPI API handler; an unreachable Redis is a 503 with a JSON message."""
    try:
        status, body = await handler(views.store, dict(request.query))
    except (RedisError, OSError) as exc:
        status, body = kpi_api.error(503, kpi_api.redis_unreachable(exc))
    return view.json(body, status=status)


MAX_ALERTS = 200


async def alerts_json(views: Views, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Recent churn-spike alert events, newest first, and the open one (or null)."""
    raw = query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_ALERTS:
        return kpi_api.error(400, f"limit must be an integer from 1 to {MAX_ALERTS}")
    try:
        recent = await views.alerts.recent(MAX_ALERTS)
        state = await views.alerts.state()
    except (RedisError, OSError) as exc:
        return kpi_api.error(503, kpi_api.redis_unreachable(exc))
    open_alert = None
    if state.get("open_since"):
        open_id = f"churn_spike:{to_date(int(state['open_since'])).isoformat()}"
        raised = (a for a in recent if a["id"] == open_id and a["status"] == "raised")
        open_alert = next(raised, None)
    return 200, {"open": open_alert, "alerts": recent[: int(raw)]}


@functools.cache
def _version() -> str:
    try:
        return package_version("loyalty-pulse")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


async def gather_scrape(views: Views) -> Scrape:
    """What /metrics exports now: Redis first (a failure leaves the KPIs out)."""
    store, worker = views.store, views.worker
    metrics = worker.metrics
    kpis: dict[str, Any] | None = None
    spike: dict[str, str] = {}
    published: int | None = None
    finals: tuple[int, int] | None = None
    try:
        kpis = await store.current()
        spike = await views.alerts.state()
        published = await store.current_published_ms()
        finals = await store.final_days()
    except (RedisError, OSError):
        metrics.redis_errors += 1
    now = time.time()
    status = worker.closer
    return Scrape(
        metrics=metrics,
        version=_version(),
        currency=views.settings.currency,
        kpis=kpis,
        snapshot_age_s=None if published is None else max(0.0, now - published / 1000),
        spike=spike,
        lag=worker.lag(),
        partitions=len(worker.pipeline.partitions),
        ready=worker.readiness.recovered,
        watermark_ms=status.watermark_ms,
        final_day=None if finals is None else finals[0],
        now_s=now,
        max_channels=views.settings.metrics_max_channels,
        max_stores=views.settings.metrics_max_stores,
        max_tiers=views.settings.metrics_max_tiers,
        redis_errors=status.redis_errors,
    )
