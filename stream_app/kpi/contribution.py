"""One customer's additive share of every KPI as of a day, straight from its history.

Summed over customers (and over partitions: a customer lives in exactly one)
these terms give every count and sum of spec §3 (``KpiTerms``, terms.py);
ratios come later (report.py).
"""

from __future__ import annotations

from functools import cache

from stream_app.kpi.days import month_of
from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.params import KpiParams
from stream_app.kpi.terms import Activity, CohortTerms, Count, KpiTerms, Stats, WindowTerms

# Parts of a contribution, as bits of ``parts``: bit i is the i-th of
# params.all_windows, then the churn terms, then the rest (program, cohorts).
CHURN = 1 << 30
OTHER = 1 << 31
ALL = -1  # every bit


@cache
def boundary_parts(params: KpiParams) -> dict[int, int]:
    """For each offset b of params.boundaries, the parts of a customer's
    contribution that can differ between as of D-1 and as of D because of an
    event on day D - b (and no event on D):

    - a window w's terms, when b = w: a purchase, a member enrollment or the
      second purchase leaves it (each window counts days after D - w);
    - the churn terms, when b is P (the period's start), T or T+1 (the
      inactivity edge as of D and as of D-1), P+T-1 (the early-customer
      look-back) or P+T (activity before the start);
    - nothing else: segment, tier, points, "bought" and the cohort months move
      only with an event on D itself (b = 0: every part), and a cohort row
      leaves the report on a month's first day (engine.py visits those).
    """
    p, t = params.churn_period, params.inactivity
    churn_offsets = {p, t, t + 1, p + t - 1, p + t}
    windows = params.all_windows
    parts: dict[int, int] = {}
    for b in params.boundaries:
        mask = ALL if b == 0 else 0
        if b in churn_offsets:
            mask |= CHURN
        if b in windows:
            mask |= 1 << windows.index(b)
        parts[b] = mask
    return parts


def contribution(h: CustomerHistory, day: int, params: KpiParams) -> KpiTerms:
    """The customer's terms as of ``day``. Windows it did nothing in are left out."""
    out = KpiTerms()
    add_contribution(out, h, day, params)
    return out


def add_contribution(
    out: KpiTerms,
    h: CustomerHistory,
    day: int,
    params: KpiParams,
    sign: int = 1,
    parts: int = ALL,
) -> None:
    """Add ``sign`` times the customer's terms as of ``day`` to ``out``, in place;
    only the ``parts`` named (bits above, ``boundary_parts``).

    One pass over the history; no object is made for the customer's own terms,
    only for groups ``out`` does not have yet (this runs twice for every touched
    customer at every day close, and for previews). tests/unit/test_kpi_engine.py
    holds it to the brute-force reference."""
    known_since = h.first_event_day
    if known_since is None or known_since > day:
        return  # nothing of the customer's as of day: every term is zero
    windows = params.all_windows  # ascending
    n_w = len(windows)
    # (index, window) of the windows asked for, widest first: a day outside one
    # is outside the narrower ones too
    wanted = [(i, windows[i]) for i in range(n_w - 1, -1, -1) if parts >> i & 1]
    segment, tier = h.segment_and_tier(day) if wanted or parts & OTHER else ("", "")
    p, t = params.churn_period, params.inactivity
    start = day - p
    orders, revenue, issued = [0] * n_w, [0] * n_w, [0] * n_w
    by_channel: list[dict[str, list[int]]] = [{} for _ in windows]
    first = h.first_purchase_day
    bought = first is not None and first <= day
    # The customer's cohort row (spec §3.7), when it is one of the rows shown as of day.
    cohort = month_of(first) if first is not None and bought else None
    if cohort is not None and (not parts & OTHER or cohort <= month_of(day) - params.cohort_months):
        cohort = None
    by_month: dict[int, int] = {}  # months since the cohort's -> revenue then
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
            by_month[k] = by_month.get(k, 0) + sum(row[1] for row in channels.values())
        in_base = at_start and d > start - t
        for name, (n, amount, earned) in channels.items():
            points += earned
            if in_base:
                base += amount
            for i, w in wanted:
                if age >= w:
                    break
                orders[i] += n
                revenue[i] += amount
                issued[i] += earned
                _tally(by_channel[i], name, n, amount)
    by_store: list[dict[str, list[int]]] = [{} for _ in windows]
    for d, stores in h.stores.items() if wanted else ():
        if d > day:
            continue
        age = day - d
        for name, (n, amount) in stores.items():
            for i, w in wanted:
                if age >= w:
                    break
                _tally(by_store[i], name, n, amount)
    redeemed, reward, unpriced = [0] * n_w, [0] * n_w, [0] * n_w
    for d, (spent, reward_minor, without_value) in h.redemptions.items():
        if d > day:
            continue
        points -= spent
        age = day - d
        for i, w in wanted:
            if age >= w:
                break
            redeemed[i] += spent
            reward[i] += reward_minor
            unpriced[i] += without_value
    member = segment == "member"
    # The latest member enrollment up to ``day``: a window has a new enrollment iff it is in it.
    enrolled = max((e[0] for e in h.enrollments if e[3] == "member" and e[0] <= day), default=None)
    second = h.second_purchase_day
    gap = None if second is None or second > day or first is None else second - first
    for i, w in reversed(wanted):  # narrowest first: the order ``out`` lists them in
        new_enrollment = enrolled is not None and enrolled >= day - w + 1
        if not (orders[i] or issued[i] or redeemed[i] or new_enrollment):
            continue
        window = out.windows.get(w)
        if window is None:
            window = out.windows[w] = WindowTerms()
        _add_named(window.channels, by_channel[i], sign)
        _add_named(window.stores, by_store[i], sign)
        window.points_issued += sign * issued[i]
        n = orders[i]
        if n:
            amount = revenue[i]
            repeat = int(n >= 2)
            _add_stats(window.purchases, n, amount, repeat, sign)
            _add_stats(_named(window.segments, segment), n, amount, repeat, sign)
            window.segments[segment].revenue_sq += sign * amount * amount
            if member:
                window.active_members += sign
            if tier:
                _add_stats(_named(window.tiers, tier), n, amount, 0, sign)
            if gap is not None and second is not None and second > day - w:
                gaps = window.second_gaps.get(gap)
                if gaps is None:
                    gaps = window.second_gaps[gap] = Count()
                gaps.n += sign
        if redeemed[i]:
            window.points_redeemed += sign * redeemed[i]
            window.redeeming += sign
            window.reward_minor += sign * reward[i]
            window.unpriced_points += sign * unpriced[i]
        if new_enrollment:
            window.new_enrollments += sign
    if parts & CHURN:
        churn = out.churn
        in_s = latest_at_start is not None and latest_at_start > start - t
        in_e = latest is not None and latest > day - t
        if in_s:
            churn.customers_at_start += sign
            churn.value_at_start += sign * base
            if not in_e:
                churn.churned += sign
                churn.value_churned += sign * base
        if in_e:
            churn.active_at_end += sign
        if first is not None and start < first <= day:
            churn.new_customers += sign
        was_active = latest_before is not None and latest_before > day - 1 - t
        if was_active and not in_e:
            churn.churned_on_day += sign
        if known_since <= start - t + 1:
            churn.early_customers += sign
    if not parts & OTHER:
        return
    program = out.program
    if member:
        program.members_total += sign
        if tier:
            counted = program.members_by_tier.get(tier)
            if counted is None:
                counted = program.members_by_tier[tier] = Count()
            counted.n += sign
    if segment == "control":
        program.control_total += sign
    if segment == "non_member" and bought:
        program.non_member_buyers += sign
    program.outstanding_points += sign * points
    if cohort is not None:
        cohort_row = out.cohorts.get(cohort)
        if cohort_row is None:
            cohort_row = out.cohorts[cohort] = CohortTerms()
        cohort_row.size += sign
        for k, month_revenue in by_month.items():
            month = cohort_row.months.get(k)
            if month is None:
                month = cohort_row.months[k] = Activity()
            month.active += sign
            month.revenue += sign * month_revenue


def _tally(by_name: dict[str, list[int]], name: str, orders: int, revenue: int) -> None:
    """Add one day's purchases of a channel or store (the customer counts once)."""
    row = by_name.get(name)
    if row is None:
        by_name[name] = [orders, revenue]
    else:
        row[0] += orders
        row[1] += revenue


def _named(by_name: dict[str, Stats], name: str) -> Stats:
    stats = by_name.get(name)
    if stats is None:
        stats = by_name[name] = Stats()
    return stats


def _add_stats(stats: Stats, orders: int, revenue: int, repeat: int, sign: int) -> None:
    """One customer's orders and revenue in ``stats`` (it counts as one active)."""
    stats.orders += sign * orders
    stats.revenue += sign * revenue
    stats.active += sign
    stats.repeat += sign * repeat


def _add_named(totals: dict[str, Stats], rows: dict[str, list[int]], sign: int) -> None:
    for name, (orders, revenue) in rows.items():
        _add_stats(_named(totals, name), orders, revenue, 0, sign)
