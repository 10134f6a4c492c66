"""Which business days are final (spec §2), from the stream watermark.

Day D is final once the stream watermark has passed the end of D by the
allowed lateness: watermark - lateness >= the first instant of D + 1. An event
whose business day is final is late. Final days only ever advance: the rule
is applied to a watermark that may drop after a restart, so the caller keeps
the highest final day it has acted on.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from stream_app.kpi.days import business_day


def final_day(watermark_ms: int | None, lateness_ms: int, zone: ZoneInfo | None) -> int | None:
    """The latest final day for this watermark, or None when none is."""
    if watermark_ms is None:
        return None
    # The day containing (watermark - lateness) has started, so the one before has ended.
    return business_day(watermark_ms - lateness_ms, zone) - 1


def is_late(day: int, last_final: int | None) -> bool:
    return last_final is not None and day <= last_final
