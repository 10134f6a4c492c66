"""HTTP views of a worker: totals, health and alerts as JSON; Prometheus metrics."""

from __future__ import annotations

import functools
import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View
from redis.exceptions import RedisError

from stream_app import kpi_api
from stream_app.currency import to_major
from stream_app.kpi.days import to_date
from stream_app.metrics import HEADERS, Scrape, exposition
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

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            body = exposition(await gather_scrape(runtime), runtime.settings.kpi_params.zone)
            return self.bytes(body, headers=dict(HEADERS))

    @app.page("/alerts")
    class Alerts(View):
        async def get(self, request: Request) -> Response:
            status, body = await alerts_json(runtime, dict(request.query))
            return self.json(body, status=status)

    @app.page("/pipeline")
    class PipelineHealth(View):
        async def get(self, request: Request) -> Response:
            return self.json(await pipeline_json(runtime))

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            status, body = readiness_json(runtime)
            return self.json(body, status=status)


async def pipeline_json(runtime: Runtime) -> dict[str, Any]:
    """This worker's pipeline health for the dashboard: watermark, final day, lag,
    cumulative events by outcome (the page takes rates between two answers, by
    ``server_time_ms``) and rejections by reason."""
    now_ms = int(time.time() * 1000)
    status, metrics = runtime.closer.status, runtime.metrics
    finals, redis_error = None, None
    try:
        finals = await runtime.store.final_days()
    except (RedisError, OSError) as exc:
        redis_error = kpi_api.redis_unreachable(exc)
    lag = consumer_lag(runtime)
    outcomes: dict[str, int] = {}
    for (_, outcome), n in sorted(metrics.events.items()):
        outcomes[outcome] = outcomes.get(outcome, 0) + n
    rejected = runtime.pipeline.rejected()
    mark = status.watermark_ms
    return {
        "server_time_ms": now_ms,
        "ready": runtime.readiness.recovered,
        "partitions": sorted(runtime.pipeline.partitions),
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
    }


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
        status, body = kpi_api.error(503, kpi_api.redis_unreachable(exc))
    return view.json(body, status=status)


MAX_ALERTS = 200


async def alerts_json(runtime: Runtime, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Recent churn-spike alert events, newest first, and the open one (or null)."""
    raw = query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_ALERTS:
        return kpi_api.error(400, f"limit must be an integer from 1 to {MAX_ALERTS}")
    try:
        recent = await runtime.alerts.recent(MAX_ALERTS)
        state = await runtime.alerts.state()
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


async def gather_scrape(runtime: Runtime) -> Scrape:
    """What /metrics exports now: Redis first (a failure leaves the KPIs out)."""
    store, metrics = runtime.store, runtime.metrics
    kpis: dict[str, Any] | None = None
    spike: dict[str, str] = {}
    published: int | None = None
    finals: tuple[int, int] | None = None
    try:
        kpis = await store.current()
        spike = await runtime.alerts.state()
        published = await store.current_published_ms()
        finals = await store.final_days()
    except (RedisError, OSError):
        metrics.redis_errors += 1
    now = time.time()
    status = runtime.closer.status
    return Scrape(
        metrics=metrics,
        version=_version(),
        currency=runtime.settings.currency,
        kpis=kpis,
        snapshot_age_s=None if published is None else max(0.0, now - published / 1000),
        spike=spike,
        lag=consumer_lag(runtime),
        partitions=len(runtime.pipeline.partitions),
        ready=runtime.readiness.recovered,
        watermark_ms=status.watermark_ms,
        final_day=None if finals is None else finals[0],
        now_s=now,
        max_channels=runtime.settings.metrics_max_channels,
        redis_errors=status.redis_errors,
    )


def consumer_lag(runtime: Runtime) -> dict[tuple[str, int], int]:
    """Records not yet read in each owned input partition (high watermark minus the
    next offset to read), where the consumer knows the high watermark."""
    app, inputs = runtime.app, set(runtime.settings.topics.values())
    consumer: Any = app.consumer
    out: dict[tuple[str, int], int] = {}
    try:
        assigned = [tp for tp in app.assignor.assigned_actives() if tp.topic in inputs]
    except Exception:  # noqa: BLE001 - no assignment yet
        return out
    for tp in assigned:
        try:
            high = consumer.highwater(tp)
        except Exception:  # noqa: BLE001, S112 - not started, or the partition just left
            continue
        if high is None:
            continue
        read = consumer._read_offset.get(tp)
        position = read + 1 if read is not None else consumer._committed_offset.get(tp) or 0
        out[tp.topic, tp.partition] = max(0, int(high) - int(position))
    return out
