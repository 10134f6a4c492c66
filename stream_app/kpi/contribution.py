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
    out: Terms = defaultdict(int)
    segment = h.segment_as_of(day)
    for w in params.all_windows:
        _window(h, day, w, segment, out)
    _churn(h, day, params, out)
    _program(h, day, segment, out)
    return out


def _window(h: CustomerHistory, day: int, w: int, segment: str, out: Terms) -> None:
    lo = day - w + 1
    orders = revenue = 0
    for d, channels in h.purchases.items():
        if lo <= d <= day:
            for name, (n, amount, points) in channels.items():
                orders += n
                revenue += amount
                out["w", w, "points_issued"] += points
                out["ch", w, name, "orders"] += n
                out["ch", w, name, "revenue"] += amount
                out["ch", w, name, "active"] = 1
    if orders:
        repeat = int(orders >= 2)
        for prefix in (("w", w), ("seg", w, segment)):
            out[(*prefix, "orders")] += orders
            out[(*prefix, "revenue")] += revenue
            out[(*prefix, "active")] += 1
            out[(*prefix, "repeat")] += repeat
        out["w", w, "active_members"] += segment == "member"
    _window_redemptions(h, day, lo, w, out)
    member_enrolled = any(lo <= e[0] <= day and e[3] == "member" for e in h.enrollments)
    out["w", w, "new_enrollments"] += member_enrolled


def _window_redemptions(h: CustomerHistory, day: int, lo: int, w: int, out: Terms) -> None:
    redeemed = False
    for d, (points, reward_minor, unpriced_points) in h.redemptions.items():
        if lo <= d <= day:
            redeemed = True
            out["w", w, "points_redeemed"] += points
            if w == CLV_WINDOW:
                out["program", "cost_reward_minor"] += reward_minor
                out["program", "cost_unpriced_points"] += unpriced_points
    out["w", w, "redeeming"] += redeemed


def _latest_purchase(h: CustomerHistory, upto: int) -> int | None:
    return max((d for d in h.purchases if d <= upto), default=None)


def _active(h: CustomerHistory, as_of: int, inactivity: int) -> bool:
    """Spec §3.2: latest purchase with business day <= X is on a day > X - T."""
    latest = _latest_purchase(h, as_of)
    return latest is not None and latest > as_of - inactivity


def _churn(h: CustomerHistory, day: int, params: KpiParams, out: Terms) -> None:
    p, t = params.churn_period, params.inactivity
    start = day - p
    in_s = _active(h, start, t)
    in_e = _active(h, day, t)
    if in_s:
        base = sum(
            row[1]
            for d, chans in h.purchases.items()
            if start - t < d <= start
            for row in chans.values()
        )
        out["churn", "customers_at_start"] += 1
        out["churn", "value_at_start"] += base
        if not in_e:
            out["churn", "churned"] += 1
            out["churn", "value_churned"] += base
    out["churn", "active_at_end"] += in_e
    first = h.first_purchase_day
    out["churn", "new_customers"] += first is not None and start < first <= day
    out["churn", "churned_on_day"] += _active(h, day - 1, t) and not in_e


def _program(h: CustomerHistory, day: int, segment: str, out: Terms) -> None:
    out["program", "members_total"] += segment == "member"
    out["program", "control_total"] += segment == "control"
    points = h.carried_points
    for d, channels in h.purchases.items():
        if d <= day:
            points += sum(row[2] for row in channels.values())
    for d, row in h.redemptions.items():
        if d <= day:
            points -= row[0]
    out["program", "outstanding_points"] += points
