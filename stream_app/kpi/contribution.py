"""One customer's additive share of every KPI as of a day, straight from its history.

Summed over customers (and over partitions: a customer lives in exactly one)
these terms give every count and sum of spec §3; ratios come later (report.py).
Keys are tuples: ("w", W, name), ("seg", W, segment, name), ("ch", W, channel,
name), ("churn", name), ("program", name).
"""

from __future__ import annotations

from collections import defaultdict

from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.params import CLV_WINDOW, KpiParams

Terms = dict[tuple[object, ...], int]


def contribution(h: CustomerHistory, day: int, params: KpiParams) -> Terms:
    """One pass over the history (this runs for every touched customer at every
    day close and preview; tests/unit/test_kpi_engine.py holds it to the
    brute-force reference)."""
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
                w = windows[i]
                if age >= w:
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
                out["program", "cost_reward_minor"] += reward_minor
                out["program", "cost_unpriced_points"] += unpriced
    member = segment == "member"
    for i, w in enumerate(windows):
        for name, (n, amount) in by_channel[i].items():
            out["ch", w, name, "orders"] += n
            out["ch", w, name, "revenue"] += amount
            out["ch", w, name, "active"] = 1
        if issued[i]:
            out["w", w, "points_issued"] += issued[i]
        if orders[i]:
            repeat = int(orders[i] >= 2)
            for prefix in (("w", w), ("seg", w, segment)):
                out[(*prefix, "orders")] += orders[i]
                out[(*prefix, "revenue")] += revenue[i]
                out[(*prefix, "active")] += 1
                out[(*prefix, "repeat")] += repeat
            out["w", w, "active_members"] += member
        out["w", w, "points_redeemed"] += redeemed[i]
        out["w", w, "redeeming"] += redeeming[i]
        lo = day - w + 1
        out["w", w, "new_enrollments"] += any(
            lo <= e[0] <= day and e[3] == "member" for e in h.enrollments
        )
    in_s = latest_at_start is not None and latest_at_start > start - t
    in_e = latest is not None and latest > day - t
    if in_s:
        out["churn", "customers_at_start"] += 1
        out["churn", "value_at_start"] += base
        if not in_e:
            out["churn", "churned"] += 1
            out["churn", "value_churned"] += base
    out["churn", "active_at_end"] += in_e
    first = h.first_purchase_day
    out["churn", "new_customers"] += first is not None and start < first <= day
    was_active = latest_before is not None and latest_before > day - 1 - t
    out["churn", "churned_on_day"] += was_active and not in_e
    out["program", "members_total"] += member
    out["program", "control_total"] += segment == "control"
    out["program", "outstanding_points"] += points
    return out
