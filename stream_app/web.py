"""HTTP views of a worker: totals and health, as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View
from redis.exceptions import RedisError

from stream_app import kpi_api
from stream_app.currency import to_major
from stream_app.timefmt import iso_ms

if TYPE_CHECKING:
    from stream_app.app import Runtime


def totals_json(runtime: Runtime) -> dict[str, Any]:
    pipeline, currency = runtime.pipeline, runtime.settings.currency
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


def register_views(runtime: Runtime) -> None:
    app = runtime.app

    @app.page("/totals")
    class Totals(View):
        async def get(self, request: Request) -> Response:
            return self.json(totals_json(runtime))

    @app.page("/kpis")
    class Kpis(View):
        async def get(self, request: Request) -> Response:
            return await answer(self, kpi_api.kpis, runtime, request)

    @app.page("/kpis/history")
    class KpiHistory(View):
        async def get(self, request: Request) -> Response:
            return await answer(self, kpi_api.history, runtime, request)

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            status, body = readiness_json(runtime)
            return self.json(body, status=status)


def readiness_json(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    """200 once the state of the owned partitions is recovered, 503 before and
    during a rebalance (a load balancer or orchestrator waits on it)."""
    readiness = runtime.readiness
    if not readiness.recovered:
        return 503, {
            "status": "recovering",
            "error": "state is being recovered from the changelog (startup or rebalance)",
        }
    return 200, {"status": "ready", "partitions": sorted(runtime.pipeline.partitions)}


async def answer(
    view: View, handler: kpi_api.Handler, runtime: Runtime, request: Request
) -> Response:
    """Serve a KPI API handler; an unreachable Redis is a 503 with a JSON message."""
    try:
        status, body = await handler(runtime.store, dict(request.query))
    except (RedisError, OSError) as exc:
        status, body = kpi_api.error(503, f"the serving store (Redis) is unreachable: {exc}")
    return view.json(body, status=status)
