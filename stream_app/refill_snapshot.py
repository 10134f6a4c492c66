"""What a refill writes to the serving store, read from the results topic. Pure.

The results topic (stream_app/results_log.py) holds, per key, the last value a
worker appended: the partial totals of final days not merged yet, the merged
document of every kept final day, the final days declared and the churn-spike
detector's state. ``snapshot_of`` turns those values into what the serving
store must hold again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from stream_app.keys import RESULTS_SPIKE_KEY, ResultKey
from stream_app.kpi.days import from_date, to_date


@dataclass(frozen=True)
class Snapshot:
    finals: dict[int, bytes] = field(default_factory=dict)  # day -> merged document
    # day -> partition -> totals, for days after the newest merged one only
    partials: dict[int, dict[int, bytes]] = field(default_factory=dict)
    final_days: tuple[int, int] | None = None  # (highest final day, first final day)
    spike_state: dict[str, str] = field(default_factory=dict)
    recent_alerts: list[str] = field(default_factory=list)  # newest first

    @property
    def days(self) -> int:
        return len(self.finals)


def final_day_value(first: int) -> bytes:
    """The value of a ``final-day`` record: the first final day known when it was raised."""
    return orjson.dumps({"first": to_date(first).isoformat()})


def spike_value(state: Mapping[str, str], recent: list[str]) -> bytes:
    """The value of the ``spike`` record: the detector's state and its recent alerts."""
    return orjson.dumps({"state": dict(state), "recent": recent})


def snapshot_of(values: Mapping[bytes, bytes]) -> Snapshot:
    finals: dict[int, bytes] = {}
    partials: dict[int, dict[int, bytes]] = {}
    declared: dict[int, int] = {}  # final day -> first final day known then
    spike: dict[str, Any] = {}
    for raw_key, value in values.items():
        if raw_key == RESULTS_SPIKE_KEY:
            spike = orjson.loads(value)
            continue
        key = ResultKey.decode(raw_key)
        if key is None:
            continue  # a key a later version writes: not ours to restore
        if key.kind == "final":
            finals[key.day] = value
        elif key.kind == "partial" and key.partition is not None:
            partials.setdefault(key.day, {})[key.partition] = value
        elif key.kind == "final-day":
            declared[key.day] = from_date(date.fromisoformat(orjson.loads(value)["first"]))
    merged = max(finals, default=None)
    if merged is not None:
        partials = {d: p for d, p in partials.items() if d > merged}
    return Snapshot(
        finals=finals,
        partials=partials,
        final_days=_final_days(declared, finals, partials),
        spike_state={str(k): str(v) for k, v in spike.get("state", {}).items()},
        recent_alerts=[str(a) for a in spike.get("recent", [])],
    )


def _final_days(
    declared: Mapping[int, int], finals: Mapping[int, bytes], partials: Mapping[int, object]
) -> tuple[int, int] | None:
    """The highest final day ever declared, and the first one. A day with a
    document or partials was final too (declared records are trimmed with the
    history)."""
    days = [*declared, *finals, *partials]
    if not days:
        return None
    highest = max(days)
    first = declared[max(declared)] if declared else min(days)
    return highest, min(first, min(days))
