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

from stream_app.alerts import AlertStore, SpikeMonitor
from stream_app.kpi.days import from_date, to_date
from stream_app.serving import ServingStore
from tests.integration.conftest import Cluster, WorkerHandle, new_settings
from tests.integration.kafka_io import produce, read_all
from tests.integration.test_pipeline import to_records

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
    assert raised["churn_rate"] >= raised["threshold"] == raised["baseline"] * 1.5
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


def test_two_workers_judging_at_once_raise_a_day_once(redis_url: str, tmp_path: Path) -> None:
    settings = new_settings("127.0.0.1:1", redis_url, tmp_path, "spike-race")
    first_day = from_date(datetime(2025, 1, 1, tzinfo=UTC).date())

    async def run() -> list[tuple[bytes, bytes]]:
        store = ServingStore.connect(redis_url, settings.app_id, 400)
        try:
            for n in range(40):  # 2 % churn, then 5 % from day 35
                churned = 50 if n >= 35 else 20
                day = first_day + n
                churn = {"churned": churned, "customers_at_start": 1000}
                await store.store_final(day, {"as_of": to_date(day).isoformat(), "churn": churn})
            sent: list[tuple[bytes, bytes]] = []

            async def send(key: bytes, value: bytes) -> None:
                sent.append((key, value))

            monitors = [SpikeMonitor(settings, AlertStore(store)) for _ in range(3)]
            await asyncio.gather(*(m.check(first_day + 39, send) for m in monitors))
            await asyncio.gather(*(m.check(first_day + 39, send) for m in monitors))
            return sent
        finally:
            await store.r.delete(*[k async for k in store.r.scan_iter(f"{store.prefix}*")])
            await store.close()

    sent = asyncio.run(run())
    assert [key for key, _ in sent] == [b"churn_spike:2025-02-05:raised"]
