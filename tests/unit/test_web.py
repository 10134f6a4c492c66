"""Worker HTTP views that need no broker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from stream_app.app import Runtime, create_app
from stream_app.metrics import exposition
from stream_app.processes import free_port
from stream_app.settings import Settings
from stream_app.web import alerts_json, gather_scrape, pipeline_json, readiness_json


def test_not_ready_until_state_is_recovered_then_ready_with_its_partitions(
    tmp_path: Path,
) -> None:
    runtime = create_app(Settings(data_dir=tmp_path, partitions=4))
    status, body = readiness_json(runtime)
    assert status == 503 and body["status"] == "recovering" and "recovered" in body["error"]
    runtime.pipeline.assign({1, 3})
    runtime.readiness.recovered = True
    assert readiness_json(runtime) == (200, {"status": "ready", "partitions": [1, 3]})


def _unreachable_redis_runtime(tmp_path: Path) -> Runtime:
    settings = Settings(data_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    return create_app(settings)


def test_alerts_limit_is_validated_and_redis_away_is_a_json_503(tmp_path: Path) -> None:
    runtime = _unreachable_redis_runtime(tmp_path)
    for bad in ("0", "201", "ten", "-1"):
        status, body = asyncio.run(alerts_json(runtime, {"limit": bad}))
        assert status == 400 and "limit" in body["error"]
    status, body = asyncio.run(alerts_json(runtime, {}))
    assert status == 503 and "Redis" in body["error"]


def test_metrics_without_redis_still_export_the_worker_and_count_the_error(tmp_path: Path) -> None:
    runtime = _unreachable_redis_runtime(tmp_path)
    text = exposition(asyncio.run(gather_scrape(runtime))).decode()
    assert "loyalty_redis_errors_total 1.0" in text
    assert "loyalty_worker_ready 0.0" in text and "loyalty_orders" not in text


async def test_pipeline_health_counts_events_by_outcome_and_says_when_redis_is_down(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, partitions=4, redis_url="redis://127.0.0.1:1/0")
    runtime = create_app(settings)
    runtime.metrics.events.update(
        {("purchase", "accepted"): 5, ("redemption", "accepted"): 2, ("unknown", "rejected"): 1}
    )
    runtime.closer.status.watermark_ms = 1_000
    body = await pipeline_json(runtime)
    assert body["events"] == {"accepted": 7, "rejected": 1} and body["events_total"] == 8
    assert body["watermark"] == "1970-01-01T00:00:01.000Z" and body["watermark_delay_s"] > 0
    assert body["lag"] == {"total": 0, "partitions": []}  # no assignment yet
    assert body["final_day"] is None and "Redis" in body["redis_error"]
    assert body["rejected"] == {} and body["ready"] is False
    assert abs(body["server_time_ms"] / 1000 - time.time()) < 5

    async def final_days() -> tuple[int, int]:
        return 20_000, 19_990

    runtime.store.final_days = final_days  # type: ignore[method-assign]
    body = await pipeline_json(runtime)
    assert body["final_day"] == "2024-10-04" and body["redis_error"] is None
