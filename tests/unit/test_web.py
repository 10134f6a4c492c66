"""Worker HTTP views that need no broker."""

from __future__ import annotations

from pathlib import Path

from stream_app.app import create_app
from stream_app.settings import Settings
from stream_app.web import readiness_json


def test_not_ready_until_state_is_recovered_then_ready_with_its_partitions(
    tmp_path: Path,
) -> None:
    runtime = create_app(Settings(data_dir=tmp_path, partitions=4))
    status, body = readiness_json(runtime)
    assert status == 503 and body["status"] == "recovering" and "recovered" in body["error"]
    runtime.pipeline.assign({1, 3})
    runtime.readiness.recovered = True
    assert readiness_json(runtime) == (200, {"status": "ready", "partitions": [1, 3]})
