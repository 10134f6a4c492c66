"""The dashboard at GET / in headless Chromium, against real workers: one fed a
simulated churn spike (its numbers are /kpis's, the program panel, cohorts, tiers
and stores agree with /kpis, its charts draw, the alert shows; then at phone width
nothing overflows), and one fed a young stream (the churn figures say how many
days of history they still need)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import Select

from loyalty_pulse_dev.simulator import event_time_ms
from tests.e2e.conftest import Cluster, WorkerHandle, wait_for
from tests.e2e.kafka_io import produce
from tests.e2e.test_alerts import feed_spike, judged_through_the_last_final_day
from tests.e2e.test_pipeline import simulated, to_records
from tests.oracle import expected_totals, observed

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHARTS = ("churn", "repeat", "redemption", "aov")
WINDOWS = ("30d", "90d", "365d")
P, T, CONFIDENCE = 30, 90, 0.95  # the default settings the workers run with
TOP_STORES = 10
# A rise is good for the program (+1) or bad (-1): how the page colours each change.
BETTER = {"churn_rate": -1}


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("needs Debian's chromium and chromium-driver (./dev setup installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,2000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def pick(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node[part]
    return node


def expected_text(kind: str, value: float | None) -> str:
    """en-US / USD, rounded as Intl.NumberFormat does (the exact double, ties away
    from zero) — worked out here independently of the page's code."""
    if value is None:
        return "—"
    exact = Decimal(value)
    sign = "-" if exact < 0 else ""

    def fixed(x: Decimal, places: int) -> str:
        return f"{abs(x).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):,.{places}f}"

    if kind == "signedMoney":
        text = expected_text("money", value)
        return text if text.startswith("-") or text == "$0.00" else f"+{text}"
    if kind == "money":
        return f"{sign}${fixed(exact, 2)}"
    if kind == "count":
        return f"{sign}{fixed(exact, 0)}"
    if kind == "decimal":
        return f"{sign}{fixed(exact, 2)}"
    assert kind == "ratio", kind
    return f"{sign}{fixed(exact * 100, 1)}%"


def agree_within(what: str, page: webdriver.Chrome, check: Any, timeout_s: float = 30) -> Any:
    """Retry ``check()`` (a list of mismatches, empty when page and /kpis agree): /kpis
    may move between the page's read and ours (the open day is a preview)."""
    deadline, mismatch = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        mismatch = check()
        if not mismatch:
            return
        time.sleep(0.25)
    logs = page.get_log("browser")[-10:]
    error = page.find_element("id", "error").text
    pytest.fail(f"{what} differ from /kpis: {mismatch}\n{error}\n{logs}")


TILES_JS = """
return {
  asOf: document.body.dataset.asOf || null,
  window: document.body.dataset.window || null,
  tiles: [...document.querySelectorAll('.tile')].map(t => ({
    key: t.dataset.kpi, kind: t.dataset.kind, path: t.dataset.path || null,
    fixed: Boolean(t.closest('#tiles-fixed')),
    value: t.dataset.value === undefined ? undefined : JSON.parse(t.dataset.value),
    label: t.querySelector('dt').textContent,
    text: t.querySelector('.value').textContent,
    title: t.querySelector('.value').title,
    note: t.querySelector('.note').hidden ? '' : t.querySelector('.note').textContent,
    warmup: t.dataset.warmup,
    delta: t.querySelector('.delta').textContent,
    verdict: t.querySelector('.delta').dataset.verdict,
    spark: t.querySelectorAll('svg.spark polyline').length,
  })),
};
"""


def tiles_match_kpis(page: webdriver.Chrome, worker: WorkerHandle, window: str) -> None:
    """The tiles show /kpis for ``window``: raw value and formatted text."""

    def check() -> list[Any]:
        shown = page.execute_script(TILES_JS)
        doc = worker.get("/kpis")
        if shown["asOf"] != doc["as_of"] or shown["window"] != window:
            return [(shown["asOf"], shown["window"], doc["as_of"])]
        mismatch: list[Any] = []
        for tile in shown["tiles"]:
            want = pick(doc, tile["path"])
            if tile["value"] != want or tile["text"] != expected_text(tile["kind"], want):
                mismatch.append((tile, want, expected_text(tile["kind"], want)))
        if not all(t["spark"] == 1 for t in shown["tiles"]):  # the history is one refresh behind
            mismatch.append("a tile without its trend")
        if not any(t["delta"][0] in "+-−" for t in shown["tiles"]):
            # the final day 30 days back may still be merging on a busy machine
            mismatch.append("no tile compared with 30 days earlier yet")
        return mismatch

    agree_within(f"the {window} tiles", page, check)
    shown = page.execute_script(TILES_JS)
    tiles = {t["key"]: t for t in shown["tiles"]}
    assert len(tiles) == 12, shown
    assert {"revenue", "orders"} <= set(tiles)
    # The window's tiles say their window; churn, CLV and ROI say their own period.
    days = int(window[:-1])
    for tile in shown["tiles"]:
        if tile["fixed"]:
            assert (
                not tile["path"].startswith("windows.") and f"last {days} days" not in tile["label"]
            )
        else:
            assert tile["path"].rsplit(".", 1)[0] == f"windows.{window}", tile
            assert f"(last {days} days)" in tile["label"], tile
    assert "(365 days)" in tiles["clv"]["label"] and "(365 days)" in tiles["roi"]["label"]
    assert "(30-day churn period)" in tiles["churn_rate"]["label"]
    assert any(t["delta"][0] in "+-−" for t in shown["tiles"]), shown  # vs 30 days earlier
    # A change is coloured by what it means for the program: churn up is bad.
    for tile in shown["tiles"]:
        sign = tile["delta"][0]
        if sign not in "+-−" or tile["delta"].startswith(("+0.0", "-0.0", "−0.0")):
            continue
        rise = 1 if sign == "+" else -1
        want = "good" if rise * BETTER.get(tile["key"], 1) > 0 else "bad"
        assert tile["verdict"] == want, tile


PROGRAM_JS = """
const facts = {};
for (const f of document.querySelectorAll('#program-facts .fact')) {
  const interval = f.querySelector('.interval');
  facts[f.dataset.key] = {
    value: JSON.parse(f.dataset.value), text: f.querySelector('.value').textContent,
    why: f.querySelector('.why') ? f.querySelector('.why').textContent : null,
    interval: interval ? interval.textContent : null,
    intervalValue: interval ? JSON.parse(interval.dataset.value) : null,
  };
}
const verdict = document.getElementById('lift-verdict');
const bias = document.getElementById('lift-bias');
return {
  asOf: document.body.dataset.asOf, facts,
  verdict: {state: verdict.dataset.state, text: verdict.textContent},
  bias: bias.hidden ? null : bias.textContent,
  lift: [...document.querySelectorAll('#lift tbody tr')].map(tr => ({
    window: tr.dataset.window,
    cells: Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.label, {
      text: td.textContent,
      value: td.dataset.value === undefined ? undefined : JSON.parse(td.dataset.value),
    }])),
  })),
};
"""


def want_verdict(lift: dict[str, Any]) -> str:
    """Spec §3.6: significant when the interval excludes 0, i.e. p < 1 - confidence."""
    if lift["ci_low"] is None or lift["ci_high"] is None:
        return "none"
    if lift["p_value"] is not None:
        return "significant" if lift["p_value"] < 1 - CONFIDENCE else "not-significant"
    return "significant" if lift["ci_low"] > 0 or lift["ci_high"] < 0 else "not-significant"


def interval_text(kind: str, pair: list[float | None]) -> str:
    return f"95% interval: {expected_text(kind, pair[0])} to {expected_text(kind, pair[1])}"


def program_matches_kpis(page: webdriver.Chrome, worker: WorkerHandle) -> dict[str, Any]:
    """The program panel shows /kpis's program figures and 365-day lift."""
    shown: dict[str, Any] = {}

    def check() -> list[Any]:
        shown.clear()
        shown.update(page.execute_script(PROGRAM_JS))
        doc = worker.get("/kpis")
        if shown["asOf"] != doc["as_of"]:
            return [("as_of", shown["asOf"], doc["as_of"])]
        program, facts = doc["program"], shown["facts"]
        mismatch: list[Any] = []
        for key, kind in (
            ("roi", "ratio"),
            ("incremental_revenue", "money"),
            ("incremental_margin", "money"),
            ("program_cost", "money"),
            ("outstanding_points_value", "money"),
            ("members_total", "count"),
        ):
            fact = facts.get(key)
            if not fact or (fact["value"], fact["text"]) != (
                program[key],
                expected_text(kind, program[key]),
            ):
                mismatch.append((key, fact, program[key]))
        for key, kind, pair in (
            ("roi", "ratio", program["roi_ci"]),
            ("incremental_revenue", "money", program["incremental_revenue_ci"]),
        ):
            fact = facts.get(key) or {}
            if fact.get("intervalValue") != pair:
                mismatch.append((key, "interval", fact, pair))
            elif None not in pair and fact["interval"] != interval_text(kind, pair):
                mismatch.append((key, "interval text", fact, interval_text(kind, pair)))
        lift = doc["windows"]["365d"]["lift"]
        if shown["verdict"]["state"] != want_verdict(lift):
            mismatch.append(("verdict", shown["verdict"], lift))
        if (shown["bias"] is not None) != (lift["baseline"] == "non_member"):
            mismatch.append(("bias note", shown["bias"], lift["baseline"]))
        if [row["window"] for row in shown["lift"]] != list(WINDOWS):
            mismatch.append(("lift rows", shown["lift"]))
        for row in shown["lift"]:
            want = doc["windows"][row["window"]]["lift"]
            cells = row["cells"]
            if cells["Members"]["text"] != expected_text("count", want["members"]):
                mismatch.append((row["window"], "members", cells["Members"], want))
            if cells["Difference"]["value"] != want["difference"] or not cells["Difference"][
                "text"
            ].startswith(expected_text("signedMoney", want["difference"])):
                mismatch.append((row["window"], "difference", cells["Difference"], want))
            if cells["Per member"]["text"] != expected_text("money", want["revenue_per_member"]):
                mismatch.append((row["window"], "per member", cells["Per member"], want))
        return mismatch

    agree_within("the program panel", page, check)
    return shown


COHORTS_JS = """
return {
  asOf: document.body.dataset.asOf,
  rows: [...document.querySelectorAll('#cohorts tbody tr')].map(tr => ({
    cohort: tr.dataset.cohort, size: tr.dataset.size,
    cells: [...tr.querySelectorAll('td[data-k]')].map(td => JSON.parse(td.dataset.value)),
  })),
};
"""


def cohorts_match_kpis(page: webdriver.Chrome, worker: WorkerHandle, mode: str) -> int:
    """One heatmap row per cohort of /kpis, its cells the retention or revenue list."""
    page.find_element("css selector", f'input[name="cohort-mode"][value="{mode}"]').click()

    def check() -> list[Any]:
        shown = page.execute_script(COHORTS_JS)
        doc = worker.get("/kpis")
        if shown["asOf"] != doc["as_of"]:
            return [("as_of", shown["asOf"], doc["as_of"])]
        rows = doc["cohorts"]["rows"]
        want = [
            {"cohort": r["cohort"], "size": str(r["size"]), "cells": r[mode] if r["size"] else []}
            for r in rows
        ]
        return [] if shown["rows"] == want else [shown["rows"], want]

    agree_within(f"the cohort heatmap ({mode})", page, check)
    return len(page.execute_script(COHORTS_JS)["rows"])


TABLES_JS = """
const names = (id, key) => [...document.querySelectorAll(`#${id} tbody tr`)]
  .map(tr => tr.dataset[key]).filter(n => n !== undefined);
const second = Object.fromEntries([...document.querySelectorAll('#second div')].map(d =>
  [d.dataset.key, {value: JSON.parse(d.dataset.value), text: d.querySelector('dd').textContent}]));
return {asOf: document.body.dataset.asOf, window: document.body.dataset.window,
        tiers: names('tiers', 'tier'), stores: names('stores', 'store'), second};
"""


def tables_match_kpis(page: webdriver.Chrome, worker: WorkerHandle, window: str) -> None:
    """Tiers (with members), the top stores then the rest summed, time to second purchase."""

    def check() -> list[Any]:
        shown = page.execute_script(TABLES_JS)
        doc = worker.get("/kpis")
        if (shown["asOf"], shown["window"]) != (doc["as_of"], window):
            return [("as_of", shown["asOf"], shown["window"], doc["as_of"])]
        win = doc["windows"][window]
        mismatch: list[Any] = []
        tiers = set(win["tiers"]) | set(doc["program"]["members_by_tier"])
        if set(shown["tiers"]) != tiers | {""} or shown["tiers"][-1] != "":
            mismatch.append(("tiers", shown["tiers"], tiers))
        stores = sorted(win["stores"].items(), key=lambda s: (-s[1]["revenue"], s[0]))
        want = [name for name, _ in stores[:TOP_STORES]]
        if len(stores) > TOP_STORES:
            want.append("other")
        if win["orders"] > sum(s["orders"] for s in win["stores"].values()):
            want.append("")  # purchases without a store
        if shown["stores"] != want:
            mismatch.append(("stores", shown["stores"], want))
        dist, second = win["days_to_second_purchase"], shown["second"]
        if second["second_purchases"]["value"] != win["second_purchases"]:
            mismatch.append(("second purchases", second, win["second_purchases"]))
        median = None if dist is None else dist["median"]
        if second["median"]["value"] != median:
            mismatch.append(("median", second, dist))
        return mismatch

    agree_within(f"the {window} tiers, stores and second purchases", page, check)


CHART_JS = """
const c = window.dashboard.charts[arguments[0]];
if (!c) return null;
const canvas = c.root.querySelector('canvas');
const known = (s) => s.filter(v => v !== null && v !== undefined).length;
return {width: canvas.width, height: canvas.height, days: c.data[0].length,
        series: c.data.slice(1).map(known)};
"""
# churn chart series: rate (complete history), rate (warm-up), baseline, threshold,
# alert raised, alert resolved
SETTLED, WARM, BASELINE, _THRESHOLD, RAISED, RESOLVED = range(6)


def test_dashboard_shows_the_kpis_charts_and_the_raised_alert(
    cluster: Cluster, browser: webdriver.Chrome
) -> None:
    worker = feed_spike(cluster)
    cluster.wait_until(worker, lambda totals: totals["partitions"])
    browser.get(worker.url + "/")  # early: the page fills itself as the worker catches up
    assert "Loyalty program health" in browser.title

    def alerts_done() -> Any:
        alerts = worker.get("/alerts")
        return [a["status"] for a in alerts["alerts"]] == ["resolved", "raised"] and alerts

    alerts = wait_for("the spike's raise and resolve", alerts_done, timeout_s=120)
    judged_through_the_last_final_day(worker)
    resolved, raised = alerts["alerts"]

    tiles_match_kpis(browser, worker, "30d")
    program = program_matches_kpis(browser, worker)
    assert program["facts"]["roi"]["value"] is not None, program  # rewards were redeemed
    rows = cohorts_match_kpis(browser, worker, "revenue")
    assert rows == cohorts_match_kpis(browser, worker, "retention") == 12
    tables_match_kpis(browser, worker, "30d")

    # Every chart drew its data; the churn chart has its baseline and one raise.
    for name in CHARTS:
        chart = wait_for(
            f"chart {name}",
            lambda name=name: (c := browser.execute_script(CHART_JS, name)) and c["days"] and c,
        )
        assert chart["width"] > 0 and chart["height"] > 0, (name, chart)
        assert chart["days"] >= 100 and chart["series"][0] > 0, (name, chart)
    churn = browser.execute_script(CHART_JS, "churn")
    # 350 days of stream: the 180 days shown all have their full history (no warm-up)
    assert churn["series"][WARM] == 0 and churn["series"][SETTLED] == churn["days"], churn
    assert churn["series"][BASELINE] > 0 and churn["series"][RAISED] == 1, churn
    assert churn["series"][RESOLVED] == 1, churn
    assert browser.find_element("id", "chart-churn-warmup").is_displayed() is False
    for name in ("repeat", "aov"):  # members, non-members, control side by side
        assert all(browser.execute_script(CHART_JS, name)["series"]), name

    # The raised (and resolved) alert is listed, none is open.
    rows_shown = wait_for(
        "the alert rows",
        lambda: browser.execute_script(
            "return [...document.querySelectorAll('#alerts tbody tr[data-status]')]"
            ".map(r => [r.dataset.alertId, r.dataset.status, r.dataset.day])"
        ),
    )
    assert rows_shown == [
        [raised["id"], "resolved", resolved["day"]],
        [raised["id"], "raised", raised["day"]],
    ]
    assert browser.find_element("id", "open-alert").text == "No open alert."

    # Pipeline health is filled; nothing went wrong in the page.
    facts = browser.find_element("id", "pipeline").text
    assert "Latest final day" in facts and "Consumer lag" in facts
    assert not browser.find_element("id", "error").is_displayed()

    ARTIFACTS.mkdir(exist_ok=True)
    full_page_screenshot(browser, 1280, ARTIFACTS / "dashboard.png")

    # Another window: the tiles and the tables switch to its numbers.
    browser.set_window_size(1280, 2000)
    Select(browser.find_element("id", "window")).select_by_value("90d")
    tiles_match_kpis(browser, worker, "90d")
    tables_match_kpis(browser, worker, "90d")

    null_ratio_shows_a_dash_with_the_reason(browser)
    program_nulls_and_bias_are_explained(browser)
    open_alert_and_outage_are_shown(browser, raised)
    phone_width_fits(browser, worker)
    errors = [
        e
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "Uncaught" in e["message"]
    ]
    assert not errors, errors


def full_page_screenshot(page: webdriver.Chrome, width: int, path: Path) -> None:
    """The whole page at ``width`` CSS pixels (an artifact; nothing is asserted on it)."""
    height = int(page.execute_script("return document.documentElement.scrollHeight"))
    page.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": min(height + 40, 9000), "deviceScaleFactor": 1, "mobile": False},
    )
    # Deliberate: a moment for the charts to fit the new size and the page to repaint
    # before the screenshot.
    time.sleep(1)
    assert page.save_screenshot(str(path))
    page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    print(f"\nscreenshot: {path}")


CRAFTED_KPIS_JS = """
const edit = new Function('doc', arguments[0]);
const read = new Function(arguments[1]);
const done = arguments[arguments.length - 1];
const realFetch = window.fetch;
window.fetch = async (url, opts) => {
  const response = await realFetch(url, opts);
  if (url !== '/kpis') return response;
  const doc = await response.json();
  edit(doc);
  return new Response(JSON.stringify(doc), {status: 200});
};
window.dashboard.refresh().then(() => {
  window.fetch = realFetch;
  done(read());
});
"""


def crafted_refresh(page: webdriver.Chrome, edit: str, read: str) -> Any:
    """One refresh with /kpis edited by the JS statements ``edit`` (on ``doc``); returns
    what the JS function body ``read`` returns after it."""
    return page.execute_async_script(CRAFTED_KPIS_JS, edit, read)


def null_ratio_shows_a_dash_with_the_reason(page: webdriver.Chrome) -> None:
    """A /kpis whose 90d window has no orders: the ratios show "—" with the reason."""
    tile = crafted_refresh(
        page,
        "Object.assign(doc.windows['90d'], {aov: null, purchase_frequency: null})",
        """const cell = document.querySelector('.tile[data-kpi="aov"] .value');
        return {text: cell.textContent, title: cell.title, label: cell.getAttribute('aria-label'),
                value: cell.parentElement.dataset.value};""",
    )
    assert tile["text"] == "—" and tile["value"] == "null", tile
    assert tile["title"].startswith("No data in the window") and "no orders" in tile["title"]
    assert tile["label"].startswith("No value. No data in the window"), tile


def program_nulls_and_bias_are_explained(page: webdriver.Chrome) -> None:
    """No program cost (so no ROI) and no control group (members against non-members):
    "—" with the reason, and the self-selection bias said in words."""
    shown = crafted_refresh(
        page,
        """Object.assign(doc.program, {program_cost: 0, roi: null, roi_ci: [null, null]});
        Object.assign(doc.windows['365d'].lift, {baseline: 'non_member', baseline_customers: 1,
          ci_low: null, ci_high: null, p_value: null})""",
        """const $ = (id) => document.getElementById(id);
        const [verdict, bias] = ['lift-verdict', 'lift-bias'].map(i => $(i));
        return {roi: document.querySelector('#program-facts [data-key="roi"]').textContent,
                tile: document.querySelector('.tile[data-kpi="roi"] .note').textContent,
                verdict: verdict.textContent, state: verdict.dataset.state,
                bias: bias.hidden ? null : bias.textContent};""",
    )
    assert "—" in shown["roi"] and "program cost is 0" in shown["roi"], shown
    assert "program cost is 0" in shown["tile"], shown
    assert shown["state"] == "none", shown
    assert "at least 2 customers in each group" in shown["verdict"], shown
    assert shown["bias"] and "self-selection" in shown["bias"], shown
    assert "members chose to join" in shown["bias"].lower(), shown
    page.execute_async_script("window.dashboard.refresh().then(arguments[0])")  # back to /kpis


CRAFTED_REFRESH_JS = """
const [raised, done] = [arguments[0], arguments[arguments.length - 1]];
const realFetch = window.fetch;
window.fetch = async (url, opts) => {
  if (url === '/kpis') {
    const body = {error: 'the serving store (Redis) is unreachable: test', status: 503};
    return new Response(JSON.stringify(body), {status: 503});
  }
  const response = await realFetch(url, opts);
  if (!url.startsWith('/alerts')) return response;
  const alerts = await response.json();
  return new Response(JSON.stringify({...alerts, open: raised}), {status: 200});
};
window.dashboard.refresh().then(() => {
  window.fetch = realFetch;
  const line = document.getElementById('open-alert');
  const banner = document.getElementById('error');
  done({open: line.textContent, firing: line.classList.contains('firing'),
        error: banner.hidden ? null : banner.textContent,
        role: banner.getAttribute('role')});
});
"""


def open_alert_and_outage_are_shown(page: webdriver.Chrome, raised: dict[str, Any]) -> None:
    """An /alerts with this alert open and a /kpis answering 503 (Redis down)."""
    shown = page.execute_async_script(CRAFTED_REFRESH_JS, raised)
    assert shown["firing"] and shown["open"].startswith("Open churn spike since"), shown
    assert shown["role"] == "alert" and "Redis" in shown["error"], shown
    page.execute_async_script("window.dashboard.refresh().then(arguments[0])")
    assert not page.find_element("id", "error").is_displayed()  # back once it answers


# The charts fit their boxes (a ResizeObserver, and 150 ms after a window resize).
CHARTS_FIT_JS = """
return Object.entries(window.dashboard.charts).every(([name, c]) =>
  c.width === Math.max(200, Math.floor(document.getElementById(`chart-${name}`).clientWidth)));
"""
OVERFLOW_JS = """
const out = [];
const cards = 'main > section, figure, .tile, .fact, .chart, .verdict, .caveat, .warmup';
for (const e of document.querySelectorAll(cards)) {
  if (e.scrollWidth > e.clientWidth) out.push([e.id || e.className, e.scrollWidth, e.clientWidth]);
}
const legends = [...document.querySelectorAll('.chart .u-legend')].map(l => ({
  width: l.getBoundingClientRect().width, box: l.closest('.chart').clientWidth,
  scroll: l.scrollWidth, client: l.clientWidth, font: parseFloat(getComputedStyle(l).fontSize),
}));
return {overflow: out, legends, page: document.documentElement.scrollWidth, inner: innerWidth};
"""


def phone_width_fits(page: webdriver.Chrome, worker: WorkerHandle) -> None:
    """At 390 px: no card is wider than its box, charts and legends fit theirs, the
    program panel and the heatmap still show /kpis."""
    page.set_window_size(390, 844)
    wait_for(
        "the phone layout",
        lambda: page.execute_script("return window.innerWidth <= 400 && window.innerWidth"),
    )
    wait_for("the charts to fit the phone width", lambda: page.execute_script(CHARTS_FIT_JS))
    shown = page.execute_script(OVERFLOW_JS)
    assert not shown["overflow"], shown
    assert shown["page"] <= shown["inner"], shown
    assert len(shown["legends"]) == len(CHARTS), shown
    for legend in shown["legends"]:
        assert legend["width"] <= legend["box"] and legend["scroll"] <= legend["client"], shown
        assert legend["font"] >= 11, shown  # readable
    program_matches_kpis(page, worker)
    assert cohorts_match_kpis(page, worker, "retention") == 12
    full_page_screenshot(page, 390, ARTIFACTS / "dashboard-phone.png")


# --- a young stream: the churn history warms up ---------------------------------

WARMUP_JS = """
const tile = (key) => {
  const t = document.querySelector(`.tile[data-kpi="${key}"]`);
  return {warmup: t.dataset.warmup, note: t.querySelector('.note').textContent,
          provisional: t.classList.contains('provisional')};
};
const banner = document.getElementById('warmup');
return {asOf: document.body.dataset.asOf,
        churn: tile('churn_rate'), retention: tile('retention_rate'), clv: tile('clv'),
        roi: tile('roi'), banner: banner.hidden ? null : banner.textContent,
        chart: document.getElementById('chart-churn-warmup').hidden ? null
          : document.getElementById('chart-churn-warmup').textContent};
"""


def test_a_young_streams_churn_figures_say_how_much_history_they_need(
    cluster: Cluster, browser: webdriver.Chrome
) -> None:
    """60 days of events: churn looks back P + T days, so churn, retention and CLV say
    "needs N more days of history" (N = F + P + T - 1 - D) and the churn chart is all
    warm-up, without a spike verdict."""
    lines = simulated(customers=300, days=60)
    times = [datetime.fromtimestamp(event_time_ms(orjson.loads(x)) / 1000, UTC) for x in lines]
    first, last = min(times).date(), max(times).date()
    worker = cluster.start_worker()
    asyncio.run(produce(cluster.settings, to_records(cluster, lines)))
    want = expected_totals(lines)
    cluster.wait_until(worker, lambda totals: observed(totals) == want)

    def settled() -> bool:
        """The open day is the last event's (idle partitions no longer hold the watermark
        back) and every final day is merged into the history."""
        final = worker.get("/pipeline")["final_day"]
        days = worker.get("/kpis/history?fields=as_of")["days"]
        status, doc = worker.get_status("/kpis")  # 503 until the first document
        return status == 200 and doc["as_of"] == last.isoformat() and days[-1:] == [final]

    wait_for("the stream to settle", settled, timeout_s=120)
    browser.get(worker.url + "/")
    shown: dict[str, Any] = {}

    def check() -> list[Any]:
        shown.clear()
        shown.update(browser.execute_script(WARMUP_JS))
        doc = worker.get("/kpis")
        if shown["asOf"] != doc["as_of"]:
            return [("as_of", shown["asOf"], doc["as_of"])]
        assert doc["churn"]["history_complete"] is False and doc["clv"]["history_complete"] is False
        need = (first + timedelta(days=P + T - 1) - date.fromisoformat(doc["as_of"])).days
        shown["need"] = need
        text = f"Needs {need} more days of history"
        mismatch = [
            (key, shown[key])
            for key in ("churn", "retention", "clv")
            if shown[key]["warmup"] != str(need)
            or not shown[key]["note"].startswith(text)
            or not shown[key]["provisional"]
        ]
        if shown["roi"]["provisional"] or shown["roi"]["warmup"]:
            mismatch.append(("roi is not churn", shown["roi"]))
        if not shown["banner"] or f"need {need} more days of history" not in shown["banner"]:
            mismatch.append(("banner", shown["banner"]))
        if not shown["chart"] or f"needs {need} more days of history" not in shown["chart"]:
            mismatch.append(("chart note", shown["chart"]))
        return mismatch

    agree_within("the warm-up notes", browser, check)
    assert 50 <= shown["need"] <= P + T - 1, shown
    to = shown["asOf"]
    since = (date.fromisoformat(to) - timedelta(days=179)).isoformat()

    def chart_and_rates() -> Any:
        """The churn chart once it shows every final day (days still close meanwhile)."""
        chart = browser.execute_script(CHART_JS, "churn")
        rates = worker.get(f"/kpis/history?from={since}&to={to}&fields=churn.churn_rate")
        return chart and chart["days"] == len(rates["days"]) and (chart, rates)

    chart, rates = wait_for("the churn chart's days", chart_and_rates)
    known = [r for r in rates["series"]["churn.churn_rate"] if r is not None]
    assert chart["series"][SETTLED] == 0 and chart["series"][WARM] == len(known), chart
    assert chart["series"][RAISED] == chart["series"][RESOLVED] == 0, chart
    baseline = worker.get("/kpis/churn-baseline")
    assert baseline["days"] and not any(baseline["history_complete"]), baseline
    assert not any(baseline["spike"]) and set(baseline["baseline"]) == {None}, baseline
    assert not browser.find_element("id", "error").is_displayed()
