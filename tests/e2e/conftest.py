"""Real broker, real worker processes. Each test gets its own topics and group.

The broker and Redis (``broker_address``, ``redis_url``) and ``new_settings`` are in
tests/conftest.py: the integration tests use them too.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from loyalty_pulse_dev.processes import free_port, spawn, stop
from stream_app.settings import Settings
from tests.conftest import new_settings


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float = 30) -> Any:
    """Poll ``probe`` until it returns something truthy, and return that."""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")


@dataclass
class WorkerHandle:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:  # noqa: S310
            return orjson.loads(resp.read())

    def text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:  # noqa: S310
            return str(resp.read().decode())

    def get_status(self, path: str) -> tuple[int, Any]:
        """(HTTP status, JSON body), error statuses included."""
        try:
            return 200, self.get(path)
        except urllib.error.HTTPError as err:
            return err.code, orjson.loads(err.read())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Cluster:
    """Settings for one test plus the workers it started."""

    settings: Settings
    tmp: Path
    workers: list[WorkerHandle] = field(default_factory=list)
    siblings: list[Cluster] = field(default_factory=list)

    def sibling(self, name: str) -> Cluster:
        """Another deployment on the same broker and Redis: topics, group, keys of its own."""
        s = self.settings
        tmp = self.tmp / name
        tmp.mkdir()
        other = Cluster(new_settings(s.broker, s.redis_url, tmp, name), tmp)
        self.siblings.append(other)
        return other

    def env(self, web_port: int, name: str) -> dict[str, str]:
        s = self.settings
        return {
            "LOYALTY_PULSE_BROKER": s.broker,
            "LOYALTY_PULSE_APP_ID": s.app_id,
            "LOYALTY_PULSE_TOPIC_PURCHASES": s.topic_purchases,
            "LOYALTY_PULSE_TOPIC_ENROLLMENTS": s.topic_enrollments,
            "LOYALTY_PULSE_TOPIC_REDEMPTIONS": s.topic_redemptions,
            "LOYALTY_PULSE_TOPIC_DEAD_LETTER": s.topic_dead_letter,
            "LOYALTY_PULSE_TOPIC_ALERTS": s.topic_alerts,
            "LOYALTY_PULSE_PARTITIONS": str(s.partitions),
            "LOYALTY_PULSE_STORE": s.store,
            "LOYALTY_PULSE_STATE_CACHE_CUSTOMERS": str(s.state_cache_customers),
            "LOYALTY_PULSE_DATA_DIR": str(self.tmp / name),
            "LOYALTY_PULSE_WEB_PORT": str(web_port),
            "LOYALTY_PULSE_LOG_LEVEL": "info",
            "LOYALTY_PULSE_REDIS_URL": s.redis_url,
        }

    def start_worker(self, name: str = "w1", **overrides: str) -> WorkerHandle:
        """A worker process; ``overrides`` are extra LOYALTY_PULSE_* settings."""
        port = free_port()
        log = self.tmp / f"{name}-{len(self.workers)}.log"
        env = self.env(port, name) | {f"LOYALTY_PULSE_{k.upper()}": v for k, v in overrides.items()}
        with log.open("wb") as out:
            proc = spawn(
                [sys.executable, "-m", "stream_app.cli", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        handle = WorkerHandle(proc, f"http://127.0.0.1:{port}", log)
        self.workers.append(handle)
        return handle

    def wait_until(self, worker: WorkerHandle, predicate: Any, timeout_s: float = 90) -> Any:
        """Poll /totals until predicate(totals) holds; returns the last totals."""
        deadline, last = time.monotonic() + timeout_s, None
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                pytest.fail(f"worker exited ({worker.proc.returncode}):\n{worker.log_tail()}")
            try:
                last = worker.get("/totals")
                if predicate(last):
                    return last
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"timed out; last totals {last}\n{worker.log_tail()}")


@pytest.fixture
def cluster(
    broker_address: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    c = Cluster(new_settings(broker_address, redis_url, tmp_path, request.node.name), tmp_path)
    yield c
    for w in c.workers:
        stop(w.proc)
    for sibling in c.siblings:
        for w in sibling.workers:
            stop(w.proc)
