"""One customer's additive share of every KPI as of a day, straight from its history.

Summed over customers (and over partitions: a customer lives in exactly one)
these terms give every count and sum of spec §3; ratios come later (report.py).
Keys are tuples: ("w", W, name), ("seg", W, segment, name), ("ch", W, channel,
name), ("churn", name), ("program", name).
"""

from __future__ import annotations

import functools
from collections import defaultdict

from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.params import CLV_WINDOW, KpiParams

Terms = dict[tuple[object, ...], int]

_STATS = ("orders", "revenue", "active", "repeat")


@functools.lru_cache(maxsize=64)
def _window_keys(w: int) -> dict[str, tuple[object, ...]]:
    """The keys of window ``w``, built once (a contribution adds dozens per call)."""
    names = (*_STATS, "points_issued", "active_members", "points_redeemed", "redeeming")
    return {name: ("w", w, name) for name in (*names, "new_enrollments")}


@functools.lru_cache(maxsize=1024)
def _segment_keys(w: int, segment: str) -> tuple[tuple[object, ...], ...]:
    return tuple(("seg", w, segment, name) for name in _STATS)


@functools.lru_cache(maxsize=4096)
def _channel_keys(w: int, channel: str) -> tuple[tuple[object, ...], ...]:
    return tuple(("ch", w, channel, name) for name in ("orders", "revenue", "active"))


def contribution(h: CustomerHistory, day: int, params: KpiParams) -> Terms:
    """One pass over the history (this runs for every touched customer at every
    day close and preview; tests/unit/test_kpi_engine.py holds it to the
    brute-force reference). Zero terms are left out."""
    out: Terms = defaultdict(int)
    segment = h.segment_as_of(day)
    windows = params.all_windows  # ascending
    p, t = params.churn_period, params.inactivity
    start = day - p
    n_w = len(windows)
    orders, revenue, issued = [0] * n_w, [0] * n_w, [0] * n_w
    by_channel: list[dict[str, list[int]]] = [{} for _ in windows]  # name -> [orders, revenue]
    latest = latest_before = latest_at_start = None  # latest purchase day <= day, day-1, start
    base = 0  # revenue of (start - T, start]
    points = h.carried_points
    for d, channels in h.purchases.items():
        if d > day:
            continue
        if latest is None or d > latest:
            latest = d
        if d < day and (latest_before is None or d > latest_before):
            latest_before = d
        at_start = d <= start
        if at_start and (latest_at_start is None or d > latest_at_start):
            latest_at_start = d
        age = day - d
        for name, (n, amount, earned) in channels.items():
            points += earned
            if at_start and d > start - t:
                base += amount
            for i in range(n_w - 1, -1, -1):
                if age >= windows[i]:
                    break
                orders[i] += n
                revenue[i] += amount
                issued[i] += earned
                row = by_channel[i].get(name)
                if row is None:
                    by_channel[i][name] = [n, amount]
                else:
                    row[0] += n
                    row[1] += amount
    redeemed = [0] * n_w
    redeeming = [False] * n_w
    for d, (spent, reward_minor, unpriced) in h.redemptions.items():
        if d > day:
            continue
        points -= spent
        age = day - d
        for i in range(n_w - 1, -1, -1):
            w = windows[i]
            if age >= w:
                break
            redeemed[i] += spent
            redeeming[i] = True
            if w == CLV_WINDOW:
                if reward_minor:
                    out["program", "cost_reward_minor"] += reward_minor
                if unpriced:
                    out["program", "cost_unpriced_points"] += unpriced
    member = segment == "member"
    # The latest member enrollment up to ``day``: a window has a new enrollment iff it is in it.
    enrolled = max((e[0] for e in h.enrollments if e[3] == "member" and e[0] <= day), default=None)
    for i, w in enumerate(windows):
        keys = _window_keys(w)
        for name, (n, amount) in by_channel[i].items():
            k_orders, k_revenue, k_active = _channel_keys(w, name)
            out[k_orders] += n
            if amount:
                out[k_revenue] += amount
            out[k_active] = 1
        if issued[i]:
            out[keys["points_issued"]] += issued[i]
        if orders[i]:
            repeat = orders[i] >= 2
            for k_orders, k_revenue, k_active, k_repeat in (
                (keys["orders"], keys["revenue"], keys["active"], keys["repeat"]),
                _segment_keys(w, segment),
            ):
                out[k_orders] += orders[i]
                if revenue[i]:
                    out[k_revenue] += revenue[i]
                out[k_active] += 1
                if repeat:
                    out[k_repeat] += 1
            if member:
                out[keys["active_members"]] += 1
        if redeemed[i]:
            out[keys["points_redeemed"]] += redeemed[i]
        if redeeming[i]:
            out[keys["redeeming"]] += 1
        if enrolled is not None and enrolled >= day - w + 1:
            out[keys["new_enrollments"]] += 1
    in_s = latest_at_start is not None and latest_at_start > start - t
    in_e = latest is not None and latest > day - t
    if in_s:
        out["churn", "customers_at_start"] += 1
        if base:
            out["churn", "value_at_start"] += base
        if not in_e:
            out["churn", "churned"] += 1
            if base:
                out["churn", "value_churned"] += base
    if in_e:
        out["churn", "active_at_end"] += 1
    first = h.first_purchase_day
    if first is not None and start < first <= day:
        out["churn", "new_customers"] += 1
    was_active = latest_before is not None and latest_before > day - 1 - t
    if was_active and not in_e:
        out["churn", "churned_on_day"] += 1
    if member:
        out["program", "members_total"] += 1
    elif segment == "control":
        out["program", "control_total"] += 1
    if points:
        out["program", "outstanding_points"] += points
    return out
