"""Prometheus metrics of a worker (docs/metrics.md lists every one).

``WorkerMetrics`` holds what this worker counts as it runs (plain integers,
updated once per batch or tick: a prometheus-client child per event would
cost more than the event). At scrape time ``collect`` gathers a ``Scrape`` —
the merged KPI snapshot and the detector's state read from Redis, plus this
worker's view — and ``ScrapeCollector`` turns it into metric families on a
fresh registry, so nothing outlives a rebalance or a snapshot.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from stream_app.kpi.days import to_date
from stream_app.serving import from_date_iso

SECONDS_PER_YEAR = 365 * 86_400
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CLOSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """Cumulative buckets that take many equal observations at once."""

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: +Inf only
        self.sum = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.sum += value * times

    def buckets(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


@dataclass
class WorkerMetrics:
    """What this worker did since it started."""

    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, outcome)
    rejected: Counter[str] = field(default_factory=Counter)  # reason
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    day_close: Histogram = field(default_factory=lambda: Histogram(CLOSE_BUCKETS))
    redis_errors: int = 0


@dataclass(frozen=True)
class Scrape:
    """Everything one scrape exports, gathered before any family is built."""

    metrics: WorkerMetrics
    version: str
    currency: str
    kpis: Mapping[str, Any] | None  # the current /kpis document
    snapshot_age_s: float | None
    spike: Mapping[str, str]  # the detector's state hash
    lag: Mapping[tuple[str, int], int]  # (topic, partition) -> records
    partitions: int
    ready: bool
    watermark_ms: int | None
    final_day: int | None
    now_s: float = field(default_factory=time.time)
    max_channels: int = 20
    redis_errors: int = 0  # the day close's, besides those of scrapes in ``metrics``


def day_start_seconds(day: int, zone: Any) -> float:
    """00:00 of business ``day`` in ``zone`` (None: UTC), as epoch seconds."""
    d = to_date(day)
    return datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() if zone else day * 86_400.0


class ScrapeCollector:
    def __init__(self, scrape: Scrape, zone: Any = None) -> None:
        self.s = scrape
        self.zone = zone

    def collect(self) -> Iterator[Metric]:
        yield from self._operations()
        if self.s.kpis is not None:
            yield from self._kpis(self.s.kpis)
        yield from self._spike()

    # --- operations -------------------------------------------------------

    def _operations(self) -> Iterator[Metric]:
        s, m = self.s, self.s.metrics
        info = GaugeMetricFamily(
            "loyalty_build_info",
            "Running version; currency of money series",
            labels=["version", "currency"],
        )
        info.add_metric([s.version, s.currency], 1)
        yield info
        events = CounterMetricFamily(
            "loyalty_events_total",
            "Records read, by event type and outcome",
            labels=["type", "outcome"],
        )
        for (kind, outcome), n in sorted(m.events.items()):
            events.add_metric([kind, outcome], n)
        yield events
        rejected = CounterMetricFamily(
            "loyalty_rejected_events_total", "Rejected records by reason code", labels=["reason"]
        )
        for reason, n in sorted(m.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        lag = GaugeMetricFamily(
            "loyalty_consumer_lag_records",
            "Records not yet read in an owned input partition",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(s.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        yield _gauge("loyalty_worker_partitions", "Input partitions this worker owns", s.partitions)
        yield _gauge("loyalty_worker_ready", "1 once the worker's state is recovered", int(s.ready))
        if s.watermark_ms is not None:
            mark = s.watermark_ms / 1000
            yield _gauge(
                "loyalty_watermark_timestamp_seconds", "Stream watermark (event time)", mark
            )
            yield _gauge(
                "loyalty_watermark_delay_seconds",
                "Wall clock minus the stream watermark",
                s.now_s - mark,
            )
        if s.final_day is not None:
            yield _gauge(
                "loyalty_final_day_timestamp_seconds",
                "Start of the latest final business day",
                day_start_seconds(s.final_day, self.zone),
            )
        yield _histogram(
            "loyalty_processing_latency_seconds",
            "Per record: read by this worker to its state change on the broker",
            m.latency,
        )
        yield _histogram(
            "loyalty_day_close_duration_seconds",
            "Day-close ticks that closed or merged days",
            m.day_close,
        )
        if s.snapshot_age_s is not None:
            yield _gauge(
                "loyalty_serving_snapshot_age_seconds",
                "Wall clock minus the publication of the current /kpis snapshot",
                s.snapshot_age_s,
            )
        errors = CounterMetricFamily(
            "loyalty_redis_errors", "Failed Redis operations of this worker"
        )
        errors.add_metric([], m.redis_errors + s.redis_errors)
        yield errors

    # --- KPIs -------------------------------------------------------------

    def _kpis(self, doc: Mapping[str, Any]) -> Iterator[Metric]:
        yield _gauge(
            "loyalty_kpi_as_of_timestamp_seconds",
            "Start of the business day the KPIs are as of",
            day_start_seconds(from_date_iso(doc["as_of"]), self.zone),
        )
        windows = doc["windows"]
        for g in WINDOW_GAUGES:
            family = GaugeMetricFamily(g.name, g.help, labels=g.labels)
            for window, values in windows.items():
                _add(family, [window], values.get(g.key))
            yield family
        for g in SEGMENT_GAUGES:
            family = GaugeMetricFamily(g.name, g.help, labels=g.labels)
            for window, values in windows.items():
                for segment, stats in values["segments"].items():
                    _add(family, [window, segment], stats.get(g.key))
            yield family
        longest = windows[max(windows, key=lambda w: int(w.rstrip("d")))]["channels"]
        ranked = sorted(longest, key=lambda c: (-longest[c]["orders"], c))
        named = set(ranked[: self.s.max_channels])
        channels = {w: fold_channels(v["channels"], named) for w, v in windows.items()}
        for g in CHANNEL_GAUGES:
            family = GaugeMetricFamily(g.name, g.help, labels=g.labels)
            for window, stats_by_channel in channels.items():
                for channel, stats in stats_by_channel.items():
                    _add(family, [window, channel], stats.get(g.key))
            yield family
        for section, gauges in (
            ("churn", CHURN_GAUGES),
            ("clv", CLV_GAUGES),
            ("program", PROGRAM_GAUGES),
        ):
            values = doc[section]
            for g in gauges:
                value = values.get(g.key)
                if g.key == "expected_lifetime_years" and value is not None:
                    value = value * SECONDS_PER_YEAR
                family = GaugeMetricFamily(g.name, g.help)
                _add(family, [], value)
                yield family

    # --- churn spike ------------------------------------------------------

    def _spike(self) -> Iterator[Metric]:
        state = self.s.spike
        yield _gauge(
            "loyalty_churn_spike",
            "1 while a churn-spike alert is open",
            int(bool(state.get("open_since"))),
        )
        checked = state.get("checked_through")
        if checked:
            yield _gauge(
                "loyalty_churn_spike_checked_day_timestamp_seconds",
                "The last final day the detector judged",
                day_start_seconds(int(checked), self.zone),
            )
        for name, key, help_ in SPIKE_GAUGES:
            if state.get(key):
                yield _gauge(name, help_, float(state[key]))


def fold_channels(
    stats: Mapping[str, Mapping[str, Any]], named: set[str]
) -> dict[str, dict[str, Any]]:
    """The named channels as they are; the others summed as "other" (its aov from
    the sums; its active customers a sum, so one customer may count twice)."""
    out: dict[str, dict[str, Any]] = {c: dict(v) for c, v in stats.items() if c in named}
    rest = [v for c, v in stats.items() if c not in named]
    if rest:
        orders = sum(v["orders"] for v in rest)
        revenue = float(sum(Decimal(repr(v["revenue"])) for v in rest))  # cents stay exact
        out["other"] = {
            "orders": orders,
            "revenue": revenue,
            "active_customers": sum(v["active_customers"] for v in rest),
            "aov": revenue / orders if orders else None,
        }
    return out


@dataclass(frozen=True)
class KpiGauge:
    """One KPI gauge: its name, the /kpis field it exports, its HELP text, its
    labels and what docs/metrics.md says of it (``kpi_gauges_markdown``)."""

    name: str
    key: str
    help: str
    doc: str
    labels: tuple[str, ...]


def kpi_gauges(labels: tuple[str, ...], *rows: tuple[str, str, str, str]) -> tuple[KpiGauge, ...]:
    return tuple(KpiGauge(name, key, help_, doc, labels) for name, key, help_, doc in rows)


def _gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_, value=value)


def _add(family: GaugeMetricFamily, labels: list[str], value: Any) -> None:
    if value is not None:  # a null ratio has no sample
        family.add_metric(labels, float(value))


def _histogram(name: str, help_: str, h: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, help_, buckets=h.buckets(), sum_value=h.sum)


WINDOW_GAUGES = kpi_gauges(
    ("window",),
    (
        "loyalty_orders",
        "orders",
        "Purchases in the window",
        "purchases in the window (§3.1 `orders`)",
    ),
    (
        "loyalty_revenue",
        "revenue",
        "Revenue in the window (currency units)",
        "sum of purchase amounts (`revenue`)",
    ),
    (
        "loyalty_active_customers",
        "active_customers",
        "Customers with a purchase in the window",
        "distinct customers with ≥ 1 purchase",
    ),
    (
        "loyalty_repeat_customers",
        "repeat_customers",
        "Customers with 2+ purchases in the window",
        "distinct customers with ≥ 2 purchases",
    ),
    ("loyalty_average_order_value", "aov", "Revenue / orders", "revenue / orders (`aov`)"),
    (
        "loyalty_purchase_frequency",
        "purchase_frequency",
        "Orders / active customers",
        "orders / active customers",
    ),
    (
        "loyalty_repeat_purchase_ratio",
        "repeat_purchase_rate",
        "Repeat / active customers",
        "repeat / active customers (`repeat_purchase_rate`)",
    ),
    (
        "loyalty_points_issued",
        "points_issued",
        "Points earned in the window",
        "points earned by purchases",
    ),
    (
        "loyalty_points_redeemed",
        "points_redeemed",
        "Points redeemed in the window",
        "points spent by redemptions",
    ),
    (
        "loyalty_redemption_ratio",
        "redemption_rate",
        "Points redeemed / issued",
        "points redeemed / issued (`redemption_rate`, can exceed 1)",
    ),
    (
        "loyalty_redeeming_customers",
        "redeeming_customers",
        "Customers with a redemption",
        "distinct customers with ≥ 1 redemption",
    ),
    (
        "loyalty_active_members",
        "active_members",
        "Active customers who are members",
        "active customers whose segment is `member`",
    ),
    (
        "loyalty_enrollment_ratio",
        "enrollment_rate",
        "Active members / active customers",
        "active members / active customers (`enrollment_rate`)",
    ),
    (
        "loyalty_new_enrollments",
        "new_enrollments",
        "Customers with a member enrollment",
        "distinct customers with a `member` enrollment in the window",
    ),
)
SEGMENT_GAUGES = kpi_gauges(
    ("window", "segment"),
    (
        "loyalty_segment_orders",
        "orders",
        "Purchases of the segment's customers",
        "orders of the segment's customers",
    ),
    (
        "loyalty_segment_revenue",
        "revenue",
        "Revenue of the segment (currency units)",
        "their revenue",
    ),
    (
        "loyalty_segment_active_customers",
        "active_customers",
        "Active customers of the segment",
        "their active customers",
    ),
    (
        "loyalty_segment_repeat_customers",
        "repeat_customers",
        "Repeat customers of the segment",
        "their repeat customers",
    ),
    ("loyalty_segment_average_order_value", "aov", "Segment revenue / orders", "their aov"),
    (
        "loyalty_segment_purchase_frequency",
        "purchase_frequency",
        "Segment orders / active",
        "their purchase frequency",
    ),
    (
        "loyalty_segment_repeat_purchase_ratio",
        "repeat_purchase_rate",
        "Segment repeat / active",
        "their repeat purchase rate",
    ),
)
CHANNEL_GAUGES = kpi_gauges(
    ("window", "channel"),
    ("loyalty_channel_orders", "orders", "Purchases of the channel", "orders of the channel"),
    (
        "loyalty_channel_revenue",
        "revenue",
        "Revenue of the channel (currency units)",
        "its revenue",
    ),
    (
        "loyalty_channel_active_customers",
        "active_customers",
        "Active customers of the channel",
        "its active customers (`other`: the sum over the channels it folds, so a customer "
        "of two of them counts twice)",
    ),
    ("loyalty_channel_average_order_value", "aov", "Channel revenue / orders", "its aov"),
)
CHURN_GAUGES = kpi_gauges(
    (),
    (
        "loyalty_churn_customers_at_start",
        "customers_at_start",
        "S: active as of D - P",
        "S: customers active as of D − P (§3.2)",
    ),
    (
        "loyalty_churn_active_at_end",
        "active_at_end",
        "E: active as of D",
        "E: customers active as of D",
    ),
    (
        "loyalty_churned_customers",
        "churned",
        "Active as of D - P, not as of D",
        "active as of D − P and not as of D (`churned`)",
    ),
    (
        "loyalty_churn_new_customers",
        "new_customers",
        "N: first purchase in (D - P, D]",
        "N: first purchase in (D − P, D]",
    ),
    ("loyalty_churn_ratio", "churn_rate", "Churned / S", "churned / S (`churn_rate`)"),
    ("loyalty_retention_ratio", "retention_rate", "(E - N) / S", "(E − N) / S (`retention_rate`)"),
    (
        "loyalty_churn_value_at_start",
        "value_at_start",
        "Base value of S (currency units)",
        "base value of S (`value_at_start`)",
    ),
    (
        "loyalty_churn_value_churned",
        "value_churned",
        "Base value of the churned",
        "base value of the churned customers",
    ),
    (
        "loyalty_value_churn_ratio",
        "value_churn_rate",
        "Value churned / value at start",
        "value churned / value at start",
    ),
    (
        "loyalty_churned_on_day_customers",
        "churned_on_day",
        "Active as of D - 1, not as of D",
        "active as of D − 1 and not as of D (`churned_on_day`)",
    ),
)
CLV_GAUGES = kpi_gauges(
    (),
    (
        "loyalty_clv_annual_churn_ratio",
        "annual_churn_rate",
        "1 - (1 - churn_rate)^(365/P)",
        "1 − (1 − churn_rate)^(365 / P) (§3.3)",
    ),
    (
        "loyalty_clv_expected_lifetime_seconds",
        "expected_lifetime_years",
        "Expected lifetime",
        "expected customer lifetime (years × 365 × 86 400)",
    ),
    (
        "loyalty_clv_value",
        "value",
        "Customer lifetime value (currency units)",
        "customer lifetime value (CLV)",
    ),
)
PROGRAM_GAUGES = kpi_gauges(
    (),
    (
        "loyalty_program_members",
        "members_total",
        "Customers whose segment is member",
        "customers whose segment is `member` (§3.4 `members_total`)",
    ),
    (
        "loyalty_program_control_customers",
        "control_total",
        "Customers in the control group",
        "customers whose segment is `control` (`control_total`)",
    ),
    (
        "loyalty_program_outstanding_points",
        "outstanding_points",
        "Points issued minus redeemed",
        "points issued minus redeemed, all time (the liability)",
    ),
    (
        "loyalty_program_cost",
        "program_cost",
        "Reward cost over 365 days (currency units)",
        "reward value of redemptions over 365 days",
    ),
    (
        "loyalty_program_incremental_revenue",
        "incremental_revenue",
        "Revenue the program added",
        "(rpc(member) − rpc(baseline)) × active members",
    ),
    (
        "loyalty_program_roi_ratio",
        "roi",
        "(Incremental revenue - cost) / cost",
        "(incremental revenue − cost) / cost",
    ),
)
SPIKE_GAUGES = (
    ("loyalty_churn_spike_day_churn_ratio", "churn_rate", "Churn rate of the last judged day"),
    ("loyalty_churn_spike_baseline_ratio", "baseline", "Baseline churn rate of that day"),
    ("loyalty_churn_spike_threshold_ratio", "threshold", "Baseline x the spike factor"),
)


KPI_GAUGES = (
    *WINDOW_GAUGES,
    *SEGMENT_GAUGES,
    *CHANNEL_GAUGES,
    *CHURN_GAUGES,
    *CLV_GAUGES,
    *PROGRAM_GAUGES,
)
AS_OF_DOC = "start (00:00 in the reporting time zone) of the business day the KPIs are as of"


def kpi_gauges_markdown() -> str:
    """docs/metrics.md's table of KPI gauges (print it: ``python -m stream_app.metrics``)."""
    rows = ["| name | labels | meaning (spec §) |", "|---|---|---|"]
    rows.append(f"| `loyalty_kpi_as_of_timestamp_seconds` | | {AS_OF_DOC} |")
    for g in KPI_GAUGES:
        labels = ", ".join(f"`{label}`" for label in g.labels)
        cell = f" {labels} " if labels else " "
        rows.append(f"| `{g.name}` |{cell}| {g.doc} |")
    return "\n".join(rows)


HEADERS = {"Content-Type": CONTENT_TYPE_LATEST}


def exposition(scrape: Scrape, zone: Any = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(scrape, zone))
    return generate_latest(registry)


if __name__ == "__main__":
    print(kpi_gauges_markdown())
