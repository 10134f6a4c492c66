"""The test layers, and what the integration and end-to-end layers share.

Each directory under tests/ is a layer; its tests get the marker of the same name
(``pytest -m unit``, ``-m "not e2e"``, ...):

- unit: pure logic, no processes, no network, no broker or Redis
- integration: a real broker and/or Redis over real connections, no worker processes
- e2e: worker processes, the CLI's commands, a real Prometheus, the browser
- artifacts: the shipped files (deploy/prometheus, Grafana dashboards, compose, docs)
- chaos: faults under load (workers killed, Redis and the broker stalled or lost), on a
  broker and a Redis of the test's own (tests/chaos/conftest.py)

The broker and Redis below are session-scoped: one of each for every test that asks,
whichever layer it is in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty_pulse_dev.broker import start_broker
from loyalty_pulse_dev.processes import free_port, stop
from loyalty_pulse_dev.redis_server import start_redis
from stream_app.settings import Settings

TESTS = Path(__file__).resolve().parent
LAYERS = ("unit", "integration", "e2e", "artifacts", "chaos")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path).resolve()
        if TESTS in path.parents and (layer := path.relative_to(TESTS).parts[0]) in LAYERS:
            item.add_marker(layer)


@pytest.fixture(scope="session")
def broker_address() -> Iterator[str]:
    port = free_port()
    proc = start_broker(port)
    yield f"127.0.0.1:{port}"
    stop(proc)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    port = free_port()
    proc = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    stop(proc)


def new_settings(broker_address: str, redis_url: str, tmp_path: Path, name: str) -> Settings:
    """Topics, group and Redis keys of this test's own."""
    tag = f"{name[:24]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
    return Settings(
        broker=broker_address,
        app_id=f"lp-{tag}",
        topic_purchases=f"{tag}.purchases",
        topic_enrollments=f"{tag}.enrollments",
        topic_redemptions=f"{tag}.redemptions",
        topic_dead_letter=f"{tag}.dead-letter",
        topic_alerts=f"{tag}.alerts",
        partitions=4,
        store="rocksdb",
        data_dir=tmp_path,
        redis_url=redis_url,
        # a few customers decoded per partition: most reads decode an evicted record
        state_cache_customers=64,
    )
