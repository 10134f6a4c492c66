"""Closing days and serving the KPIs: one tick of every worker. No faust imports.

Each tick (every ``CLOSE_INTERVAL_SECONDS``), for the partitions this worker owns:

1. close every partition through the global final day (a partition restored
   after a crash or a move catches up here);
2. record in each partition's changelog, after its customer records, its
   closed day, the totals of closed days not yet published and its view of
   event time (``PartitionMeta``), and flush: from here on a crash cannot undo
   any of it;
3. publish those totals as write-once partials and those views as the
   partitions' event time; the stream watermark is the minimum over every
   partition's (spec §2); raise the global final day from it (it never goes
   back; the next tick closes it);
4. merge every final day whose partials are all in, oldest first, into the
   history; publish each partition's totals as of the open day and merge them
   into the current document once every partition has one for that day.

Because the final day is only ever raised from views that are on the broker,
a worker that crashes and reads records again never finds an event it had
applied turned late: it was applied before a view that passed its day, so its
customer record is on the broker too and it is a redelivery.

Any worker may merge: the partials of a final day never change, so every
merge of a day gives the same totals (the first document kept stays). A worker
cut off from Redis keeps consuming; nothing closes until Redis is back, then it
catches up.

Kafka is the truth, Redis its cache (spec §4): a partial, a merged document and
a raised final day go to the results topic (stream_app/results_log.py) and are
on the broker before Redis gets them, and a partition drops a partial from its
meta only after both. A Redis that comes back empty is refilled from that topic
before anything else happens (stream_app/refill.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from redis.exceptions import RedisError

from stream_app.alerts import SendAlert, SpikeMonitor
from stream_app.keys import ResultKey
from stream_app.kpi.days import business_day, now_ms
from stream_app.kpi.finality import final_day
from stream_app.kpi.meta import ClosedTerms, PartitionMeta
from stream_app.kpi.report import kpi_document
from stream_app.kpi.terms import KpiTerms, merge
from stream_app.kpi.watermarks import PartitionTime, stream_first_day, stream_watermark
from stream_app.metrics import WorkerMetrics
from stream_app.pipeline import Pipeline
from stream_app.refill import Refiller, RefillReport
from stream_app.refill_snapshot import final_day_value
from stream_app.results_log import ResultRecord, ResultsLog
from stream_app.serving import ServingStore, encode_terms
from stream_app.settings import Settings
from stream_app.timefmt import iso_ms

CLOSE_INTERVAL_SECONDS = 0.25
# Days a partition closes per tick. A replay of history closes hundreds of days,
# and each tick runs on the worker's event loop: small steps keep the HTTP view
# and the pipeline responsive (measured: 60 days x 8 partitions held the loop
# ~3 s). Their totals also ride in the partition's meta record until published
# (~13 kB a day with 32 stores; kpi/partition.py caps the record's days and bytes
# well under the producer's 1 MB request limit).
MAX_DAYS_PER_TICK = 16
# A tick stops closing days after this much time (having closed at least one)
# and says so; the timer then runs the next tick at once, once the event loop
# has served what waited (views, probes, a batch). One day of one partition is
# the smallest step. The demo's 5,000 customers close ~6 days a second, which
# held the loop up to 2.6 s a tick and timed out its views.
CLOSE_BUDGET_S = 0.1
# After previews costing t, the next ones wait FACTOR x t: previews take at most
# a third of the CPU the pipeline needs while the stream is live (its watermark
# within REPLAY_DELAY_MS of the clock), a thirteenth while it replays the past.
PREVIEW_COST_FACTOR = 2
REPLAY_PREVIEW_COST_FACTOR = 12
REPLAY_DELAY_MS = 5 * 60_000
REDIS_WARNING_EVERY_S = 30.0
# Final days merged per step: their documents go to the results topic in one
# append, then Redis marks them merged.
MERGE_STEP_DAYS = 16

log = logging.getLogger(__name__)


@dataclass
class CloserStatus:
    """What the last ticks saw and how they went."""

    watermark_ms: int | None = None
    final_day: int | None = None
    redis_ok: bool = True
    redis_errors: int = 0
    errors: int = 0
    refilling: bool = False  # the serving store is empty and another worker refills it
    last_refill: RefillReport | None = None  # the last refill this worker did


class DayCloser:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        store: ServingStore,
        save_meta: Callable[[int, PartitionMeta | ClosedTerms], Awaitable[None]],
        flush: Callable[[], Awaitable[Any]],
        results: ResultsLog,
        clock: Callable[[], int] = now_ms,
        lock: asyncio.Lock | None = None,
        spikes: SpikeMonitor | None = None,
        send_alert: SendAlert | None = None,
        metrics: WorkerMetrics | None = None,
        backlog: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        """``save_meta`` writes a partition's meta behind what was written before it;
        ``flush`` waits until all of it is on the broker; ``results`` keeps
        final results before Redis gets them; ``lock`` is held while
        the views are read and the metas written (no other write in between);
        ``spikes`` judges merged days and ``send_alert`` puts an alert on the broker;
        ``backlog``: the input partitions (source names) with records not read yet,
        which no tick may take for idle."""
        self.settings = settings
        self.params = settings.kpi_params
        self.partition_count = settings.partitions
        self.lateness_ms = round(settings.lateness_days * 86_400_000)
        self.pipeline = pipeline
        self.store = store
        self.save_meta = save_meta
        self.flush = flush
        self.results = results
        self.refiller = Refiller(results)
        self.clock = clock
        self.lock = lock or asyncio.Lock()
        self.status = CloserStatus()
        self.spikes = spikes
        self.send_alert = send_alert
        self.metrics = metrics or WorkerMetrics()
        self.backlog = backlog
        # partition -> what its last saved meta held: (closed day, unpublished, marks)
        self._saved: dict[int, tuple[Any, ...]] = {}
        self._previewed: dict[int, tuple[int, int]] = {}  # partition -> (day, count) published
        self._next_preview_at = 0
        self._warned_at = 0.0
        self._epoch: str | None = None  # the serving store's, when last seen

    async def tick(self) -> bool:
        """One tick. True when it stopped closing days on ``CLOSE_BUDGET_S`` with
        more to close: run the next one soon."""
        try:
            more = await self._tick()
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            self.status.redis_ok = False
            self.status.redis_errors += 1
            if time.monotonic() - self._warned_at >= REDIS_WARNING_EVERY_S:
                self._warned_at = time.monotonic()
                log.warning(
                    "serving store (Redis) unreachable: %s; processing goes on, days close "
                    "and KPIs are published once it is back",
                    exc,
                )
            return False
        except Exception:
            # Everything a tick does is redone by the next one; a crash would only
            # restart the worker into the same state.
            self.status.errors += 1
            log.exception("day close tick failed; the next tick retries")
            return False
        if not self.status.redis_ok:
            log.warning("serving store (Redis) reachable again: catching up")
        self.status.redis_ok = True
        return more

    async def _tick(self) -> bool:
        started = time.perf_counter()
        now = self.clock()
        epoch = await self.refiller.epoch(self.store)
        self.status.refilling = epoch is None
        self.status.last_refill = self.refiller.last
        if epoch is None:
            return False  # another worker is refilling the serving store
        if epoch != self._epoch:
            self._previewed.clear()  # a refilled store has no open-day totals
            self._next_preview_at = 0
            self._epoch = epoch
        finals = await self.store.final_days()
        closed, more = 0, False
        async with self.lock:
            # the budget counts from here: waiting for an ingest batch to release
            # the lock is not closing time
            deadline = time.perf_counter() + CLOSE_BUDGET_S
            self.pipeline.backlogged(self.backlog(), now)
            if finals is not None:
                closed, more = self.pipeline.close_through(
                    *finals, MAX_DAYS_PER_TICK, deadline=deadline
                )
            times = await self._record(now)
        if times:
            await self.store.publish_times(times)
        await self._publish_partials()
        all_times = await self.store.times()
        watermark = stream_watermark(all_times, self.partition_count)
        if watermark is None:
            return more  # a partition's owner has not published its time (yet, or again)
        self.status.watermark_ms = watermark
        candidate = final_day(watermark, self.lateness_ms, self.params.zone)
        first_event_day = stream_first_day(all_times)
        if candidate is not None and first_event_day is not None and candidate >= first_event_day:
            # The first time, every day since the first event becomes final at
            # once: a replay of history gets its whole history (up to history_days).
            first = max(candidate - self.settings.history_days + 1, first_event_day)
            if finals is None or candidate > finals[0]:
                known_first = finals[1] if finals is not None else min(first, candidate)
                key = ResultKey("final-day", candidate).encode()
                await self.results.append([(key, final_day_value(known_first))])
            finals = await self.store.raise_final_day(candidate, first)
            self.status.final_day = finals[0]
        if finals is not None:
            closed += await self._merge_final_days(watermark, *finals)
        if closed:
            self.metrics.day_close.observe(time.perf_counter() - started)
        if self.spikes is not None and self.send_alert is not None:
            await self.spikes.check(await self.store.merged_through(), self.send_alert)
        await self._publish_current(watermark, now)
        return more

    async def _record(self, now: int) -> dict[int, PartitionTime]:
        """Save each partition's meta where it changed and flush; the views it holds.
        The caller holds ``lock``."""
        times: dict[int, PartitionTime] = {}
        saved: dict[int, tuple[Any, ...]] = {}
        for number, part in list(self.pipeline.partitions.items()):
            meta = part.meta()
            signature = (meta.closed_day, sorted(meta.unpublished), sorted(meta.marks.items()))
            last = self._saved.get(number)
            if last != signature:
                terms = part.closed_terms()
                if terms is not None and (last is None or last[0] != terms.closed_day):
                    await self.save_meta(number, terms)  # before the meta that names its day
                await self.save_meta(number, meta)
                saved[number] = signature
            times[number] = replace(part.watermarks.report(now), first_day=part.first_day)
        if saved:
            await self.flush()  # the metas, and every customer record before them
            self._saved.update(saved)  # only once they are on the broker
        return times

    async def _publish_partials(self) -> None:
        parts = [(n, p) for n, p in list(self.pipeline.partitions.items()) if p.unpublished]
        if not parts:
            return
        merged = await self.store.merged_through()
        for number, part in parts:
            days = sorted(part.unpublished.items())
            # a day merged already has this partition's totals (they never change)
            pending = [(d, encode_terms(t)) for d, t in days if merged is None or d > merged]
            if pending:
                keys = [ResultKey("partial", day, number).encode() for day, _ in pending]
                await self.results.append(list(zip(keys, (raw for _, raw in pending), strict=True)))
                for day, raw in pending:
                    await self.store.publish_partial(day, number, raw)
            part.published([day for day, _ in days])

    async def _merge_final_days(self, watermark: int, final: int, first: int) -> int:
        """Merge the final days every partition has published; how many."""
        merged = await self.store.merged_through()
        day = merged + 1 if merged is not None else first
        count = 0
        while day <= final:
            kept: list[tuple[int, bytes]] = []
            while day <= final and len(kept) < MERGE_STEP_DAYS:
                partials = await self.store.partials(day)
                if len(partials) < self.partition_count:
                    break  # a partition has not published it yet: later days wait too
                terms = merge(partials.values())
                document = self.document(terms, day, final=True, watermark=watermark)
                kept.append((day, await self.store.keep_final(day, orjson.dumps(document))))
                day += 1
            if not kept:
                break
            await self.results.append([(ResultKey("final", d).encode(), doc) for d, doc in kept])
            gone: list[ResultRecord] = []
            for d, _ in kept:
                gone += [
                    (ResultKey("partial", d, p).encode(), None) for p in range(self.partition_count)
                ]
                for old in await self.store.finish_final(d):
                    gone += [
                        (ResultKey(kind, old).encode(), None) for kind in ("final", "final-day")
                    ]
            await self.results.append(gone)
            count += len(kept)
            if len(kept) < MERGE_STEP_DAYS:
                break
        return count

    def document(self, terms: KpiTerms, day: int, final: bool, watermark: int) -> dict[str, Any]:
        body = kpi_document(terms, day, self.params)
        head = {"as_of": body.pop("as_of"), "final": final, "watermark": iso_ms(watermark)}
        return head | body

    async def _publish_current(self, watermark: int, now: int) -> None:
        if now < self._next_preview_at:
            return
        started = time.perf_counter()
        day = business_day(watermark, self.params.zone)
        for number, part in list(self.pipeline.partitions.items()):
            count = part.applied_events
            if self._previewed.get(number) == (day, count):
                continue
            await self.store.publish_preview(number, day, part.preview(day), count)
            self._previewed[number] = (day, count)
        cost_ms = (time.perf_counter() - started) * 1000
        replaying = now - watermark > REPLAY_DELAY_MS
        factor = REPLAY_PREVIEW_COST_FACTOR if replaying else PREVIEW_COST_FACTOR
        self._next_preview_at = now + round(factor * cost_ms)
        previews = await self.store.previews(range(self.partition_count))
        if len(previews) < self.partition_count or any(d != day for d, _, _ in previews.values()):
            return
        terms = merge(t for _, _, t in previews.values())
        count = sum(c for _, c, _ in previews.values())
        await self.store.publish_current(
            self.document(terms, day, final=False, watermark=watermark), day, count, now, watermark
        )
