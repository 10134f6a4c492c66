"""The day-close timer: every worker closes days and publishes KPIs (stream_app/day_close.py)."""

from __future__ import annotations

from collections.abc import Callable

import faust

from stream_app.day_close import CLOSE_INTERVAL_SECONDS, DayCloser


def register_day_close(app: faust.App, closer: DayCloser, ready: Callable[[], bool]) -> None:
    @app.timer(CLOSE_INTERVAL_SECONDS)  # type: ignore[untyped-decorator]
    async def close_days() -> None:
        if ready():  # state recovered for the partitions this worker owns
            await closer.tick()
