"""Closing days and serving the KPIs: one tick of every worker. No faust imports.

Each tick (every ``CLOSE_INTERVAL_SECONDS``):

1. publish what each owned partition knows of event time; read every
   partition's; the stream watermark is their minimum (spec §2);
2. raise the global final day (it never goes back); close every owned
   partition through it and record its closed day in the changelog, after the
   partition's customer records;
3. once that record is on the broker (flush), publish each closed day's totals
   as a write-once partial; merge every day whose partials are all in, oldest
   first, into the history;
4. publish each owned partition's totals as of the open day; merge them into
   the current document when every partition has one for that day.

Any worker may merge: the partials of a final day never change, so every
merge of a day gives the same document. A worker cut off from Redis keeps
consuming; nothing closes until Redis is back, then it catches up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from stream_app.kpi.days import business_day, now_ms
from stream_app.kpi.engine import merge
from stream_app.kpi.finality import final_day
from stream_app.kpi.meta import PartitionMeta
from stream_app.kpi.report import kpi_document
from stream_app.kpi.watermarks import stream_watermark
from stream_app.pipeline import Pipeline
from stream_app.serving import ServingStore
from stream_app.settings import Settings
from stream_app.timefmt import iso_ms

CLOSE_INTERVAL_SECONDS = 0.5
FULL_PREVIEW_EVERY_MS = 5_000  # a partition that never closed a day previews in full
REDIS_WARNING_EVERY_S = 30.0

log = logging.getLogger(__name__)


@dataclass
class CloserStatus:
    """What the last ticks did (for /readyz, metrics and tests)."""

    watermark_ms: int | None = None
    final_day: int | None = None
    merged_through: int | None = None
    redis_ok: bool = True
    redis_errors: int = 0
    last_close_seconds: float = 0.0


class DayCloser:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        store: ServingStore,
        save_meta: Callable[[int, PartitionMeta], None],
        flush: Callable[[], Awaitable[Any]],
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.params = settings.kpi_params
        self.partition_count = settings.partitions
        self.lateness_ms = round(settings.lateness_days * 86_400_000)
        self.pipeline = pipeline
        self.store = store
        self.save_meta = save_meta
        self.flush = flush
        self.clock = clock
        self.status = CloserStatus()
        self._previewed: dict[int, tuple[int, int]] = {}  # partition -> (day, count) published
        self._full_preview_at: dict[int, int] = {}
        self._warned_at = 0.0

    async def tick(self) -> None:
        try:
            await self._tick()
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
            return
        if not self.status.redis_ok:
            log.warning("serving store (Redis) reachable again: catching up")
        self.status.redis_ok = True

    async def _tick(self) -> None:
        now = self.clock()
        owned = self.pipeline.partitions
        if owned:
            await self.store.publish_times(self.pipeline.times(now))
        watermark = stream_watermark(await self.store.times(), self.partition_count)
        self.status.watermark_ms = watermark
        first = None
        if watermark is not None:
            candidate = final_day(watermark, self.lateness_ms, self.params.zone)
            if candidate is not None:
                final, first = await self.store.raise_final_day(candidate)
                self.status.final_day = final
                self._close(final, first)
        await self._publish_partials()
        if watermark is not None:
            await self._merge_final_days(watermark, first)
            await self._publish_current(watermark, now)

    def _close(self, final: int, first: int) -> None:
        started = time.perf_counter()
        for number, days in self.pipeline.close_through(final, first).items():
            if days:
                self.save_meta(number, self.pipeline.partitions[number].meta())
        self.status.last_close_seconds = time.perf_counter() - started

    async def _publish_partials(self) -> None:
        pending = {n: p for n, p in self.pipeline.partitions.items() if p.unpublished}
        if not pending:
            return
        # The closed days (and every customer record before them) reach the
        # broker before anyone can see those days' totals.
        await self.flush()
        for number, part in pending.items():
            for day, terms in sorted(part.unpublished.items()):
                await self.store.publish_partial(day, number, terms)
            part.published(list(part.unpublished))

    async def _merge_final_days(self, watermark: int, first: int | None) -> None:
        merged = await self.store.merged_through()
        final = await self.store.final_day()
        if final is None:
            return
        day = merged + 1 if merged is not None else first
        if day is None:
            return
        while day <= final:
            partials = await self.store.partials(day)
            if len(partials) < self.partition_count:
                break  # a partition has not published it yet: later days wait too
            document = self.document(merge(partials.values()), day, final=True, watermark=watermark)
            await self.store.store_final(day, document)
            self.status.merged_through = day
            day += 1

    def document(
        self, terms: dict[tuple[object, ...], int], day: int, final: bool, watermark: int
    ) -> dict[str, Any]:
        body = kpi_document(terms, day, self.params)
        head = {"as_of": body.pop("as_of"), "final": final, "watermark": iso_ms(watermark)}
        return head | body

    async def _publish_current(self, watermark: int, now: int) -> None:
        day = business_day(watermark, self.params.zone)
        for number, part in self.pipeline.partitions.items():
            count = part.applied_events
            if self._previewed.get(number) == (day, count) and part.kpi.closed_day is not None:
                continue
            if part.kpi.closed_day is None:
                if now - self._full_preview_at.get(number, -FULL_PREVIEW_EVERY_MS) < (
                    FULL_PREVIEW_EVERY_MS
                ):
                    continue
                self._full_preview_at[number] = now
            terms = part.preview(day)
            if terms is None:
                continue
            await self.store.publish_preview(number, day, terms, count)
            self._previewed[number] = (day, count)
        previews = await self.store.previews(range(self.partition_count))
        if len(previews) < self.partition_count or any(d != day for d, _, _ in previews.values()):
            return
        terms = merge(t for _, _, t in previews.values())
        count = sum(c for _, c, _ in previews.values())
        await self.store.publish_current(
            self.document(terms, day, final=False, watermark=watermark), day, count
        )
