"""Per-partition KPI state, advanced one closed business day at a time.

``terms`` is the sum of every customer's contribution as of the last closed
day. Closing day D revisits only the customers whose contribution can differ
between D-1 and D: those with an event on a day D - b, b in params.boundaries
(a window edge, the churn look-back, ...), and on the first of a month those
whose cohort row leaves the report. For them the delta is
contribution(D) - contribution(D-1), both computed from the current history:
days up to D-1 are closed, so later events cannot have changed them. Only the
parts of it that the boundary can move are computed (``boundary_parts``): a
customer whose event 90 days ago leaves the 90-day window changes that
window's terms and the churn terms, nothing else.

Closing also prunes: days older than any view of an open day can look at are
forgotten, by the histories and by the boundary index alike. A question about
an older day (who changed since a preview taken many closes ago) is then
answered "unknown", never with a partial set.
"""

from __future__ import annotations

from collections.abc import Iterable

from stream_app.contract import Event
from stream_app.kpi.contribution import OTHER, add_contribution, boundary_parts
from stream_app.kpi.customer_cache import CustomerCache, Histories
from stream_app.kpi.day_index import DayIndex
from stream_app.kpi.days import month_of, month_start
from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.params import KpiParams
from stream_app.kpi.terms import KpiTerms


class KpiPartition:
    def __init__(
        self,
        params: KpiParams,
        closed_day: int | None = None,
        customers: Histories | None = None,
    ) -> None:
        """``customers``: the histories, shared with the partition's customer cache
        (kpi/customer_cache.py); by default a cache of this engine's own."""
        self.params = params
        self.customers: Histories = (
            customers if customers is not None else CustomerCache(2**62).histories
        )
        self.by_day = DayIndex()
        self.closed_day = closed_day
        # Days before this are gone from the histories and from ``by_day``.
        self.pruned_before: int | None = None
        self.terms = KpiTerms()

    def add(self, event: Event, day: int, stored: CustomerHistory | None = None) -> CustomerHistory:
        """Record an accepted event of a day that is not closed yet.

        ``stored``: the history the caller keeps for a customer this engine
        does not know yet; the engine then shares that object.
        """
        if self.closed_day is not None and day <= self.closed_day:
            raise ValueError(f"day {day} is closed; the caller must treat the event as late")
        history = self.customers.get(event.customer_id)
        if history is None:
            history = self.customers[event.customer_id] = (
                stored if stored is not None else CustomerHistory()
            )
        history.add(event, day)
        self.by_day.add(day, event.customer_id)
        return history

    def close(self, day: int) -> KpiTerms:
        """Make ``day`` final (the next one after the last closed) and return its terms."""
        if self.closed_day is not None and day != self.closed_day + 1:
            raise ValueError(f"close day {self.closed_day + 1} before day {day}")
        params, terms = self.params, self.terms
        # Contributions as of the previous close are still exact: no event of a
        # closed day is added later, and later days do not count as of it.
        for customer, parts in self._touched_parts(day).items():
            history = self.customers[customer]
            add_contribution(terms, history, day - 1, params, -1, parts)
            add_contribution(terms, history, day, params, 1, parts)
        self.closed_day = day
        self._prune(day)
        return self.terms.copy()

    def touched_between(self, after: int, through: int) -> set[str] | None:
        """Customers whose contribution can differ between as of ``after`` and as of
        ``through`` without a new event of theirs; None when that cannot be told any
        more because days it depends on were pruned (recompute in full instead)."""
        if not self.remembers(after):
            return None
        touched: set[str] = set()
        for d in range(after + 1, through + 1):
            touched |= self._touched(d)
        return touched

    def terms_as_of(self, day: int) -> KpiTerms:
        """Every customer's contribution as of ``day`` (an open day, or the last
        closed one), summed: the terms as of the last close, plus the change of
        each customer whose contribution can differ between the two (one with an
        event after the close, or on a boundary day: ``touched_between``). Before
        the first close, every customer's contribution."""
        params, closed = self.params, self.closed_day
        if closed is None or day < closed:
            every = KpiTerms()
            for history in self.customers.values():
                add_contribution(every, history, day, params)
            return every
        since_close = self.touched_between(closed, day)
        if since_close is None:  # the last closed day is always remembered
            raise AssertionError(f"day {closed} closed and already pruned")
        for d in self.by_day:
            if d > closed:
                since_close |= self.by_day.customers(d)
        terms = self.terms.copy()
        for customer in since_close:
            history = self.customers[customer]
            add_contribution(terms, history, closed, params, -1)
            add_contribution(terms, history, day, params)
        return terms

    def remembers(self, day: int) -> bool:
        """Whether contributions as of ``day``, and whose contribution changes on the
        days after it, can still be computed: each looks back at most
        max(boundaries) days, and pruning may have taken older ones."""
        oldest_needed = day + 1 - self.params.lookback_days
        return self.pruned_before is None or oldest_needed >= self.pruned_before

    def _touched(self, day: int) -> set[str]:
        return set(self._touched_parts(day))

    def _touched_parts(self, day: int) -> dict[str, int]:
        """The customers whose contribution can differ between as of ``day`` - 1
        and as of ``day``, each with the parts of it that can."""
        touched: dict[str, int] = {}
        for b, mask in boundary_parts(self.params).items():
            for customer in self.by_day.customers(day - b):
                touched[customer] = touched.get(customer, 0) | mask
        if day == month_start(month_of(day)):
            for customer in self._cohort(month_of(day) - self.params.cohort_months):
                touched[customer] = touched.get(customer, 0) | OTHER
        return touched

    def _cohort(self, month: int) -> set[str]:
        """Customers whose first purchase is in ``month``: on the first day of
        ``month`` + cohort_months their cohort row leaves the report (once a month,
        so a scan)."""
        first, after = month_start(month), month_start(month + 1)
        return {
            c
            for c, day in self.customers.first_purchase_days()
            if day is not None and first <= day < after
        }

    def _prune(self, day: int) -> None:
        horizon = day - self.params.history_days
        self.pruned_before = self.customers.prune_before = horizon
        for old in [d for d in self.by_day.days() if d < horizon]:
            for customer in self.by_day.pop(old):
                history = self.customers.decoded(customer)  # a record is pruned when read
                if history is not None:
                    history.prune(horizon)
        # customers stay: their first purchase day and net points still count

    @classmethod
    def restore(
        cls,
        params: KpiParams,
        closed_day: int | None,
        histories: Iterable[tuple[str, CustomerHistory]],
        customers: Histories | None = None,
        terms: KpiTerms | None = None,
    ) -> KpiPartition:
        """Rebuild from stored histories (each customer once). ``customers``: where
        the engine reads them later (by default they are kept here). ``terms``: the
        terms as of ``closed_day`` when they were stored with it; else they are
        recomputed from every history."""
        part = cls(params, closed_day, customers)
        if closed_day is not None:  # stored histories were pruned up to this close at most
            part.pruned_before = part.customers.prune_before = closed_day - params.history_days
        recompute = closed_day is not None and terms is None
        if terms is not None:
            part.terms = terms.copy()
        keep = customers is None
        for customer, history in histories:
            if keep:
                part.customers[customer] = history
            for day in history.days():
                part.by_day.add(day, customer)
            if recompute and closed_day is not None:
                add_contribution(part.terms, history, closed_day, params)
        return part
