"""One customer's additive share of every KPI as of a day, straight from its history.

Summed over customers (and over partitions: a customer lives in exactly one)
these terms give every count and sum of spec §3 (``KpiTerms``, terms.py);
ratios come later (report.py).
"""

from __future__ import annotations

from stream_app.kpi.days import month_of
from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.params import KpiParams
from stream_app.kpi.terms import Activity, CohortTerms, Count, KpiTerms, Stats, WindowTerms


def contribution(h: CustomerHistory, day: int, params: KpiParams) -> KpiTerms:
    """One pass over the history (this runs for every touched customer at every
    day close and preview; tests/unit/test_kpi_engine.py holds it to the
    brute-force reference). Windows the customer did nothing in are left out."""
    out = KpiTerms()
    segment, tier = h.segment_and_tier(day)
    windows = params.all_windows  # ascending
    p, t = params.churn_period, params.inactivity
    start = day - p
    n_w = len(windows)
    orders, revenue, issued = [0] * n_w, [0] * n_w, [0] * n_w
    by_channel: list[dict[str, Stats]] = [{} for _ in windows]
    first = h.first_purchase_day
    bought = first is not None and first <= day
    # The customer's cohort row (spec §3.7), when it is one of the rows shown as of day.
    cohort = month_of(first) if first is not None and bought else None
    if cohort is not None and cohort <= month_of(day) - params.cohort_months:
        cohort = None
    by_month: dict[int, Activity] = {}  # months since the cohort's
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
        if cohort is not None:
            k = month_of(d) - cohort
            month = by_month.get(k)
            if month is None:
                month = by_month[k] = Activity(1)
            for row in channels.values():
                month.revenue += row[1]
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
                _tally(by_channel[i], name, n, amount)
    by_store: list[dict[str, Stats]] = [{} for _ in windows]
    for d, stores in h.stores.items():
        if d > day:
            continue
        age = day - d
        for name, (n, amount) in stores.items():
            for i in range(n_w - 1, -1, -1):
                if age >= windows[i]:
                    break
                _tally(by_store[i], name, n, amount)
    redeemed, reward, unpriced = [0] * n_w, [0] * n_w, [0] * n_w
    for d, (spent, reward_minor, without_value) in h.redemptions.items():
        if d > day:
            continue
        points -= spent
        age = day - d
        for i in range(n_w - 1, -1, -1):
            if age >= windows[i]:
                break
            redeemed[i] += spent
            reward[i] += reward_minor
            unpriced[i] += without_value
    member = segment == "member"
    # The latest member enrollment up to ``day``: a window has a new enrollment iff it is in it.
    enrolled = max((e[0] for e in h.enrollments if e[3] == "member" and e[0] <= day), default=None)
    second = h.second_purchase_day
    gap = None if second is None or second > day or first is None else second - first
    for i, w in enumerate(windows):
        new_enrollment = enrolled is not None and enrolled >= day - w + 1
        if not (orders[i] or issued[i] or redeemed[i] or new_enrollment):
            continue
        window = out.windows[w] = WindowTerms()
        window.channels = by_channel[i]
        window.stores = by_store[i]
        window.points_issued = issued[i]
        if orders[i]:
            repeat = int(orders[i] >= 2)
            window.purchases = Stats(orders[i], revenue[i], 1, repeat)
            window.segments[segment] = Stats(orders[i], revenue[i], 1, repeat, revenue[i] ** 2)
            window.active_members = int(member)
            if tier:
                window.tiers[tier] = Stats(orders[i], revenue[i], 1)
            if gap is not None and second is not None and second > day - w:
                window.second_gaps[gap] = Count(1)
        if redeemed[i]:
            window.points_redeemed = redeemed[i]
            window.redeeming = 1
            window.reward_minor = reward[i]
            window.unpriced_points = unpriced[i]
        window.new_enrollments = int(new_enrollment)
    churn = out.churn
    in_s = latest_at_start is not None and latest_at_start > start - t
    in_e = latest is not None and latest > day - t
    if in_s:
        churn.customers_at_start = 1
        churn.value_at_start = base
        if not in_e:
            churn.churned = 1
            churn.value_churned = base
    churn.active_at_end = int(in_e)
    churn.new_customers = int(first is not None and start < first <= day)
    was_active = latest_before is not None and latest_before > day - 1 - t
    churn.churned_on_day = int(was_active and not in_e)
    known_since = h.first_event_day
    churn.early_customers = int(known_since is not None and known_since <= start - t + 1)
    program = out.program
    program.members_total = int(member)
    program.control_total = int(segment == "control")
    program.non_member_buyers = int(segment == "non_member" and bought)
    if member and tier:
        program.members_by_tier[tier] = Count(1)
    program.outstanding_points = points
    if cohort is not None:
        out.cohorts[cohort] = CohortTerms(1, by_month)
    return out


def _tally(by_name: dict[str, Stats], name: str, orders: int, revenue: int) -> None:
    """Add one day's purchases of a channel or store (the customer counts once)."""
    stats = by_name.get(name)
    if stats is None:
        by_name[name] = Stats(orders, revenue, 1)
    else:
        stats.orders += orders
        stats.revenue += revenue
