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
BOUNDED_LABELS |= {"tier", "store", "baseline", "quantile", "months_since_first_purchase"}


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


def stats(orders: int, revenue: float, active: int) -> dict[str, Any]:
    return {
        "orders": orders,
        "revenue": revenue,
        "active_customers": active,
        "aov": revenue / orders if orders else None,
    }


def lift(**values: Any) -> dict[str, Any]:
    out = {
        "baseline": "control",
        "members": 120,
        "baseline_customers": 30,
        "revenue_per_member": 55.5,
        "revenue_per_baseline": 50.0,
        "difference": 5.5,
        "ci_low": -1.25,
        "ci_high": 12.25,
        "p_value": 0.11,
        "relative_lift": 0.11,
    }
    return out | values


def v2(kpis: dict[str, Any]) -> dict[str, Any]:
    """The document with the fields of spec version 2 set to known values (§5 shape)."""
    doc: dict[str, Any] = orjson.loads(orjson.dumps(kpis))
    for n, w in enumerate(doc["windows"].values(), start=1):
        w["tiers"] = {"gold": stats(4 * n, 40.0 * n, 2 * n), "silver": stats(n, 5.0, 1)}
        w["stores"] = {"s1": stats(10 * n, 100.5 * n, 6), "s2": stats(n, 1.25, 1)}
        w["second_purchases"] = 3 * n
        w["days_to_second_purchase"] = {"p25": 2, "median": 5, "p75": 9, "mean": 6.5}
        w["lift"] = lift(difference=5.5 * n)
    doc["churn"]["history_complete"] = True
    doc["clv"]["history_complete"] = True
    doc["program"].update(
        {
            "members_by_tier": {"gold": 70, "silver": 50},
            "outstanding_points_value": 1234.56,
            "program_cost": 400.0,
            "incremental_revenue": 660.0,
            "incremental_revenue_ci": [-150.0, 1470.0],
            "incremental_margin": 198.0,
            "roi": -0.505,
            "roi_ci": [-1.1125, 0.1025],
        }
    )
    doc["as_of"] = "2025-07-15"
    doc["cohorts"] = {
        "months": 3,
        "rows": [
            {
                "cohort": "2025-05",
                "size": 10,
                "active": [10, 4, 2],
                "revenue": [100.1, 40.2, 9.0],
                "retention": [1.0, 0.4, 0.2],
            },
            {
                "cohort": "2025-06",
                "size": 20,
                "active": [20, 5],
                "revenue": [200.2, 50.0],
                "retention": [1.0, 0.25],
            },
            {"cohort": "2025-07", "size": 8, "active": [8], "revenue": [70.0], "retention": [1.0]},
        ],
    }
    return doc


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


@pytest.mark.parametrize("made_by", ["engine", "hand"])
def test_every_exported_family_is_documented_and_every_documented_one_exported(
    kpis, made_by: str
) -> None:
    families = scrape(kpis if made_by == "engine" else v2(kpis))["__families__"]
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


def test_the_kpis_of_spec_version_2_are_exported(kpis) -> None:
    doc = v2(kpis)
    samples = scrape(doc)
    assert value(samples, "loyalty_tier_orders", window="30d", tier="gold") == 4
    assert value(samples, "loyalty_tier_revenue", window="90d", tier="gold") == 80.0
    assert value(samples, "loyalty_tier_average_order_value", window="30d", tier="silver") == 5.0
    assert value(samples, "loyalty_store_active_customers", window="365d", store="s1") == 6
    assert value(samples, "loyalty_store_revenue", window="30d", store="s2") == 1.25
    assert value(samples, "loyalty_second_purchase_customers", window="90d") == 6
    for quantile, days in (("0.25", 2), ("0.5", 5), ("0.75", 9)):
        assert (
            value(
                samples, "loyalty_time_to_second_purchase_seconds", window="30d", quantile=quantile
            )
            == days * 86_400
        )
    assert (
        value(samples, "loyalty_time_to_second_purchase_mean_seconds", window="30d") == 6.5 * 86_400
    )
    labels = {"window": "30d", "baseline": "control"}
    assert value(samples, "loyalty_lift_members", **labels) == 120
    assert value(samples, "loyalty_lift_baseline_customers", **labels) == 30
    assert value(samples, "loyalty_lift_revenue_per_member", **labels) == 55.5
    assert value(samples, "loyalty_lift_revenue_per_baseline_customer", **labels) == 50.0
    assert value(samples, "loyalty_lift_difference", **labels) == 5.5
    assert value(samples, "loyalty_lift_difference", window="90d", baseline="control") == 11.0
    assert value(samples, "loyalty_lift_difference_ci_low", **labels) == -1.25
    assert value(samples, "loyalty_lift_difference_ci_high", **labels) == 12.25
    assert value(samples, "loyalty_lift_p_value", **labels) == 0.11
    assert value(samples, "loyalty_lift_relative_ratio", **labels) == 0.11
    assert value(samples, "loyalty_churn_history_complete") == 1
    assert value(samples, "loyalty_program_tier_members", tier="gold") == 70
    assert value(samples, "loyalty_program_outstanding_points_value") == 1234.56
    assert value(samples, "loyalty_program_cost") == 400.0
    assert value(samples, "loyalty_program_incremental_revenue") == 660.0
    assert value(samples, "loyalty_program_incremental_revenue_ci_low") == -150.0
    assert value(samples, "loyalty_program_incremental_revenue_ci_high") == 1470.0
    assert value(samples, "loyalty_program_incremental_margin") == 198.0
    assert value(samples, "loyalty_program_roi_ratio") == -0.505
    assert value(samples, "loyalty_program_roi_ci_low_ratio") == -1.1125
    assert value(samples, "loyalty_program_roi_ci_high_ratio") == 0.1025


def test_nulls_of_spec_version_2_have_no_sample_and_false_is_0(kpis) -> None:
    doc = v2(kpis)
    w = doc["windows"]["30d"]
    w["days_to_second_purchase"] = None
    w["second_purchases"] = 0
    w["lift"] = lift(
        baseline="non_member", ci_low=None, ci_high=None, p_value=None, relative_lift=None
    )
    doc["churn"]["history_complete"] = False
    doc["program"].update(
        {"roi": None, "roi_ci": [None, 0.25], "incremental_revenue_ci": [None, None]}
    )
    samples = scrape(doc)
    assert value(samples, "loyalty_second_purchase_customers", window="30d") == 0
    for quantile in ("0.25", "0.5", "0.75"):
        assert (
            value(
                samples, "loyalty_time_to_second_purchase_seconds", window="30d", quantile=quantile
            )
            is None
        )
    assert value(samples, "loyalty_time_to_second_purchase_mean_seconds", window="30d") is None
    assert value(samples, "loyalty_time_to_second_purchase_mean_seconds", window="90d") is not None
    labels = {"window": "30d", "baseline": "non_member"}
    assert value(samples, "loyalty_lift_difference", **labels) == 5.5
    assert value(samples, "loyalty_lift_difference", window="30d", baseline="control") is None
    for name in ("ci_low", "ci_high"):
        assert value(samples, f"loyalty_lift_difference_{name}", **labels) is None
        assert value(samples, f"loyalty_program_incremental_revenue_{name}") is None
    assert value(samples, "loyalty_lift_p_value", **labels) is None
    assert value(samples, "loyalty_lift_relative_ratio", **labels) is None
    assert value(samples, "loyalty_churn_history_complete") == 0
    assert value(samples, "loyalty_program_roi_ratio") is None
    assert value(samples, "loyalty_program_roi_ci_low_ratio") is None
    assert value(samples, "loyalty_program_roi_ci_high_ratio") == 0.25


def test_stores_beyond_the_limit_are_summed_as_other_ranked_by_revenue_of_the_longest_window(
    kpis,
) -> None:
    doc = v2(kpis)
    doc["windows"]["30d"]["stores"] = {
        "s1": stats(1, 0.1, 1),  # most orders in 30d but least revenue over 365d
        "s2": stats(2, 0.2, 2),
        "other": stats(1, 1.0, 1),  # a store named "other" is never named
    }
    doc["windows"]["365d"]["stores"] = {
        "s1": stats(9, 0.1, 1),
        "s2": stats(2, 50.0, 2),
        "s3": stats(1, 20.0, 1),
        "other": stats(1, 99.0, 1),
    }
    samples = scrape(doc, max_stores=2)
    assert value(samples, "loyalty_store_revenue", window="365d", store="s2") == 50.0
    assert value(samples, "loyalty_store_revenue", window="365d", store="s3") == 20.0
    assert value(samples, "loyalty_store_revenue", window="365d", store="other") == 99.1  # exact
    assert value(samples, "loyalty_store_orders", window="365d", store="other") == 10
    assert value(samples, "loyalty_store_revenue", window="365d", store="s1") is None
    assert value(samples, "loyalty_store_orders", window="30d", store="s2") == 2
    assert value(samples, "loyalty_store_orders", window="30d", store="other") == 2
    assert value(samples, "loyalty_store_average_order_value", window="30d", store="other") == 0.55
    assert value(samples, "loyalty_store_revenue", window="30d", store="s3") is None


def test_tiers_beyond_the_limit_are_summed_as_other_ranked_by_members(kpis) -> None:
    doc = v2(kpis)
    doc["program"]["members_by_tier"] = {"bronze": 500, "gold": 20, "silver": 80, "steel": 1}
    for w in doc["windows"].values():
        w["tiers"] = {
            "gold": stats(50, 5000.0, 20),
            "silver": stats(10, 300.0, 8),
            "steel": stats(1, 1.0, 1),
        }
    samples = scrape(doc, max_tiers=2)
    assert value(samples, "loyalty_program_tier_members", tier="bronze") == 500
    assert value(samples, "loyalty_program_tier_members", tier="silver") == 80
    assert value(samples, "loyalty_program_tier_members", tier="other") == 21
    assert value(samples, "loyalty_program_tier_members", tier="gold") is None
    assert value(samples, "loyalty_tier_orders", window="30d", tier="silver") == 10
    assert value(samples, "loyalty_tier_orders", window="30d", tier="other") == 51
    assert value(samples, "loyalty_tier_active_customers", window="30d", tier="other") == 21
    assert value(samples, "loyalty_tier_orders", window="30d", tier="gold") is None
    assert value(samples, "loyalty_tier_orders", window="30d", tier="bronze") is None  # no sales


def test_cohorts_are_summed_by_month_offset_over_complete_months(kpis) -> None:
    samples = scrape(v2(kpis))  # as of 2025-07-15: July is not over
    offset = "months_since_first_purchase"
    # offset 0: May and June (July's cohort is still forming); offset 1: May's June
    assert value(samples, "loyalty_cohort_customers", **{offset: "0"}) == 30
    assert value(samples, "loyalty_cohort_active_customers", **{offset: "0"}) == 30
    assert value(samples, "loyalty_cohort_revenue", **{offset: "0"}) == 300.3  # exact
    assert value(samples, "loyalty_cohort_retention_ratio", **{offset: "0"}) == 1.0
    assert value(samples, "loyalty_cohort_customers", **{offset: "1"}) == 10
    assert value(samples, "loyalty_cohort_retention_ratio", **{offset: "1"}) == 0.4
    assert value(samples, "loyalty_cohort_revenue", **{offset: "1"}) == 40.2
    assert value(samples, "loyalty_cohort_customers", **{offset: "2"}) is None

    doc = v2(kpis)
    doc["as_of"] = "2025-07-31"  # the month of D is over: its entries count
    doc["cohorts"]["rows"][2]["size"] = 0
    doc["cohorts"]["rows"][2]["active"] = [0]
    samples = scrape(doc)
    assert value(samples, "loyalty_cohort_customers", **{offset: "0"}) == 30
    assert value(samples, "loyalty_cohort_customers", **{offset: "1"}) == 30
    assert value(samples, "loyalty_cohort_active_customers", **{offset: "1"}) == 9
    assert value(samples, "loyalty_cohort_retention_ratio", **{offset: "1"}) == 9 / 30
    assert value(samples, "loyalty_cohort_retention_ratio", **{offset: "2"}) == 0.2

    doc["cohorts"]["rows"] = [doc["cohorts"]["rows"][2]]  # only an empty cohort
    samples = scrape(doc)
    assert value(samples, "loyalty_cohort_customers", **{offset: "0"}) == 0
    assert value(samples, "loyalty_cohort_retention_ratio", **{offset: "0"}) is None


def test_a_document_without_the_fields_of_spec_version_2_still_exports_the_others(kpis) -> None:
    """A snapshot published before the upgrade stays in Redis until the next one."""
    doc = orjson.loads(orjson.dumps(kpis))
    for w in doc["windows"].values():
        for key in ("tiers", "stores", "second_purchases", "days_to_second_purchase", "lift"):
            w.pop(key, None)
    for section in ("churn", "clv"):
        doc[section].pop("history_complete", None)
    for key in ("members_by_tier", "outstanding_points_value", "incremental_revenue_ci", "roi_ci"):
        doc["program"].pop(key, None)
    doc.pop("cohorts", None)
    samples = scrape(doc)
    assert value(samples, "loyalty_orders", window="30d") == kpis["windows"]["30d"]["orders"]
    assert value(samples, "loyalty_churn_history_complete") is None
    assert not [k for k in samples if k.startswith(("loyalty_cohort", "loyalty_lift"))]


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
    doc = v2(kpis)
    for n, w in enumerate(doc["windows"].values()):
        w["stores"] = {f"store-{n}-{i}": stats(1, float(i), 1) for i in range(50)}
        w["tiers"] = {f"tier-{i}": stats(1, 1.0, 1) for i in range(50)}
    doc["program"]["members_by_tier"] = {f"tier-{i}": i for i in range(50)}
    values: dict[str, set[str]] = {}
    for key in scrape(doc, max_stores=5, max_tiers=3):
        if key == "__families__":
            continue
        labels = orjson.loads(key[key.index("{") :])
        assert set(labels) <= BOUNDED_LABELS, key
        for label, v in labels.items():
            values.setdefault(label, set()).add(v)
    assert len(values["store"]) == 5 + 1 and "other" in values["store"]
    assert values["tier"] == {"tier-49", "tier-48", "tier-47", "other"}
    assert values["quantile"] == {"0.25", "0.5", "0.75"}
    assert values["months_since_first_purchase"] == {"0", "1"}
    assert values["baseline"] == {"control"}


def test_day_timestamps_are_the_start_of_the_business_day(kpis) -> None:
    samples = scrape(kpis, final_day=20_000)
    assert value(samples, "loyalty_final_day_timestamp_seconds") == 20_000 * 86_400
    as_of = datetime.fromisoformat(kpis["as_of"]).replace(tzinfo=UTC)
    assert value(samples, "loyalty_kpi_as_of_timestamp_seconds") == as_of.timestamp()


def test_the_kpi_gauge_table_of_docs_metrics_md_is_generated_from_the_declaration() -> None:
    assert kpi_gauges_markdown() in DOC, "regenerate: python -m stream_app.metrics"
