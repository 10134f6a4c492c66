"""A real Prometheus scrapes a real worker and fires LoyaltyChurnSpike.

Simulated traffic with a churn spike near its end (every customer who would buy
during a two-week window stops buying for good instead) is replayed to a worker
on the embedded broker. A ``prometheus`` binary on a free port scrapes its /metrics
every second and evaluates deploy/prometheus/rules.yml; the test waits until
KPI series are stored and the churn-spike alert fires, as its rules say.

The traffic is designed offline (``expected_verdicts`` re-checks the design
with the detector's own rule over brute-force churn counts, spec §3.2 and
§3.5): the alert is raised about nine days before the last event and is still
open on every later day, so on every day that can be final when the test looks.
(An early bump, the simulated population warming up, raises and resolves an
alert of its own around day 100; the test looks once the late one is raised.)
"""

from __future__ import annotations

import asyncio
import bisect
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from loyalty_pulse_dev.processes import free_port, spawn, stop
from loyalty_pulse_dev.simulator import (
    DAY_MS,
    SimulationConfig,
    event_time_ms,
    generate,
    to_json_line,
)
from stream_app.kpi.spike import DayChurn, SpikeRule, Verdict, judge, step
from tests.e2e.conftest import Cluster, WorkerHandle
from tests.e2e.kafka_io import produce
from tests.e2e.test_pipeline import to_records

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"

DAYS = 200
SPIKE_AFTER_DAYS = 108  # the spike window starts 92 days before the last event day
TIMEOUT_S = 120


def config() -> SimulationConfig:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=DAYS + 2
    )
    return SimulationConfig(
        customers=2000,
        seed=7,
        start=start,
        days=DAYS,
        churn_spike_at=(start + timedelta(days=SPIKE_AFTER_DAYS)).date(),
        spike_strength=1.0,
        spike_days=14,
    )


def expected_verdicts(
    events: list[dict[str, Any]], period: int = 30, inactivity: int = 90
) -> list[tuple[Verdict, int | None]]:
    """Each day's verdict and the open alert after it, were every day final (UTC days)."""
    purchases: dict[object, list[int]] = defaultdict(list)
    for e in events:
        if e["type"] == "purchase":
            purchases[e["customer_id"]].append(event_time_ms(e) // DAY_MS)
    days = [sorted(d) for d in purchases.values()]

    def active(x: int) -> set[int]:  # customers whose latest purchase by day x is > x - T
        out = set()
        for n, ds in enumerate(days):
            i = bisect.bisect_right(ds, x)
            if i and ds[i - 1] > x - inactivity:
                out.add(n)
        return out

    first, last = event_time_ms(events[0]) // DAY_MS, event_time_ms(events[-1]) // DAY_MS
    churn: dict[int, DayChurn] = {}
    out: list[tuple[Verdict, int | None]] = []
    open_since: int | None = None
    for d in range(first, last + 1):
        at_start = active(d - period)
        churn[d] = DayChurn(len(at_start - active(d)), len(at_start))
        verdict = judge(d, churn, SpikeRule())
        open_since, _ = step(open_since, verdict)
        out.append((verdict, open_since))
    return out


class Prometheus:
    """A prometheus server of this test's own: free port, tmp storage, 1 s scrapes."""

    def __init__(self, tmp: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus not found: install the Debian package prometheus (./dev setup)")
        assert RULES.is_file(), RULES  # a missing rule file is an empty glob to Prometheus
        tmp.mkdir()
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "loyalty-pulse", "static_configs": [{"targets": [target]}]}
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = spawn(
                [
                    binary,
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local test server
            body = orjson.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(self, expr: str, worker: WorkerHandle, deadline: float) -> list[dict[str, Any]]:
        """Poll an instant query until it returns samples."""
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited ({self.proc.returncode}):\n{self.log_tail()}")
            if worker.proc.poll() is not None:
                pytest.fail(f"worker exited ({worker.proc.returncode}):\n{worker.log_tail()}")
            try:
                result = self.query(expr)
                if result:
                    return result
                last = result
            except (OSError, urllib.error.HTTPError) as err:
                last = err
            time.sleep(0.5)
        pytest.fail(
            f"{expr} returned nothing in {TIMEOUT_S}s (last: {last!r})\n"
            f"targets: {self.safe('targets')}\nrules: {self.safe('rules')}\n"
            f"worker:\n{worker.log_tail()}\nprometheus:\n{self.log_tail()}"
        )

    def safe(self, path: str) -> object:
        try:
            return self.api(path)
        except (OSError, AssertionError) as err:
            return err


def single_value(samples: list[dict[str, Any]]) -> float:
    assert len(samples) == 1, samples
    return float(samples[0]["value"][1])


@pytest.mark.timeout(300)
def test_prometheus_scrapes_kpis_and_fires_the_churn_spike_alert(
    cluster: Cluster, tmp_path: Path
) -> None:
    events = list(generate(config()))
    verdicts = expected_verdicts(events)
    # the design: raised within the last two weeks, open from then to the end
    raised = [n for n, (v, since) in enumerate(verdicts) if since == v.day and v.spike]
    assert raised and len(verdicts) - raised[-1] <= 14, "the traffic has no late churn spike"
    assert all(since is not None for _, since in verdicts[raised[-1] :])

    raw = [to_json_line(e).rstrip() for e in events]
    asyncio.run(produce(cluster.settings, to_records(cluster, raw)))
    worker = cluster.start_worker()
    target = urllib.parse.urlsplit(worker.url).netloc

    prometheus = Prometheus(tmp_path / "prometheus", target)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        assert single_value(prometheus.wait_for('up{job="loyalty-pulse"} == 1', worker, deadline))
        groups = {g["name"] for g in prometheus.api("rules")["groups"]}
        assert groups == {"loyalty-recording", "loyalty-alerts"}, f"rules not loaded: {groups}"

        orders = prometheus.wait_for('loyalty_orders{window="30d"}', worker, deadline)
        assert single_value(orders) > 0
        # the recording rules see the same series, deduplicated over workers
        recorded = prometheus.wait_for('loyalty:orders:max{window="30d"}', worker, deadline)
        assert single_value(recorded) > 0

        # the early days of the traffic may raise (and resolve) an alert of their own:
        # look once the detector has judged the late spike's first day
        raised_s = verdicts[raised[-1]][0].day * 86_400
        checked = "max(loyalty_churn_spike_checked_day_timestamp_seconds)"
        prometheus.wait_for(f"{checked} >= {raised_s}", worker, deadline)
        firing = prometheus.wait_for(
            'ALERTS{alertname="LoyaltyChurnSpike", alertstate="firing"}', worker, deadline
        )
        assert firing[0]["metric"]["severity"] == "page"

        # the gauges the alert quotes: the verdict on a final day of the open spike
        day_s = single_value(prometheus.query(checked))
        by_day = {v.day: v for v, _ in verdicts}
        verdict = by_day[int(day_s) // 86_400]
        assert verdict.spike and verdict.baseline is not None and verdict.churn.rate is not None
        rate = single_value(prometheus.query("max(loyalty_churn_spike_day_churn_ratio)"))
        baseline = single_value(prometheus.query("max(loyalty_churn_spike_baseline_ratio)"))
        assert rate == pytest.approx(float(verdict.churn.rate), rel=1e-9)
        assert baseline == pytest.approx(float(verdict.baseline), rel=1e-9)

        alerts = [
            a
            for a in prometheus.api("alerts")["alerts"]
            if a["labels"]["alertname"] == "LoyaltyChurnSpike"
        ]
        assert len(alerts) == 1 and alerts[0]["state"] == "firing", alerts
        description = alerts[0]["annotations"]["description"]
        assert "unknown" not in description and "%" in description, description

        # nothing else is wrong with this healthy single-worker deployment
        others = prometheus.query('ALERTS{alertname!="LoyaltyChurnSpike", alertstate="firing"}')
        assert others == [], others
    finally:
        stop(prometheus.proc)
