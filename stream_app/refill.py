"""Refill an empty serving store from the results topic, automatically.

Every day-close tick asks ``Refiller.epoch`` first. A store with an epoch holds
what the results topic holds. A store without one has lost its data (a Redis
restarted without persistence, a failover to an empty replica) or is new: one
worker takes a short lock, reads the results topic to its end, writes what it
read into the store without replacing anything newer, and sets a new epoch.
Ticks of every worker wait meanwhile (they would otherwise raise the final day
of an empty store from scratch). A worker that sees the epoch change republishes
its partitions' open-day totals, so the current document comes back too; the
partitions' event time is republished by every tick anyway.

Nothing is reprocessed: final days come back as they were merged, partial
totals of days not merged yet are merged by the next tick.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

from stream_app.refill_snapshot import snapshot_of
from stream_app.results_log import ResultsLog
from stream_app.serving import ServingStore

# A refill holding the lock longer (a dead worker) lets another worker try.
# Refills are idempotent, so two overlapping ones write the same.
REFILL_LOCK_SECONDS = 120

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefillReport:
    epoch: str
    days: int  # final days written back
    pending_days: int  # days with partials not merged yet
    seconds: float


class Refiller:
    def __init__(self, results: ResultsLog) -> None:
        self.results = results
        self.last: RefillReport | None = None  # the last refill this worker did

    async def epoch(self, store: ServingStore) -> str | None:
        """The serving store's epoch, refilling the store first when it has none;
        None while another worker refills it."""
        epoch = await store.epoch()
        if epoch is not None:
            return epoch
        token = secrets.token_hex(8)
        if not await store.lock_refill(token, REFILL_LOCK_SECONDS):
            return None
        try:
            started = time.perf_counter()
            snapshot = snapshot_of(await self.results.read())
            await store.refill(snapshot, token)
        finally:
            await store.unlock_refill(token)
        self.last = RefillReport(
            token, snapshot.days, len(snapshot.partials), time.perf_counter() - started
        )
        if snapshot.days or snapshot.partials:
            log.warning(
                "serving store (Redis) was empty: refilled %d final days and the partials "
                "of %d more from the results topic in %.2f s",
                snapshot.days,
                len(snapshot.partials),
                self.last.seconds,
            )
        return token
