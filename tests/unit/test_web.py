"""Worker HTTP views that need no broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stream_app.app import Runtime, create_app
from stream_app.metrics import exposition
from stream_app.processes import free_port
from stream_app.settings import Settings
from stream_app.web import alerts_json, gather_scrape, readiness_json


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
