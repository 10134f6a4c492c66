"""deploy/prometheus: valid for promtool/amtool, unit-tested, and only using exported metrics.

promtool and amtool come from the Debian packages ``prometheus`` and
``prometheus-alertmanager``, which ``./dev setup`` (and so ``./dev test``)
installs. Without them these tests fail rather than skip: CI must check the rules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "rules.yml"
RULES_TEST = DEPLOY / "tests" / "rules_test.yml"
CONFIG = DEPLOY / "prometheus.yml"
ALERTMANAGER = DEPLOY / "alertmanager.yml"
METRICS_DOC = ROOT / "docs" / "metrics.md"

# Series Prometheus makes itself, and the labels every scraped series gets.
BUILTIN_METRICS = {"up", "ALERTS"}
TARGET_LABELS = {"job", "instance", "pod"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"}


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found: install the Debian package {package} "
            "(./dev setup does), e.g. apt-get install -y prometheus prometheus-alertmanager"
        )
    return path


def run(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{out}"
    return out


# -- promtool / amtool ---------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    out = run(tool("promtool", "prometheus"), "check", "rules", str(RULES))
    assert "SUCCESS" in out


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    out = run(tool("promtool", "prometheus"), "test", "rules", str(RULES_TEST))
    assert "SUCCESS" in out and "FAILED" not in out


def test_promtool_checks_the_compose_config_and_the_rule_files_it_loads(tmp_path: Path) -> None:
    # laid out as in the container: /etc/prometheus/{prometheus,rules}.yml
    etc = tmp_path / "etc" / "prometheus"
    etc.mkdir(parents=True)
    shutil.copy(CONFIG, etc / "prometheus.yml")
    shutil.copy(RULES, etc / "rules.yml")
    out = run(tool("promtool", "prometheus"), "check", "config", "prometheus.yml", cwd=etc)
    assert "SUCCESS: 1 rule files found" in out, out
    assert "is valid prometheus config file" in out, out


def test_amtool_checks_the_alertmanager_config() -> None:
    out = run(tool("amtool", "prometheus-alertmanager"), "check-config", str(ALERTMANAGER))
    assert "SUCCESS" in out


# -- the compose config --------------------------------------------------------


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_compose_config_scrapes_every_worker_replica_and_loads_the_rules() -> None:
    config = load(CONFIG)
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == ["rules.yml"]
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"loyalty-pulse", "prometheus"}
    worker = jobs["loyalty-pulse"]
    assert worker["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": 6066, "refresh_interval": "30s"}
    ]
    assert worker.get("metrics_path", "/metrics") == "/metrics"
    # the alerts select the job by this name
    assert 'up{job="loyalty-pulse"}' in RULES.read_text(encoding="utf-8")


# -- the rules only use exported series ---------------------------------------


@cache
def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels) from the tables of docs/metrics.md."""
    metrics: dict[str, tuple[str, frozenset[str]]] = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        if not line.startswith("|") or not re.fullmatch(r"loyalty_[a-z0-9_]+", name):
            continue
        if len(cells) == 4:  # operations: name | type | labels | meaning
            kind, labels = cells[1].split()[0], cells[2]
        else:  # KPIs and churn spike: name | labels | meaning (gauges)
            kind, labels = "gauge", cells[1]
        metrics[name] = (kind, frozenset(re.findall(r"`([a-z_]+)`", labels)))
    assert len(metrics) > 50, "docs/metrics.md tables not found"
    return metrics


def series_labels(name: str) -> frozenset[str] | None:
    """Labels of a series name the workers export (histogram series included), or None."""
    docs = documented_metrics()
    if name in docs:
        return docs[name][1]
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in docs and docs[base][0] == "histogram":
            return docs[base][1] | ({"le"} if suffix == "_bucket" else set())
    return None


def rules() -> list[dict[str, Any]]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"]]


def template_queries(rule: dict[str, Any]) -> list[str]:
    text = " ".join(str(v) for v in rule.get("annotations", {}).values())
    return re.findall(r'query\s+"((?:[^"\\]|\\.)*)"', text)


def selectors(expr: str) -> list[tuple[str, list[str]]]:
    """(metric name, label names matched) of each vector selector in a PromQL expression."""
    expr = re.sub(r"#.*", "", expr)
    matchers: list[list[str]] = []

    def braces(m: re.Match[str]) -> str:
        body = re.sub(r'"(?:[^"\\]|\\.)*"', '""', m.group(1))
        matchers.append(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", body))
        return f" __SEL{len(matchers) - 1}__ "

    expr = re.sub(r"\{([^}]*)\}", braces, expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)  # strings (histogram_quantile has none)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges, subqueries
    # label lists of by / without / on / ignoring / group_left / group_right
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr, flags=re.I
    )
    expr = re.sub(r"\boffset\s+\d+[smhdwy]", " ", expr)
    found: list[tuple[str, list[str]]] = []
    tokens = re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?(\s*__SEL(\d+)__)?|__SEL(\d+)__", expr)
    for m in tokens:
        if m.group(5) is not None:  # a bare {…} selector: not used here
            pytest.fail(f"selector without a metric name in {expr!r}")
        name, call, sel = m.group(1), m.group(2), m.group(4)
        if call or name.lower() in PROMQL_WORDS or re.fullmatch(r"\d", name[0]):
            continue
        found.append((name, matchers[int(sel)] if sel is not None else []))
    return found


def test_selector_parser() -> None:
    expr = (
        'sum by (type) (rate(loyalty_events_total{outcome=~"a|b", type!=""}[5m])) / on () '
        "(max without (instance) (loyalty_orders offset 5m) > 0.5) and absent(up)"
    )
    assert selectors(expr) == [
        ("loyalty_events_total", ["outcome", "type"]),
        ("loyalty_orders", []),
        ("up", []),
    ]


def test_rules_use_only_metrics_and_labels_of_docs_metrics_md() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    used: set[str] = set()
    for rule in rules():
        where = rule.get("record") or rule.get("alert")
        for expr in [rule["expr"], *template_queries(rule)]:
            for name, labels in selectors(str(expr)):
                used.add(name)
                if name in recorded:
                    continue
                if name in BUILTIN_METRICS:
                    continue
                known = series_labels(name)
                assert known is not None, f"{where}: {name} is not in docs/metrics.md"
                unknown = set(labels) - known - TARGET_LABELS
                assert not unknown, f"{where}: {name} has no label {sorted(unknown)}"
        # metric names mentioned in the prose of annotations exist too
        prose = " ".join(str(v) for v in rule.get("annotations", {}).values())
        for name in re.findall(r"\bloyalty_[a-z0-9_]+", prose):
            assert series_labels(name) is not None, f"{where}: {name} is not in docs/metrics.md"
    assert {"loyalty_churn_spike", "loyalty_events_total", "up"} <= used


def test_recording_rules_follow_the_naming_convention() -> None:
    names = [rule["record"] for rule in rules() if "record" in rule]
    assert len(names) == len(set(names))
    for name in names:  # level:metric:operations
        assert re.fullmatch(r"loyalty:[a-z0-9_]+:[a-z0-9_]+", name), name
        assert not name.split(":")[1].startswith("loyalty_"), name


def test_every_alert_has_unit_tests_that_fire_and_that_do_not() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts == {
        "LoyaltyChurnSpike",
        "LoyaltyPipelineStalled",
        "LoyaltyHighRejectionRate",
        "LoyaltyWorkerDown",
        "LoyaltyServingSnapshotStale",
    }
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in load(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires == alerts, f"never shown firing: {sorted(alerts - fires)}"
    assert quiet == alerts, f"never shown quiet: {sorted(alerts - quiet)}"
    for rule in rules():
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"page", "warning"}, rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
