"""Per-source event-time watermarks and the low watermark over live sources (spec §2).

A source is one input partition. Its watermark is the latest occurred_at read
from it. The low watermark is the minimum over the sources that are not idle
(no record for longer than the idle timeout, in processing time); a live
source that has not delivered anything yet holds it back (unknown: None).
"""

from __future__ import annotations

from collections.abc import Iterable


class SourceWatermarks:
    def __init__(self, sources: Iterable[str], idle_ms: int, now_ms: int) -> None:
        self.idle_ms = idle_ms
        self.marks: dict[str, int | None] = dict.fromkeys(sources)
        self.last_record_at: dict[str, int] = dict.fromkeys(self.marks, now_ms)

    def observe(self, source: str, occurred_ms: int, now_ms: int) -> None:
        mark = self.marks.get(source)
        if mark is None or occurred_ms > mark:
            self.marks[source] = occurred_ms
        self.last_record_at[source] = now_ms

    def low(self, now_ms: int) -> int | None:
        """Minimum over live sources; None while a live source has no data yet."""
        live = [s for s, at in self.last_record_at.items() if now_ms - at <= self.idle_ms]
        values = [self.marks[s] for s in live]
        if any(v is None for v in values):
            return None
        if not values:  # every source idle: the slowest one that ever had data
            values = [m for m in self.marks.values() if m is not None]
        return min((v for v in values if v is not None), default=None)

    def high(self) -> int | None:
        return max((m for m in self.marks.values() if m is not None), default=None)
