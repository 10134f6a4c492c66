"""The Grafana dashboards in deploy/grafana query only series that exist.

Every metric name in every panel, annotation and template-variable query must
be one the worker exports (the tables of docs/metrics.md, the contract), a
series recorded by deploy/prometheus/rules.yml, or one of a tiny allowlist of
Prometheus' own series. A renamed metric, a typo or a bare histogram name
(which has no series: only its `_bucket`, `_sum` and `_count` do) fails here
instead of drawing an empty panel in production.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
METRICS_DOC = ROOT / "docs" / "metrics.md"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
COMPOSE = ROOT / "docker-compose.yml"

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
EXPECTED_FILES = {
    "kpi-overview.json",
    "churn-retention.json",
    "program-redemption.json",
    "pipeline-health.json",
}
# Prometheus' own series, not the worker's.
ALLOWLIST = {"up", "ALERTS"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# -- docs/metrics.md and rules.yml ----------------------------------------------

ROW = re.compile(r"^\| `(loyalty_[a-z0-9_]*)` \|(.*)$", re.M)  # metric rows only


def metric_sections(markdown: str) -> dict[str, dict[str, bool]]:
    """Metric names of each '## ' section's table -> whether the row is a histogram."""
    sections: dict[str, dict[str, bool]] = {}
    for chunk in re.split(r"^## ", markdown, flags=re.M)[1:]:
        title = chunk.split("\n", 1)[0].strip()
        rows = {name: "| histogram |" in f"|{rest}" for name, rest in ROW.findall(chunk)}
        if rows:
            sections[title] = rows
    return sections


SECTIONS = metric_sections(METRICS_DOC.read_text(encoding="utf-8"))
KPI_METRICS = {
    name
    for title, rows in SECTIONS.items()
    if title.startswith(("KPIs", "Churn spike"))
    for name in rows
}
OPERATIONS_METRICS = {
    name for title, rows in SECTIONS.items() if title.startswith("Operations") for name in rows
}
HISTOGRAMS = {name for rows in SECTIONS.values() for name, hist in rows.items() if hist}


def exported_series() -> set[str]:
    """Series names the worker exports: a histogram only as _bucket, _sum and _count."""
    names: set[str] = set()
    for rows in SECTIONS.values():
        for name, histogram in rows.items():
            if histogram:
                names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
            else:
                names.add(name)
    return names


def recorded_series(path: Path = RULES) -> set[str]:
    """`record:` names of the Prometheus rules file (empty when it does not exist yet)."""
    if not path.exists():
        return set()
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {
        rule["record"]
        for group in doc.get("groups") or []
        for rule in group.get("rules") or []
        if "record" in rule
    }


KNOWN = exported_series() | recorded_series() | ALLOWLIST

# -- a small PromQL metric-name extractor ------------------------------------------

KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "atan2",
    "inf",
    "nan",
}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")
MATCHERS = re.compile(r"\{[^{}]*\}")
RANGE = re.compile(r"\[[^\[\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# A whole identifier, not part of a number or duration (1e3, 5m), not a function call.
IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")


def promql_metrics(expr: str) -> set[str]:
    """Metric names a PromQL expression selects.

    Strings, Grafana variables, label matchers, ranges and by/without/on/
    ignoring/group_* label lists are removed first; what is left that is an
    identifier, not a keyword and not followed by '(' is a metric name.
    """
    text = STRING.sub('""', expr)
    text = GRAFANA_VARIABLE.sub(" 0 ", text)
    text = MATCHERS.sub(" ", text)
    text = RANGE.sub(" ", text)
    text = GROUPING.sub(" ", text)
    return {name for name in IDENTIFIER.findall(text) if name.lower() not in KEYWORDS}


LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),\s*)?([A-Za-z_]\w*)\s*\)\s*$", re.S)
QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.S)
NO_METRIC = re.compile(r"^\s*(?:metrics|label_names)\(.*\)\s*$", re.S)


def template_query_metrics(query: str) -> set[str]:
    """Metric names of a Grafana Prometheus template-variable query."""
    if match := LABEL_VALUES.match(query):
        return promql_metrics(match.group(1)) if match.group(1) else set()
    if match := QUERY_RESULT.match(query):
        return promql_metrics(match.group(1))
    if NO_METRIC.match(query):
        return set()
    return promql_metrics(query)


# -- dashboards ---------------------------------------------------------------------


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


DASHBOARD_DOCS = load_dashboards()


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including the panels of collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(where, query, is_template_query) of every Prometheus query of a dashboard."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel.get('title')!r} {target.get('refId')}", target["expr"], False
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("builtIn"):
            continue
        expr = annotation.get("expr") or annotation.get("target", {}).get("expr")
        assert expr, f"annotation {annotation.get('name')!r} has no query"
        yield f"annotation {annotation.get('name')!r}", expr, False
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query.get("query", "") if isinstance(query, dict) else query
        yield f"variable ${variable['name']}", text, True


def unknown_metrics(dashboard: dict[str, Any], known: set[str] = KNOWN) -> list[str]:
    """'where: name' for every metric a dashboard queries that does not exist."""
    problems = []
    for where, query, template in queries(dashboard):
        names = template_query_metrics(query) if template else promql_metrics(query)
        problems += [f"{where}: {name}" for name in sorted(names - known)]
    return problems


def used_metrics(dashboard: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for _, query, template in queries(dashboard):
        names |= template_query_metrics(query) if template else promql_metrics(query)
    return names


def dashboard(name: str) -> dict[str, Any]:
    assert name in DASHBOARD_DOCS, f"deploy/grafana/dashboards/{name} is missing"
    return DASHBOARD_DOCS[name]


# -- the extractor itself -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", {"up"}),
        ('max without (instance) (loyalty_orders{window=~"$window"})', {"loyalty_orders"}),
        (
            "histogram_quantile(0.99, sum by (le) "
            '(rate(loyalty_processing_latency_seconds_bucket{job="$job"}[$__rate_interval])))',
            {"loyalty_processing_latency_seconds_bucket"},
        ),
        (
            "sum(rate(a_total[5m] offset 1d)) / on (window) group_left (segment) b > bool 0",
            {"a_total", "b"},
        ),
        ("sum(x) by (le, instance) * 1e3 + ${window:regex}", {"x"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)") unless n or o and p', {"m", "n", "o", "p"}),
        (
            "loyalty:orders:max / ignoring(x) loyalty:revenue:max",
            {"loyalty:orders:max", "loyalty:revenue:max"},
        ),
        ("max_over_time(q[1h:5m]) - Inf - NaN", {"q"}),
        ('ALERTS{alertname="LoyaltyChurnSpike", alertstate="firing"}', {"ALERTS"}),
        ("vector(0) * 365 * 86400", set()),
    ],
)
def test_promql_metrics(expr: str, expected: set[str]) -> None:
    assert promql_metrics(expr) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("label_values(loyalty_orders, window)", {"loyalty_orders"}),
        ('label_values(loyalty_build_info{job=~".+"}, currency)', {"loyalty_build_info"}),
        ("label_values(job)", set()),
        ("query_result(topk(3, loyalty_channel_orders))", {"loyalty_channel_orders"}),
        ("metrics(loyalty_.*)", set()),
    ],
)
def test_template_query_metrics(query: str, expected: set[str]) -> None:
    assert template_query_metrics(query) == expected


def fake_dashboard(expr: str) -> dict[str, Any]:
    return {
        "panels": [{"title": "t", "type": "timeseries", "targets": [{"refId": "A", "expr": expr}]}],
        "annotations": {"list": [{"name": "a", "expr": "loyalty_churn_spike_typo == 1"}]},
        "templating": {"list": [{"name": "w", "type": "query", "query": "label_values(nope, w)"}]},
    }


def test_unknown_metrics_are_caught() -> None:
    """The check can fail: a typo, a bare histogram name, unknown names in annotations/variables."""
    problems = unknown_metrics(
        fake_dashboard(
            'max without (instance) (loyalty_orderz{window="30d"})'
            " + rate(loyalty_processing_latency_seconds[5m]) + loyalty:not_recorded"
        )
    )
    assert problems == [
        "panel 't' A: loyalty:not_recorded",
        "panel 't' A: loyalty_orderz",
        "panel 't' A: loyalty_processing_latency_seconds",
        "annotation 'a': loyalty_churn_spike_typo",
        "variable $w: nope",
    ]
    assert (
        unknown_metrics(
            fake_dashboard("loyalty_orders"), known=KNOWN | {"loyalty_churn_spike_typo", "nope"}
        )
        == []
    )


def test_metrics_doc_parses() -> None:
    """Guards the parser: an empty or wrong parse would make every check vacuous."""
    assert {"loyalty_orders", "loyalty_churn_ratio", "loyalty_churn_spike"} <= KPI_METRICS
    assert {"loyalty_events_total", "loyalty_consumer_lag_records"} <= OPERATIONS_METRICS
    assert HISTOGRAMS == {
        "loyalty_processing_latency_seconds",
        "loyalty_day_close_duration_seconds",
    }
    assert "loyalty_processing_latency_seconds" not in KNOWN
    assert "loyalty_processing_latency_seconds_bucket" in KNOWN


def test_recorded_series_parses(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n  - name: g\n    rules:\n"
        "      - record: loyalty:orders:max\n        expr: max(loyalty_orders)\n"
        "      - alert: A\n        expr: up == 0\n",
        encoding="utf-8",
    )
    assert recorded_series(rules) == {"loyalty:orders:max"}
    assert recorded_series(tmp_path / "absent.yml") == set()


# -- the dashboards ---------------------------------------------------------------------


def test_the_four_dashboards_exist() -> None:
    assert set(DASHBOARD_DOCS) == EXPECTED_FILES


def test_uids_and_titles_are_unique() -> None:
    uids = [d["uid"] for d in DASHBOARD_DOCS.values()]
    titles = [d["title"] for d in DASHBOARD_DOCS.values()]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_dashboard_structure(name: str) -> None:
    doc = dashboard(name)
    assert isinstance(doc.get("title"), str) and doc["title"].strip()
    assert isinstance(doc.get("uid"), str) and re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", doc["uid"])
    assert 36 <= doc.get("schemaVersion", 0) <= 41, "schemaVersion of Grafana 10/11"
    assert doc.get("id") is None, "provisioned dashboards carry no database id"
    panels = list(all_panels(doc))
    ids = [p.get("id") for p in panels]
    assert None not in ids and len(set(ids)) == len(ids), f"panel ids must be unique: {ids}"
    data_panels = [p for p in panels if p.get("type") != "row"]
    assert len(data_panels) >= 6
    for panel in panels:
        pos = panel.get("gridPos", {})
        assert {"h", "w", "x", "y"} <= pos.keys(), f"{panel.get('title')}: gridPos"
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, f"{panel.get('title')}: wider than 24"
    for panel in data_panels:
        title = panel.get("title")
        assert panel.get("type") in {"timeseries", "stat"}, f"{title}: {panel.get('type')}"
        assert title, "every panel has a title"
        assert panel.get("datasource") == DATASOURCE, f"{title}: datasource"
        targets = panel.get("targets")
        assert targets, f"{title}: no targets"
        refs = [t.get("refId") for t in targets]
        assert len(set(refs)) == len(refs), f"{title}: duplicate refIds"
        for target in targets:
            assert target.get("datasource") == DATASOURCE, f"{title}: target datasource"
            assert isinstance(target.get("expr"), str) and target["expr"].strip(), f"{title}"
            assert target["expr"].count("(") == target["expr"].count(")"), f"{title}: parens"
    for annotation in doc.get("annotations", {}).get("list", []):
        if not annotation.get("builtIn"):
            assert annotation.get("datasource") == DATASOURCE, annotation.get("name")
    for variable in doc.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            assert variable.get("datasource") == DATASOURCE, variable["name"]


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_dashboard_queries_only_known_metrics(name: str) -> None:
    problems = unknown_metrics(dashboard(name))
    assert not problems, (
        "not in docs/metrics.md, not recorded in deploy/prometheus/rules.yml, "
        f"not allowlisted: {problems}"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_dashboard_variables_are_defined(name: str) -> None:
    doc = dashboard(name)
    defined = {v["name"] for v in doc.get("templating", {}).get("list", [])}
    texts = [query for _, query, _ in queries(doc)]
    texts += [p.get("title", "") for p in all_panels(doc)]
    used = set()
    for text in texts:
        for match in re.finditer(r"\$\{(\w+)[^}]*\}|\$(\w+)|\[\[(\w+)\]\]", text):
            var = next(g for g in match.groups() if g)
            if not var.startswith("__"):
                used.add(var)
    assert used <= defined, f"undefined variables: {sorted(used - defined)}"


AGGREGATED_BEFORE = re.compile(r"\bmax\s+without\s*\(\s*instance\b[^)]*\)\s*\(\s*$")
RATED_BEFORE = re.compile(r"\b(?:rate|irate|increase)\(\s*$")
SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_]\w*)(?![\w:])")


def selectors(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, metric, query text before it) of every metric selector of the panel and
    annotation queries, strings removed."""
    for where, query, template in queries(dashboard):
        if template:
            continue
        text = STRING.sub('""', query)
        for match in SELECTOR.finditer(text):
            yield where, match.group(1), text[: match.start()]


def unaggregated_kpis(dashboard: dict[str, Any]) -> list[str]:
    """KPI selectors not directly inside 'max without (instance) (...)'."""
    return [
        f"{where}: {metric}"
        for where, metric, before in selectors(dashboard)
        if metric in KPI_METRICS and not AGGREGATED_BEFORE.search(before)
    ]


def unrated_counters(dashboard: dict[str, Any]) -> list[str]:
    """Counter (and histogram _bucket/_sum/_count) selectors not inside rate()/increase()."""
    return [
        f"{where}: {metric}"
        for where, metric, before in selectors(dashboard)
        if metric.startswith("loyalty_")
        and metric.endswith(("_total", *HISTOGRAM_SUFFIXES))
        and not RATED_BEFORE.search(before)
    ]


def test_aggregation_checks_can_fail() -> None:
    bad = fake_dashboard(
        'loyalty_orders{window="30d"} + max(loyalty_churn_ratio)'
        " + max without (instance) (loyalty_revenue)"
        " + sum(loyalty_events_total) + rate(loyalty_redis_errors_total[5m])"
        " + loyalty_processing_latency_seconds_count"
    )
    assert unaggregated_kpis(bad) == [
        "panel 't' A: loyalty_orders",
        "panel 't' A: loyalty_churn_ratio",
    ]
    assert unrated_counters(bad) == [
        "panel 't' A: loyalty_events_total",
        "panel 't' A: loyalty_processing_latency_seconds_count",
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_kpi_series_are_deduplicated_over_workers(name: str) -> None:
    """Every worker exports the same KPI values: each KPI selector is in max without (instance)."""
    assert unaggregated_kpis(dashboard(name)) == []


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_counters_and_histograms_are_rated(name: str) -> None:
    """A counter (or histogram bucket/sum/count) is only read through rate()/increase()."""
    assert unrated_counters(dashboard(name)) == []


REQUIRED = {
    "kpi-overview.json": {
        "loyalty_orders",
        "loyalty_revenue",
        "loyalty_active_customers",
        "loyalty_average_order_value",
        "loyalty_purchase_frequency",
        "loyalty_repeat_purchase_ratio",
        "loyalty_clv_value",
        "loyalty_store_revenue",
        "loyalty_second_purchase_customers",
        "loyalty_time_to_second_purchase_seconds",
    },
    "churn-retention.json": {
        "loyalty_churn_ratio",
        "loyalty_retention_ratio",
        "loyalty_value_churn_ratio",
        "loyalty_churned_customers",
        "loyalty_churn_spike_baseline_ratio",
        "loyalty_churn_spike_threshold_ratio",
        "loyalty_churn_spike",
        "loyalty_churn_history_complete",
        "loyalty_cohort_retention_ratio",
    },
    "program-redemption.json": {
        "loyalty_segment_revenue",
        "loyalty_segment_active_customers",
        "loyalty_redemption_ratio",
        "loyalty_points_issued",
        "loyalty_points_redeemed",
        "loyalty_program_outstanding_points",
        "loyalty_program_cost",
        "loyalty_program_incremental_revenue",
        "loyalty_program_roi_ratio",
        "loyalty_program_roi_ci_low_ratio",
        "loyalty_program_roi_ci_high_ratio",
        "loyalty_program_incremental_revenue_ci_low",
        "loyalty_program_incremental_revenue_ci_high",
        "loyalty_lift_difference",
        "loyalty_lift_difference_ci_low",
        "loyalty_lift_difference_ci_high",
        "loyalty_lift_p_value",
        "loyalty_program_tier_members",
        "loyalty_tier_revenue",
    },
    "pipeline-health.json": {
        "up",
        "loyalty_events_total",
        "loyalty_rejected_events_total",
        "loyalty_consumer_lag_records",
        "loyalty_watermark_delay_seconds",
        "loyalty_processing_latency_seconds_bucket",
        "loyalty_day_close_duration_seconds_bucket",
        "loyalty_serving_snapshot_age_seconds",
        "loyalty_redis_errors_total",
        "loyalty_worker_partitions",
    },
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_dashboard_shows_what_it_is_for(name: str) -> None:
    used = used_metrics(dashboard(name))
    # a recorded series of the metric (loyalty:<metric without loyalty_>:<operation>) counts too
    recorded = {name.split(":")[1] for name in used if name.startswith("loyalty:")}
    missing = {m for m in REQUIRED[name] - used if m.removeprefix("loyalty_") not in recorded}
    assert not missing, f"{name} does not show {sorted(missing)}"


def test_every_kpi_metric_is_on_some_dashboard() -> None:
    shown = set().union(*(used_metrics(d) for d in DASHBOARD_DOCS.values()))
    missing = sorted((KPI_METRICS | OPERATIONS_METRICS - HISTOGRAMS) - shown)
    assert not missing, f"documented metrics no dashboard shows: {missing}"


def test_churn_chart_has_baseline_threshold_and_spike_annotation() -> None:
    doc = dashboard("churn-retention.json")
    charts = [
        p
        for p in all_panels(doc)
        if p.get("type") == "timeseries"
        and {
            "loyalty_churn_ratio",
            "loyalty_churn_spike_baseline_ratio",
            "loyalty_churn_spike_threshold_ratio",
        }
        <= set().union(*(promql_metrics(t["expr"]) for t in p["targets"]))
    ]
    assert charts, "no churn chart with the spike baseline and threshold"
    annotations = [a for a in doc["annotations"]["list"] if not a.get("builtIn")]
    spike = [
        a
        for a in annotations
        if "loyalty_churn_spike" in promql_metrics(a["expr"])
        or ("ALERTS" in promql_metrics(a["expr"]) and "LoyaltyChurnSpike" in a["expr"])
    ]
    assert spike and any(a.get("enable") for a in spike), "no enabled churn-spike annotation"


def target_metrics(panel: dict[str, Any]) -> dict[str, str]:
    """Legend of each target of a panel -> the one metric it selects (targets with one)."""
    out = {}
    for target in panel.get("targets", []):
        names = promql_metrics(target["expr"])
        if len(names) == 1:
            out[target.get("legendFormat", "")] = names.pop()
    return out


def shaded_intervals(panel: dict[str, Any]) -> set[tuple[str, str]]:
    """(high metric, low metric) of each band a time series fills between two of its series
    (an override on the high one with custom.fillBelowTo naming the low one)."""
    by_legend = target_metrics(panel)
    bands = set()
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        if matcher.get("id") != "byName" or matcher.get("options") not in by_legend:
            continue
        for prop in override.get("properties", []):
            if prop.get("id") == "custom.fillBelowTo" and prop.get("value") in by_legend:
                bands.add((by_legend[matcher["options"]], by_legend[prop["value"]]))
    return bands


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        (
            "loyalty_program_roi_ratio",
            "loyalty_program_roi_ci_low_ratio",
            "loyalty_program_roi_ci_high_ratio",
        ),
        (
            "loyalty_program_incremental_revenue",
            "loyalty_program_incremental_revenue_ci_low",
            "loyalty_program_incremental_revenue_ci_high",
        ),
        (
            "loyalty_lift_difference",
            "loyalty_lift_difference_ci_low",
            "loyalty_lift_difference_ci_high",
        ),
    ],
)
def test_program_dashboard_shows_estimates_with_their_interval(
    value: str, low: str, high: str
) -> None:
    """A time series draws the value with its interval shaded; ROI and incremental revenue
    also have a stat panel with both ends."""
    panels = list(all_panels(dashboard("program-redemption.json")))
    charts = [
        p
        for p in panels
        if p.get("type") == "timeseries"
        and value in target_metrics(p).values()
        and (high, low) in shaded_intervals(p)
    ]
    assert charts, f"no time series of {value} with its interval {low} … {high} shaded"
    if value.startswith("loyalty_program_"):
        stats = [
            p
            for p in panels
            if p.get("type") == "stat" and {value, low, high} <= set(target_metrics(p).values())
        ]
        assert stats, f"no stat panel of {value} with {low} and {high}"


def test_shaded_intervals_are_found_only_between_two_series_of_the_panel() -> None:
    panel = {
        "targets": [
            {"refId": "A", "expr": "max without (instance) (a)", "legendFormat": "a"},
            {"refId": "B", "expr": "max without (instance) (b)", "legendFormat": "b"},
        ],
        "fieldConfig": {
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": "b"},
                    "properties": [{"id": "custom.fillBelowTo", "value": "a"}],
                },
                {
                    "matcher": {"id": "byName", "options": "a"},
                    "properties": [{"id": "custom.fillBelowTo", "value": "nope"}],
                },
            ]
        },
    }
    assert shaded_intervals(panel) == {("b", "a")}


# -- provisioning ------------------------------------------------------------------------


def grafana_mounts() -> dict[str, str]:
    """Repository path -> container path of the grafana service's bind mounts."""
    service = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["grafana"]
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and volume.startswith("."):
            source, target = volume.split(":")[:2]
            mounts[str(Path(source))] = target
    return mounts


def test_datasource_provisioning_matches_the_dashboards() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = doc["datasources"]
    assert source["uid"] == DATASOURCE["uid"] and source["type"] == DATASOURCE["type"]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]


def test_dashboard_provider_reads_the_mounted_dashboards() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "loyalty.yml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    mounts = grafana_mounts()
    assert mounts.get("deploy/grafana/dashboards") == provider["options"]["path"], mounts
    assert mounts.get("deploy/grafana/provisioning") == "/etc/grafana/provisioning", mounts
