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
from datetime import datetime, timedelta
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
    max_stores: int = 20
    max_tiers: int = 10
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
        windows: Mapping[str, Mapping[str, Any]] = doc["windows"]
        for g in WINDOW_GAUGES:
            family = _family(g)
            for window, values in windows.items():
                _add(family, [window], pick(values, g.key), g.scale)
            yield family
        family = _family(SECOND_PURCHASE_QUANTILES)
        for window, values in windows.items():
            for quantile, key in QUANTILE_KEYS:
                value = pick(values, f"{SECOND_KEY}.{key}")
                _add(family, [window, quantile], value, SECOND_PURCHASE_QUANTILES.scale)
        yield family
        for g in LIFT_GAUGES:
            family = _family(g)
            for window, values in windows.items():
                lift = values.get("lift") or {}
                if lift.get("baseline") is not None:
                    _add(family, [window, str(lift["baseline"])], lift.get(g.key))
            yield family
        for g in SEGMENT_GAUGES:
            family = _family(g)
            for window, values in windows.items():
                for segment, stats in values["segments"].items():
                    _add(family, [window, segment], stats.get(g.key))
            yield family
        longest = windows[max(windows, key=lambda w: int(w.rstrip("d")))]
        tier_members: Mapping[str, int] = doc["program"].get("members_by_tier") or {}
        named_tiers = top_tiers(tier_members, windows, self.s.max_tiers)
        for section, gauges, named in (
            (
                "channels",
                CHANNEL_GAUGES,
                top(longest.get("channels"), "orders", self.s.max_channels),
            ),
            ("stores", STORE_GAUGES, top(longest.get("stores"), "revenue", self.s.max_stores)),
            ("tiers", TIER_GAUGES, named_tiers),
        ):
            folded = {w: fold_breakdown(v.get(section) or {}, named) for w, v in windows.items()}
            for g in gauges:
                family = _family(g)
                for window, stats_by_name in folded.items():
                    for name, stats in stats_by_name.items():
                        _add(family, [window, name], stats.get(g.key))
                yield family
        for section, gauges in (
            ("churn", CHURN_GAUGES),
            ("clv", CLV_GAUGES),
            ("program", PROGRAM_GAUGES),
        ):
            values = doc[section]
            for g in gauges:
                family = _family(g)
                _add(family, [], pick(values, g.key), g.scale)
                yield family
        family = _family(PROGRAM_TIER_MEMBERS)
        for tier, members in fold_counts(tier_members, named_tiers).items():
            _add(family, [tier], members)
        yield family
        offsets = cohort_offsets(doc.get("cohorts"), from_date_iso(doc["as_of"]))
        for g in COHORT_GAUGES:
            family = _family(g)
            for offset, values in enumerate(offsets):
                _add(family, [str(offset)], values.get(g.key))
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


FOLDED = "other"  # the label value of what is beyond a breakdown's limit


def top(stats: Mapping[str, Mapping[str, Any]] | None, measure: str, limit: int) -> set[str]:
    """The ``limit`` names with most ``measure`` (ties by name); never ``other`` itself,
    which is folded with the rest."""
    stats = stats or {}
    ranked = sorted((n for n in stats if n != FOLDED), key=lambda n: (-stats[n][measure], n))
    return set(ranked[:limit])


def top_tiers(
    members: Mapping[str, int], windows: Mapping[str, Mapping[str, Any]], limit: int
) -> set[str]:
    """The ``limit`` tiers with most members (ties by name; a tier with purchases but no
    member counts 0), never ``other`` itself."""
    names = set(members) | {t for v in windows.values() for t in v.get("tiers") or {}}
    names.discard(FOLDED)
    return set(sorted(names, key=lambda n: (-members.get(n, 0), n))[:limit])


def fold_breakdown(
    stats: Mapping[str, Mapping[str, Any]], named: set[str]
) -> dict[str, dict[str, Any]]:
    """The named channels (stores, tiers) as they are; the others summed as "other" (its
    aov from the sums; its active customers a sum, so a customer of two channels or
    stores counts twice)."""
    out: dict[str, dict[str, Any]] = {c: dict(v) for c, v in stats.items() if c in named}
    rest = [v for c, v in stats.items() if c not in named]
    if rest:
        orders = sum(v["orders"] for v in rest)
        revenue = float(sum(Decimal(repr(v["revenue"])) for v in rest))  # cents stay exact
        out[FOLDED] = {
            "orders": orders,
            "revenue": revenue,
            "active_customers": sum(v["active_customers"] for v in rest),
            "aov": revenue / orders if orders else None,
        }
    return out


def fold_counts(counts: Mapping[str, int], named: set[str]) -> dict[str, int]:
    """The named counts as they are; the others summed as "other"."""
    out = {n: c for n, c in counts.items() if n in named}
    rest = [c for n, c in counts.items() if n not in named]
    if rest:
        out[FOLDED] = sum(rest)
    return out


def cohort_offsets(cohorts: Mapping[str, Any] | None, as_of: int) -> list[dict[str, Any]]:
    """§3.7's rows summed by month offset k over the months that are over: for each k,
    over the rows whose month m + k is complete, ``customers`` (Σ size), ``active``
    (Σ active[k]), ``revenue`` (Σ revenue[k]) and ``retention`` (Σ active / Σ size,
    None when Σ size is 0). A row's last entry is the month of D, which counts only
    once D is its last day; offsets with no complete month are left out."""
    d = to_date(as_of)
    month_over = (d + timedelta(days=1)).month != d.month
    out: list[dict[str, Any]] = []
    for row in (cohorts or {}).get("rows") or []:
        complete = len(row["active"]) - (0 if month_over else 1)
        for k in range(complete):
            if k == len(out):
                out.append({"customers": 0, "active": 0, "revenue": Decimal(0)})
            out[k]["customers"] += row["size"]
            out[k]["active"] += row["active"][k]
            out[k]["revenue"] += Decimal(repr(row["revenue"][k]))  # cents stay exact
    for values in out:
        customers = values["customers"]
        values["revenue"] = float(values["revenue"])
        values["retention"] = values["active"] / customers if customers else None
    return out


def pick(values: Mapping[str, Any] | None, key: str) -> Any:
    """The value at a dotted path of the document: ``lift.ci_low``, ``roi_ci.0``."""
    found: Any = values
    for part in key.split("."):
        if found is None:
            return None
        if isinstance(found, list):
            index = int(part)
            found = found[index] if index < len(found) else None
        else:
            found = found.get(part)
    return found


@dataclass(frozen=True)
class KpiGauge:
    """One KPI gauge: its name, the /kpis field it exports, its HELP text, its
    labels and what docs/metrics.md says of it (``kpi_gauges_markdown``)."""

    name: str
    key: str  # a dotted path (``pick``) in the document's section
    help: str
    doc: str
    labels: tuple[str, ...]
    scale: float = 1.0  # e.g. days to seconds


def kpi_gauges(
    labels: tuple[str, ...], *rows: tuple[str, str, str, str] | tuple[str, str, str, str, float]
) -> tuple[KpiGauge, ...]:
    out = []
    for row in rows:
        name, key, help_, doc, *scale = row
        out.append(KpiGauge(name, key, help_, doc, labels, scale[0] if scale else 1.0))
    return tuple(out)


def _gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_, value=value)


def _family(g: KpiGauge) -> GaugeMetricFamily:
    return GaugeMetricFamily(g.name, g.help, labels=g.labels)


def _add(family: GaugeMetricFamily, labels: list[str], value: Any, scale: float = 1.0) -> None:
    if value is not None:  # a null ratio (a null interval end, ...) has no sample
        family.add_metric(labels, float(value) * scale)


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
    (
        "loyalty_second_purchase_customers",
        "second_purchases",
        "Customers whose second purchase is in the window",
        "customers whose second purchase is on a day in the window (`second_purchases`)",
    ),
    (
        "loyalty_time_to_second_purchase_mean_seconds",
        "days_to_second_purchase.mean",
        "Mean time from first to second purchase of those customers",
        "over those customers, the mean of the days from their first to their second "
        "purchase (`days_to_second_purchase.mean` × 86 400)",
        86_400.0,
    ),
)
SECOND_KEY = "days_to_second_purchase"
QUANTILE_KEYS = (("0.25", "p25"), ("0.5", "median"), ("0.75", "p75"))
(SECOND_PURCHASE_QUANTILES,) = kpi_gauges(
    ("window", "quantile"),
    (
        "loyalty_time_to_second_purchase_seconds",
        SECOND_KEY,
        "Time from first to second purchase: quantiles over those customers",
        "the same days' nearest-rank quantiles: `quantile` `0.25`, `0.5`, `0.75` "
        "(`p25`, `median`, `p75` × 86 400)",
        86_400.0,
    ),
)
LIFT_GAUGES = kpi_gauges(
    ("window", "baseline"),
    (
        "loyalty_lift_members",
        "members",
        "Lift: members, buyers or not",
        "§3.6 lift: n_m, customers whose segment is `member` (buyers or not); `baseline` is "
        "the group they are compared with, `control` or `non_member`",
    ),
    (
        "loyalty_lift_baseline_customers",
        "baseline_customers",
        "Lift: customers of the baseline group",
        "n_b, the customers of the baseline group",
    ),
    (
        "loyalty_lift_revenue_per_member",
        "revenue_per_member",
        "Lift: revenue in the window per member (currency units)",
        "revenue in the window per member (mean_m)",
    ),
    (
        "loyalty_lift_revenue_per_baseline_customer",
        "revenue_per_baseline",
        "Lift: revenue in the window per baseline customer (currency units)",
        "revenue in the window per baseline customer (mean_b)",
    ),
    (
        "loyalty_lift_difference",
        "difference",
        "Lift: revenue per member minus per baseline customer (currency units)",
        "d = mean_m − mean_b (`difference`)",
    ),
    (
        "loyalty_lift_difference_ci_low",
        "ci_low",
        "Lift: low end of the confidence interval of the difference",
        "low end of d's confidence interval (`ci_low`, at `LOYALTY_PULSE_LIFT_CONFIDENCE`)",
    ),
    (
        "loyalty_lift_difference_ci_high",
        "ci_high",
        "Lift: high end of the confidence interval of the difference",
        "its high end (`ci_high`)",
    ),
    (
        "loyalty_lift_p_value",
        "p_value",
        "Lift: two-sided Welch t-test p-value of the difference",
        "two-sided Welch t-test p-value of d (`p_value`)",
    ),
    (
        "loyalty_lift_relative_ratio",
        "relative_lift",
        "Lift: difference / revenue per baseline customer",
        "d / mean_b (`relative_lift`)",
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
TIER_GAUGES = kpi_gauges(
    ("window", "tier"),
    (
        "loyalty_tier_orders",
        "orders",
        "Purchases of the tier's customers",
        "orders of the customers whose tier as of D is `tier` (§3.1 `tiers`)",
    ),
    ("loyalty_tier_revenue", "revenue", "Revenue of the tier (currency units)", "their revenue"),
    (
        "loyalty_tier_active_customers",
        "active_customers",
        "Active customers of the tier",
        "their active customers",
    ),
    ("loyalty_tier_average_order_value", "aov", "Tier revenue / orders", "their aov"),
)
STORE_GAUGES = kpi_gauges(
    ("window", "store"),
    (
        "loyalty_store_orders",
        "orders",
        "Purchases in the store",
        "orders with that `store_id` (§3.1 `stores`)",
    ),
    ("loyalty_store_revenue", "revenue", "Revenue of the store (currency units)", "its revenue"),
    (
        "loyalty_store_active_customers",
        "active_customers",
        "Active customers of the store",
        "its active customers (`other`: the sum over the stores it folds, so a customer "
        "of two of them counts twice)",
    ),
    ("loyalty_store_average_order_value", "aov", "Store revenue / orders", "its aov"),
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
    (
        "loyalty_churn_history_complete",
        "history_complete",
        "1 when the look-back of S lies inside the stream, else 0",
        "1 when D − P − T + 1 ≥ the stream's first day, else 0: before that churn reads "
        "low and retention high (`history_complete`, the same flag as `clv`'s)",
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
        float(SECONDS_PER_YEAR),
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
        "loyalty_program_outstanding_points_value",
        "outstanding_points_value",
        "Outstanding points x point value (currency units)",
        "outstanding points × point value (`outstanding_points_value`)",
    ),
    (
        "loyalty_program_cost",
        "program_cost",
        "Program cost over the longest window (currency units)",
        "over the longest window W_max: reward value of redemptions plus "
        "`LOYALTY_PULSE_PROGRAM_FIXED_COST_PER_DAY` × W_max (`program_cost`)",
    ),
    (
        "loyalty_program_incremental_revenue",
        "incremental_revenue",
        "Revenue the program added",
        "lift difference d over W_max × its members n_m (`incremental_revenue`)",
    ),
    (
        "loyalty_program_incremental_revenue_ci_low",
        "incremental_revenue_ci.0",
        "Low end of the incremental revenue's confidence interval",
        "low end of its interval, d_low × n_m (`incremental_revenue_ci[0]`)",
    ),
    (
        "loyalty_program_incremental_revenue_ci_high",
        "incremental_revenue_ci.1",
        "High end of the incremental revenue's confidence interval",
        "high end, d_high × n_m (`incremental_revenue_ci[1]`)",
    ),
    (
        "loyalty_program_incremental_margin",
        "incremental_margin",
        "Margin x incremental revenue (currency units)",
        "margin × incremental revenue (`incremental_margin`)",
    ),
    (
        "loyalty_program_roi_ratio",
        "roi",
        "(Incremental margin - cost) / cost",
        "(incremental margin − program cost) / program cost (`roi`)",
    ),
    (
        "loyalty_program_roi_ci_low_ratio",
        "roi_ci.0",
        "ROI at the low end of the incremental revenue's interval",
        "the same ROI at the low end of the incremental revenue's interval (`roi_ci[0]`)",
    ),
    (
        "loyalty_program_roi_ci_high_ratio",
        "roi_ci.1",
        "ROI at the high end of the incremental revenue's interval",
        "at its high end (`roi_ci[1]`)",
    ),
)
(PROGRAM_TIER_MEMBERS,) = kpi_gauges(
    ("tier",),
    (
        "loyalty_program_tier_members",
        "members_by_tier",
        "Members by tier",
        "members by tier as of D (`members_by_tier`)",
    ),
)
COHORT_GAUGES = kpi_gauges(
    ("months_since_first_purchase",),
    (
        "loyalty_cohort_customers",
        "customers",
        "Customers of the cohorts whose month at this offset is over",
        "§3.7 cohorts summed by month offset k over the rows whose month m + k is over: "
        "Σ `size` of those rows",
    ),
    (
        "loyalty_cohort_active_customers",
        "active",
        "Of them, customers with a purchase in that month",
        "Σ `active[k]` of those rows",
    ),
    (
        "loyalty_cohort_revenue",
        "revenue",
        "Their revenue in that month (currency units)",
        "Σ `revenue[k]` of those rows",
    ),
    (
        "loyalty_cohort_retention_ratio",
        "retention",
        "Cohort active customers / customers at this month offset",
        "Σ `active[k]` / Σ `size` (customer-weighted `retention[k]`)",
    ),
)
SPIKE_GAUGES = (
    ("loyalty_churn_spike_day_churn_ratio", "churn_rate", "Churn rate of the last judged day"),
    ("loyalty_churn_spike_baseline_ratio", "baseline", "Baseline churn rate of that day"),
    ("loyalty_churn_spike_threshold_ratio", "threshold", "Baseline x the spike factor"),
)


KPI_GAUGES = (
    *WINDOW_GAUGES,
    SECOND_PURCHASE_QUANTILES,
    *LIFT_GAUGES,
    *SEGMENT_GAUGES,
    *CHANNEL_GAUGES,
    *TIER_GAUGES,
    *STORE_GAUGES,
    *CHURN_GAUGES,
    *CLV_GAUGES,
    *PROGRAM_GAUGES,
    PROGRAM_TIER_MEMBERS,
    *COHORT_GAUGES,
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
