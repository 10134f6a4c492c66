"""Worker HTTP views that need no broker (and no Faust app)."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import cast

from loyalty_pulse_dev.processes import free_port
from stream_app.alerts import AlertStore
from stream_app.day_close import CloserStatus
from stream_app.metrics import WorkerMetrics, exposition
from stream_app.pipeline import Pipeline
from stream_app.runtime import Readiness, Views, WorkerStatus, no_lag
from stream_app.serving import ServingStore
from stream_app.settings import Settings
from stream_app.web import alerts_json, gather_scrape, pipeline_json, readiness_json


def views_of(settings: Settings, pipeline: Pipeline | None = None) -> Views:
    """What the composition root gives the views, for a worker that owns nothing yet."""
    store = ServingStore.connect(settings.redis_url, settings.app_id, settings.history_days)
    status = WorkerStatus(
        pipeline or Pipeline(settings), CloserStatus(), WorkerMetrics(), Readiness(), no_lag
    )
    return Views(settings, store, AlertStore(store), status)


class AnsweringRedis:
    async def ping(self) -> bool:
        return True


class AnsweringStore:
    r = AnsweringRedis()


def test_not_ready_until_state_is_recovered_then_ready_with_its_partitions(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, partitions=4)
    pipeline = Pipeline(settings)
    views = replace(views_of(settings, pipeline), store=cast(ServingStore, AnsweringStore()))
    status, body = asyncio.run(readiness_json(views))
    assert status == 503 and body["status"] == "recovering" and "recovered" in body["error"]
    pipeline.assign({1, 3})
    views.worker.readiness.recovered = True
    assert asyncio.run(readiness_json(views)) == (
        200,
        {"status": "ready", "partitions": [1, 3], "redis": {"ok": True}},
    )


def test_ready_while_redis_is_away_but_says_so(tmp_path: Path) -> None:
    """Redis is shared by every worker: unready on it would empty the Service
    (see readiness_json); /readyz stays 200 and names the trouble."""
    views = _unreachable_redis_views(tmp_path)
    views.worker.readiness.recovered = True
    status, body = asyncio.run(readiness_json(views))
    assert status == 200 and body["status"] == "ready"
    assert body["redis"]["ok"] is False
    assert "the serving store (Redis) is unreachable" in body["redis"]["error"]
    views.worker.readiness.recovered = False
    status, body = asyncio.run(readiness_json(views))
    assert status == 503 and body["redis"]["ok"] is False


def test_a_redis_that_never_answers_does_not_hold_readyz_past_the_probe_timeout(
    tmp_path: Path,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), answers nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        settings = Settings(data_dir=tmp_path, redis_url=f"redis://127.0.0.1:{port}/0")
        views = views_of(settings)
        views.worker.readiness.recovered = True
        started = time.monotonic()
        status, body = asyncio.run(readiness_json(views))
    assert time.monotonic() - started < 0.9  # a probe's default timeout is 1 s
    assert status == 200 and body["redis"] == {
        "ok": False,
        "error": "the serving store (Redis) did not answer within 0.5s",
    }


def _unreachable_redis_views(tmp_path: Path) -> Views:
    settings = Settings(data_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    return views_of(settings)


def test_alerts_limit_is_validated_and_redis_away_is_a_json_503(tmp_path: Path) -> None:
    views = _unreachable_redis_views(tmp_path)
    for bad in ("0", "201", "ten", "-1"):
        status, body = asyncio.run(alerts_json(views, {"limit": bad}))
        assert status == 400 and "limit" in body["error"]
    status, body = asyncio.run(alerts_json(views, {}))
    assert status == 503 and "Redis" in body["error"]


def test_metrics_without_redis_still_export_the_worker_and_count_the_error(tmp_path: Path) -> None:
    views = _unreachable_redis_views(tmp_path)
    text = exposition(asyncio.run(gather_scrape(views))).decode()
    assert "loyalty_redis_errors_total 1.0" in text
    assert "loyalty_worker_ready 0.0" in text and "loyalty_orders" not in text


async def test_pipeline_health_counts_events_by_outcome_and_says_when_redis_is_down(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, partitions=4, redis_url="redis://127.0.0.1:1/0")
    views = views_of(settings)
    views.worker.metrics.events.update(
        {("purchase", "accepted"): 5, ("redemption", "accepted"): 2, ("unknown", "rejected"): 1}
    )
    views.worker.closer.watermark_ms = 1_000
    body = await pipeline_json(views)
    assert body["events"] == {"accepted": 7, "rejected": 1} and body["events_total"] == 8
    assert body["watermark"] == "1970-01-01T00:00:01.000Z" and body["watermark_delay_s"] > 0
    assert body["lag"] == {"total": 0, "partitions": []}  # no assignment yet
    assert body["final_day"] is None and "Redis" in body["redis_error"]
    assert body["rejected"] == {} and body["ready"] is False
    assert body["customer_state"] == {
        "customers": 0,
        "decoded": 0,
        "decoded_limit": 0,
        "records_decoded": 0,
    }
    assert abs(body["server_time_ms"] / 1000 - time.time()) < 5

    async def final_days() -> tuple[int, int]:
        return 20_000, 19_990

    views.store.final_days = final_days  # type: ignore[method-assign]
    body = await pipeline_json(views)
    assert body["final_day"] == "2024-10-04" and body["redis_error"] is None
