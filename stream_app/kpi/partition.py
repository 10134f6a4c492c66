"""The state of one input partition: its customers, KPI engine, watermark, rejections."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from stream_app.contract import Event
from stream_app.kpi.contribution import add_contribution, contribution
from stream_app.kpi.customer import CustomerState, id_digest
from stream_app.kpi.customer_cache import CustomerCache, Records
from stream_app.kpi.days import business_day
from stream_app.kpi.engine import KpiPartition
from stream_app.kpi.finality import is_late
from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.meta import ClosedTerms, PartitionMeta, terms_to_json
from stream_app.kpi.params import KpiParams
from stream_app.kpi.rejections import RejectionLedger
from stream_app.kpi.state_codec import encode_state
from stream_app.kpi.terms import KpiTerms
from stream_app.kpi.totals import Totals
from stream_app.kpi.watermarks import SourceWatermarks

NO_FLOOR = -(2**63)
FLOOR_REFRESH = 64
# Closed days a partition carries unpublished at most, in its meta record: with
# the serving store refusing writes, closing pauses here. A day's terms take
# ~13 kB of JSON with 32 stores (stores, the days-to-second-purchase histogram
# and cohorts weigh most), so the bytes are capped too: the record must stay
# well under the producer's 1 MB request limit (one day more may cross it).
MAX_UNPUBLISHED_DAYS = 64
MAX_TRACKED = 20_000  # contributions a preview sets aside between two previews
MAX_UNPUBLISHED_BYTES = 384 * 1024


@dataclass(frozen=True, slots=True)
class Repeat:
    """A repeat (same event_id) of an applied event, read at an offset the customer
    had not seen: not applied, but its offset is recorded in ``state``, which must
    be written back (kpi/customer.py says why)."""

    state: CustomerState


@dataclass(frozen=True, slots=True)
class Late:
    """An event whose business day is already final (spec §2): not applied."""

    day: int
    last_final: int


class PartitionState:
    """Everything one partition contributes; a customer lives in exactly one."""

    def __init__(
        self,
        partition: int,
        dedup_horizon_ms: int,
        sources: Iterable[str] = (),
        idle_ms: int = 30_000,
        now_ms: int = 0,
        floor_refresh: int = FLOOR_REFRESH,
        params: KpiParams | None = None,
        closed_day: int | None = None,
        preview_min_tracked: int = 1000,
        cache_limit: int = 2**62,
    ) -> None:
        """``cache_limit``: customers kept decoded, the rest as their records
        (kpi/customer_cache.py)."""
        self.partition = partition
        self.params = params or KpiParams()
        self._cache_limit = cache_limit
        self.customers = CustomerCache(cache_limit)
        self.kpi = KpiPartition(self.params, closed_day, self.customers.histories)
        self.dedup_horizon_ms = dedup_horizon_ms
        self.ledgers: dict[str, RejectionLedger] = {}
        self.totals = Totals()
        self.watermarks = SourceWatermarks(sources, idle_ms, now_ms)
        # Closed days whose KPI terms the serving store has not confirmed yet.
        self.unpublished: dict[int, KpiTerms] = {}
        self._unpublished_bytes: dict[int, int] = {}
        self.first_day: int | None = None  # the earliest business day applied
        # The stream's final day as last given; days up to it are late even while
        # this partition is still closing them (a bounded number per call).
        self.final_day: int | None = closed_day
        self._preview_min_tracked = preview_min_tracked
        self._preview = PreviewCache(preview_min_tracked)
        self.duplicates = 0
        self._floor = NO_FLOOR
        self._floor_refresh = floor_refresh
        self._floor_age = floor_refresh

    @property
    def watermark_ms(self) -> int | None:
        """Latest event time applied in this partition (for display)."""
        return self.watermarks.high()

    def apply(
        self, event: Event, source: str, offset: int, now_ms: int
    ) -> CustomerState | Repeat | Late | None:
        """Apply an event read at ``source``@``offset``.

        None when this record was read before (a replay), Repeat when it repeats
        an applied event, Late when its day is final: a redelivery of an applied
        event is a duplicate even once its day closed.
        """
        self.watermarks.observe(source, event.occurred_ms, now_ms)
        state = self.customers.get(event.customer_id)
        if state is not None and state.has_applied(source, offset):
            self.duplicates += 1
            return None
        digest = id_digest(event.event_id)
        if state is not None and state.has_seen(digest):
            self.duplicates += 1
            state.record_repeat(source, offset)
            return Repeat(state)
        day = business_day(event.occurred_ms, self.params.zone)
        final = self.final_day
        if final is not None and is_late(day, final):
            return Late(day, final)
        if self.first_day is None or day < self.first_day:
            self.first_day = day
        if state is None:
            state = CustomerState()
            self.customers.add(event.customer_id, state)
        self._preview.before_change(
            event.customer_id, state.history, self.params, len(self.customers)
        )
        self.totals.count(event, new_customer=not state.is_known)
        state.apply(event, digest, source, offset, self.dedup_floor_ms(now_ms))
        state.history = self.kpi.add(event, day, state.history)
        return state

    def close_through(
        self, day: int, first_day: int | None = None, max_days: int | None = None
    ) -> list[tuple[int, KpiTerms]]:
        """Make every day up to ``day`` final; the KPI terms as of each day closed.

        A partition that never closed a day starts at ``first_day`` (the first
        day the stream declared final; default ``day``), computed in full, so
        every partition reports the same days; days before it are never reported.
        ``max_days``: close at most this many days now (the rest on a later call).
        """
        if self.final_day is None or day > self.final_day:
            self.final_day = day
        closed = self.kpi.closed_day
        if closed is not None and day <= closed:
            return []
        budget = MAX_UNPUBLISHED_DAYS - len(self.unpublished)
        if max_days is not None:
            budget = min(budget, max_days)
        if budget <= 0 or self.unpublished_bytes >= MAX_UNPUBLISHED_BYTES:
            return []
        if closed is None:
            start = day if first_day is None else min(first_day, day)
            self._rebuild_kpi(start)
            out = [(start, self.kpi.terms.copy())]
            closed = start
        else:
            out = []
        self._carry(out)
        for d in range(closed + 1, min(day, closed + budget - len(out)) + 1):
            if self.unpublished_bytes >= MAX_UNPUBLISHED_BYTES:
                break
            closed_day = (d, self.kpi.close(d))
            self._carry([closed_day])
            out.append(closed_day)
        return out

    def _carry(self, days: list[tuple[int, KpiTerms]]) -> None:
        for d, terms in days:
            self.unpublished[d] = terms
            self._unpublished_bytes[d] = len(orjson.dumps(terms_to_json(terms)))

    @property
    def unpublished_bytes(self) -> int:
        """The JSON size of the closed days' terms carried unpublished."""
        return sum(self._unpublished_bytes.values())

    def published(self, days: Iterable[int]) -> None:
        """The serving store holds these days' terms: stop carrying them."""
        for d in days:
            self.unpublished.pop(d, None)
            self._unpublished_bytes.pop(d, None)

    def settled(self) -> None:
        """Every customer applied so far is in the table store: the cache may drop
        decoded ones (kpi/customer_cache.py)."""
        self.customers.settled()

    def closed_terms(self) -> ClosedTerms | None:
        closed = self.kpi.closed_day
        return None if closed is None else ClosedTerms(closed, self.kpi.terms.copy())

    def meta(self) -> PartitionMeta:
        marks = {s: m for s, m in self.watermarks.marks.items() if m is not None}
        return PartitionMeta(self.kpi.closed_day, dict(self.unpublished), marks)

    def preview(self, day: int) -> KpiTerms:
        """Totals as of ``day`` from the events applied so far, closing nothing
        (what /kpis shows of the open day). Incremental between calls: only
        customers with a new event, or whose contribution moves with the day,
        are recomputed."""
        return self._preview.terms(day, self.kpi)

    @property
    def applied_events(self) -> int:
        """Events applied so far (only grows: a version for what this partition shows)."""
        return sum(self.totals.events.values())

    def _rebuild_kpi(self, closed_day: int | None) -> None:
        """The engine over the customers' histories, terms as of ``closed_day``."""
        customers = self.customers.histories
        self.kpi = KpiPartition.restore(self.params, closed_day, customers.items(), customers)

    def dedup_floor_ms(self, now_ms: int) -> int:
        """Event ids older than this may be forgotten: the low watermark of the
        partition's sources minus the horizon (sources run at different speeds).

        Refreshed every ``floor_refresh`` events: a stale floor is only lower, so
        it forgets later, never wrongly.
        """
        self._floor_age += 1
        if self._floor_age >= self._floor_refresh:
            self._floor_age = 0
            low = self.watermarks.low(now_ms)
            self._floor = NO_FLOOR if low is None else low - self.dedup_horizon_ms
        return self._floor

    def reject(self, source_topic: str, offset: int, reason: str) -> RejectionLedger | None:
        """Count a rejection once per source offset; None when already counted."""
        ledger = self.ledgers.get(source_topic)
        if ledger is None:
            ledger = self.ledgers[source_topic] = RejectionLedger()
        return ledger if ledger.record(offset, reason) else None

    def rejected(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for ledger in self.ledgers.values():
            for reason, n in ledger.counts.items():
                merged[reason] = merged.get(reason, 0) + n
        return merged

    def restore(
        self,
        customers: Iterable[tuple[str, CustomerState | bytes]],
        ledgers: Iterable[tuple[str, RejectionLedger]],
        meta: PartitionMeta | None = None,
        records: Records | None = None,
        closed_terms: ClosedTerms | None = None,
    ) -> PartitionState:
        """Fill from recovered table contents: the customers (records as stored, or
        states), or ``records`` to read them from when needed (a store on disk);
        derived values are recomputed in one pass over the customers. The terms
        as of the closed day are ``closed_terms`` when they name that day, else
        recomputed from every customer."""
        cache = self.customers = CustomerCache(self._cache_limit, records)
        cache.load((c, v if isinstance(v, bytes) else encode_state(v)) for c, v in customers)
        self.ledgers = dict(ledgers)
        self._preview = PreviewCache(self._preview_min_tracked)
        if meta is not None:
            self.unpublished, self._unpublished_bytes = {}, {}
            self._carry(sorted(meta.unpublished.items()))
            self.watermarks.resume(meta.marks)
        totals = self.totals = Totals()

        def histories() -> Iterator[tuple[str, CustomerHistory]]:
            count = 0
            for customer, state in cache.items():
                count += 1
                totals.add_customer(state)
                yield customer, state.history
            cache.counted(count)

        closed = self.kpi.closed_day if meta is None else meta.closed_day
        terms = None
        if closed_terms is not None and closed is not None and closed_terms.closed_day == closed:
            terms = closed_terms.terms
        self.kpi = KpiPartition.restore(self.params, closed, histories(), cache.histories, terms)
        self.first_day = min(self.kpi.by_day, default=None)
        self.final_day = self.kpi.closed_day
        return self


class PreviewCache:
    """The KPI terms as of one open day, kept up to date by deltas.

    Before a customer's history changes for the first time since the last
    preview, its contribution as of the preview day is set aside; the next
    preview swaps it for the new one. When more customers change between two
    previews than ``max(min_tracked, min(customers / 4, MAX_TRACKED))`` (a fast
    replay), the next preview is computed in full, and so are the following
    ones, without setting anything aside, until a cycle changes fewer customers
    than that again. "In full" starts from the terms as of the last close and
    revisits only the customers with an event after it or on a boundary day
    (``KpiPartition.terms_as_of``).
    A preview is also computed in full when closes since the last one pruned
    days that the step from its day to the new one would need (a replay closes
    many days between two throttled previews): the engine then cannot tell who
    changed, and a partial answer would leave customers counted in windows they
    have left.
    """

    def __init__(self, min_tracked: int = 1000) -> None:
        self.day: int | None = None  # None: the next preview is computed in full
        self.current = KpiTerms()
        self.before: dict[str, KpiTerms] = {}
        self.min_tracked = min_tracked
        self.tracking = True
        self.untracked: set[str] = set()  # changed since the last preview, not tracked
        self._limit = min_tracked

    def before_change(
        self, customer: str, history: CustomerHistory, params: KpiParams, customers: int
    ) -> None:
        # a full preview starts from the last close (KpiPartition.terms_as_of), so
        # tracking more than MAX_TRACKED customers' contributions (~2 kB each) buys little
        self._limit = max(self.min_tracked, min(customers // 4, MAX_TRACKED))
        if self.day is None or not self.tracking:
            self.untracked.add(customer)
            return
        if customer in self.before:
            return
        if len(self.before) >= self._limit:  # cheaper to start over
            self.untracked.update(self.before)
            self.untracked.add(customer)
            self.day, self.current, self.before = None, KpiTerms(), {}
            return
        self.before[customer] = contribution(history, self.day, params)

    def terms(self, day: int, kpi: KpiPartition) -> KpiTerms:
        """Totals as of ``day`` over the histories ``kpi`` holds (every customer's)."""
        params, histories, since = kpi.params, kpi.customers, self.day
        moved = None
        if since is not None and day >= since and self.tracking:
            moved = kpi.touched_between(since, day)  # None: pruned since the last preview
        if since is None or moved is None:
            self.current = kpi.terms_as_of(day)
        else:
            current = self.current
            for customer in self.before.keys() | moved:
                history = histories[customer]
                old = self.before.get(customer)
                if old is None:
                    add_contribution(current, history, since, params, -1)
                else:
                    current.add(old, -1)
                add_contribution(current, history, day, params)
        # Track the next cycle only if this one changed few enough customers.
        self.tracking = len(self.untracked) + len(self.before) < self._limit
        self.day = day
        self.before, self.untracked = {}, set()
        return self.current.copy()
