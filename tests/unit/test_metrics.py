"""/metrics: what a scrape exports, against the /kpis document and docs/metrics.md."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loyalty_pulse_dev.simulator import SimulationConfig, generate
from stream_app.contract import EventType, decode
from stream_app.kpi.days import business_day
from stream_app.kpi.partition import PartitionState
from stream_app.kpi.report import kpi_document
from stream_app.metrics import Scrape, WorkerMetrics, exposition, kpi_gauges_markdown
from stream_app.settings import Settings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
BOUNDED_LABELS = {"window", "segment", "channel", "type", "outcome", "reason", "topic", "partition"}
BOUNDED_LABELS |= {"version", "currency", "le"}


@pytest.fixture(scope="module")
def kpis() -> dict[str, Any]:
    """The /kpis document of a small simulated stream, as of its last day."""
    settings = Settings()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    config = SimulationConfig(customers=300, seed=11, start=start, days=200)
    part = PartitionState(0, 7 * 86_400_000, params=settings.kpi_params)
    now = int(time.time() * 1000)
    last = 0
    for n, event in enumerate(generate(config)):
        decoded = decode(EventType(event["type"]), orjson.dumps(event), now, settings.contract)
        assert not hasattr(decoded, "reason")
        part.apply(decoded, "t/0", n, now)  # type: ignore[arg-type]
        last = max(last, business_day(decoded.occurred_ms, None))  # type: ignore[union-attr]
    return kpi_document(part.preview(last), last, settings.kpi_params)


def scrape(kpis: dict[str, Any] | None, **overrides: Any) -> dict[str, Any]:
    metrics = WorkerMetrics()
    metrics.events.update({("purchase", "accepted"): 7, ("unknown", "rejected"): 1})
    metrics.rejected.update({"not_json": 1})
    metrics.latency.observe(0.02, 7)
    metrics.day_close.observe(0.3)
    fields: dict[str, Any] = {
        "metrics": metrics,
        "version": "0.1.0",
        "currency": "USD",
        "kpis": kpis,
        "snapshot_age_s": 1.5,
        "spike": {
            "checked_through": "20000",
            "open_since": "19990",
            "churn_rate": "0.2",
            "baseline": "0.1",
            "threshold": "0.15",
        },
        "lag": {("loyalty.purchases", 3): 12},
        "partitions": 4,
        "ready": True,
        "watermark_ms": 1_700_000_000_000,
        "final_day": 19_999,
        "now_s": 1_700_000_060.0,
    }
    fields.update(overrides)
    text = exposition(Scrape(**fields)).decode()
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[
                sample.name + orjson.dumps(sample.labels, option=orjson.OPT_SORT_KEYS).decode()
            ] = sample.value
        samples.setdefault("__families__", set()).add((family.name, family.type))
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> Any:
    return samples.get(name + orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode())


def documented() -> set[str]:
    """First-column names of docs/metrics.md's tables."""
    return set(re.findall(r"^\| `(loyalty_[a-z_]+)` \|", DOC, re.M))


def test_every_exported_family_is_documented_and_every_documented_one_exported(kpis) -> None:
    families = scrape(kpis)["__families__"]
    exported = {name + ("_total" if kind == "counter" else "") for name, kind in families}
    assert exported == documented()


def test_kpi_gauges_carry_the_values_of_the_kpis_document(kpis) -> None:
    samples = scrape(kpis)
    w = kpis["windows"]["30d"]
    assert value(samples, "loyalty_orders", window="30d") == w["orders"]
    assert value(samples, "loyalty_revenue", window="365d") == kpis["windows"]["365d"]["revenue"]
    member = w["segments"]["member"]
    assert (
        value(samples, "loyalty_segment_orders", window="30d", segment="member") == member["orders"]
    )
    for channel, stats in w["channels"].items():
        assert (
            value(samples, "loyalty_channel_orders", window="30d", channel=channel)
            == stats["orders"]
        )
    assert value(samples, "loyalty_churned_customers") == kpis["churn"]["churned"]
    assert value(samples, "loyalty_program_members") == kpis["program"]["members_total"]
    years = kpis["clv"]["expected_lifetime_years"]
    if years is not None:
        assert value(samples, "loyalty_clv_expected_lifetime_seconds") == pytest.approx(
            years * 365 * 86_400
        )
    assert value(samples, "loyalty_churn_spike") == 1
    assert value(samples, "loyalty_churn_spike_baseline_ratio") == 0.1
    assert value(samples, "loyalty_events_total", type="purchase", outcome="accepted") == 7
    assert (
        value(samples, "loyalty_consumer_lag_records", topic="loyalty.purchases", partition="3")
        == 12
    )
    assert value(samples, "loyalty_watermark_delay_seconds") == 60
    assert value(samples, "loyalty_processing_latency_seconds_count") == 7


def test_null_ratios_have_no_sample(kpis) -> None:
    doc = orjson.loads(orjson.dumps(kpis))
    doc["churn"]["churn_rate"] = None
    doc["windows"]["30d"]["aov"] = None
    samples = scrape(doc)
    assert value(samples, "loyalty_churn_ratio") is None
    assert value(samples, "loyalty_average_order_value", window="30d") is None
    assert value(samples, "loyalty_average_order_value", window="90d") is not None


def test_without_a_snapshot_only_operations_and_the_detector_are_exported() -> None:
    samples = scrape(None, spike={}, snapshot_age_s=None)
    names = {name for name, _ in samples["__families__"]}
    assert not {n for n in names if n.startswith(("loyalty_orders", "loyalty_churn_ratio"))}
    assert value(samples, "loyalty_churn_spike") == 0
    assert "loyalty_events" in names


def test_channels_beyond_the_limit_are_summed_as_other(kpis) -> None:
    doc = orjson.loads(orjson.dumps(kpis))
    doc["windows"]["30d"]["channels"] = {
        "pos": {"orders": 5, "revenue": 10.1, "active_customers": 3, "aov": 2.02},
        "web": {"orders": 3, "revenue": 0.1, "active_customers": 2, "aov": 0.0333},
        "kiosk": {"orders": 1, "revenue": 0.2, "active_customers": 1, "aov": 0.2},
    }
    for w in ("90d", "365d"):
        doc["windows"][w]["channels"] = doc["windows"]["30d"]["channels"]
    samples = scrape(doc, max_channels=1)
    assert value(samples, "loyalty_channel_orders", window="30d", channel="pos") == 5
    assert value(samples, "loyalty_channel_orders", window="30d", channel="other") == 4
    assert value(samples, "loyalty_channel_revenue", window="30d", channel="other") == 0.3  # exact
    assert value(samples, "loyalty_channel_orders", window="30d", channel="web") is None


def test_labels_come_only_from_bounded_sets(kpis) -> None:
    for key in scrape(kpis):
        if key == "__families__":
            continue
        labels = orjson.loads(key[key.index("{") :])
        assert set(labels) <= BOUNDED_LABELS, key


def test_day_timestamps_are_the_start_of_the_business_day(kpis) -> None:
    samples = scrape(kpis, final_day=20_000)
    assert value(samples, "loyalty_final_day_timestamp_seconds") == 20_000 * 86_400
    as_of = datetime.fromisoformat(kpis["as_of"]).replace(tzinfo=UTC)
    assert value(samples, "loyalty_kpi_as_of_timestamp_seconds") == as_of.timestamp()


def test_the_kpi_gauge_table_of_docs_metrics_md_is_generated_from_the_declaration() -> None:
    assert kpi_gauges_markdown() in DOC, "regenerate: python -m stream_app.metrics"
