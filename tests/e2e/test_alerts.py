"""A simulated churn spike, end to end: one alert raised, its end resolves it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster, WorkerHandle
from tests.e2e.kafka_io import produce, read_all
from tests.e2e.test_pipeline import to_records

# Checked offline with the KPI engine: 1,500 customers over 350 days with a spike
# 150 days before the end give one spike ~90 days later (when the lost customers
# have been inactive for T) and its resolution within a week. A simulated
# stream's first months ramp its churn up from zero, a spike of its own with
# 20 to 80 churned a day; min_churned=100 leaves it out (233 churned on the
# real spike's first day).
DAYS, SPIKE_AT, MIN_CHURNED = 350, 200, 100


def simulate_spike(tmp: Path) -> list[bytes]:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=DAYS)
    out = tmp / "spike.jsonl"
    done = subprocess.run(
        [
            sys.executable, "-m", "stream_app.cli", "simulate",
            "--customers", "1500", "--seed", "3", "--days", str(DAYS),
            "--start", start.date().isoformat(),
            "--churn-spike-at", (start + timedelta(days=SPIKE_AT)).date().isoformat(),
            "--spike-strength", "0.6", "--spike-days", "10",
            "--output", str(out),
        ],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out.read_bytes().splitlines()


def feed_spike(cluster: Cluster) -> WorkerHandle:
    """The simulated spike on the input topics, then a worker to read it."""
    asyncio.run(produce(cluster.settings, to_records(cluster, simulate_spike(cluster.tmp))))
    return cluster.start_worker(spike_min_churned=str(MIN_CHURNED))


def test_a_simulated_spike_raises_one_alert_and_its_end_resolves_it(cluster: Cluster) -> None:
    worker = feed_spike(cluster)
    deadline, alerts = time.monotonic() + 150, None
    while time.monotonic() < deadline:
        try:
            alerts = worker.get("/alerts")
        except OSError:
            alerts = None
        if alerts and [a["status"] for a in alerts["alerts"]] == ["resolved", "raised"]:
            break
        if worker.proc.poll() is not None:
            pytest.fail(worker.log_tail())
        time.sleep(1)
    else:
        pytest.fail(f"no raise + resolve in /alerts: {alerts}\n{worker.log_tail()}")
    judged_through_the_last_final_day(worker)
    alerts = worker.get("/alerts")
    assert [a["status"] for a in alerts["alerts"]] == ["resolved", "raised"]
    resolved, raised = alerts["alerts"]
    assert raised["id"] == resolved["id"] == f"churn_spike:{raised['day']}"
    # exact fractions in the detector; each served as the nearest float
    assert raised["threshold"] == pytest.approx(raised["baseline"] * 1.5, rel=1e-12)
    assert raised["churn_rate"] >= raised["threshold"]
    assert raised["churned"] >= MIN_CHURNED and resolved["day"] > raised["day"]
    assert alerts["open"] is None
    # Exactly these two on the alerts topic (the outbox sends each once).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sent = asyncio.run(read_all(cluster.settings, cluster.settings.topic_alerts))
        if len(sent) >= 2:
            break
        time.sleep(1)
    assert [(a["id"], a["status"]) for a in sent] == [
        (raised["id"], "raised"),
        (raised["id"], "resolved"),
    ]
    metrics = worker.text("/metrics")
    assert "loyalty_churn_spike 0.0" in metrics
    assert 'loyalty_orders{window="30d"}' in metrics
    lag = re.findall(r"^loyalty_consumer_lag_records\{(.*)\} (\S+)$", metrics, re.M)
    assert len(lag) == 3 * cluster.settings.partitions  # every input partition it owns
    assert {value for _, value in lag} == {"0.0"}  # all read


def judged_through_the_last_final_day(worker: WorkerHandle) -> None:
    """Wait until the detector has judged every final day (/metrics says so)."""
    deadline, metrics = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        metrics = worker.text("/metrics")
        checked = re.search(
            r"^loyalty_churn_spike_checked_day_timestamp_seconds (\S+)", metrics, re.M
        )
        final = re.search(r"^loyalty_final_day_timestamp_seconds (\S+)", metrics, re.M)
        if checked and final and checked.group(1) == final.group(1):
            return
        time.sleep(1)
    pytest.fail(f"the detector did not catch up with the final days:\n{metrics}")
