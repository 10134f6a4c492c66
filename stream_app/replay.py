"""Replay a JSON Lines file of events onto the input topics."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from stream_app.contract import EventType
from stream_app.producer import EventSender, Throttle

MAX_REPORTED = 20
TYPES = tuple(kind.value for kind in EventType)
"""The values of "type" replay sends, each to its input topic."""


@dataclass
class ReplayReport:
    skipped: list[tuple[int, str]] = field(default_factory=list)
    blank: int = 0

    def describe_skipped(self) -> str:
        """Each skipped line with its reason (the first ``MAX_REPORTED``), then
        how many lines each reason cost when there were more."""
        shown = "; ".join(f"line {n}: {why}" for n, why in self.skipped[:MAX_REPORTED])
        more = len(self.skipped) - MAX_REPORTED
        if more <= 0:
            return shown
        by_reason = Counter(_reason_kind(why) for _, why in self.skipped)
        totals = ", ".join(f"{why} {n:,}" for why, n in by_reason.most_common())
        return f"{shown}; and {more:,} more (all lines by reason: {totals})"

    def summary(self) -> str:
        """The line "skipped N lines: reasons…"; empty when every line was sent."""
        if not self.skipped:
            return ""
        n = len(self.skipped)
        return f"skipped {n:,} line{'s' if n != 1 else ''}: {self.describe_skipped()}"


def _reason_kind(why: str) -> str:
    """A reason without the value that caused it: unknown types count together."""
    return "unknown type" if why.startswith("unknown type") else why


def parse_line(line: bytes) -> tuple[EventType, bytes | None] | str:
    """The topic (from "type") and key (customer_id) of a line, or why it can't be sent."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:  # orjson refuses numbers like 1e400 that the worker rejects with a reason
            obj = json.loads(line)
        except (ValueError, RecursionError):
            return "not JSON"

    if not isinstance(obj, dict):
        return "not a JSON object"
    allowed = ", ".join(TYPES)
    if "type" not in obj:
        return f'no "type" ({allowed})'
    kind = obj["type"]
    if kind not in TYPES:
        shown = repr(kind) if isinstance(kind, str) else json.dumps(kind)[:40]
        return f"unknown type {shown[:60]} ({allowed})"
    customer = obj.get("customer_id")
    key = customer.encode("utf-8", "surrogatepass") if isinstance(customer, str) else None
    return EventType(kind), key


async def replay_lines(
    lines: Iterable[bytes],
    sender: EventSender,
    rate: float | None = None,
    on_line: Callable[[], None] | None = None,
) -> ReplayReport:
    """Send every parseable line as-is; a line that can't be parsed is reported.
    ``on_line`` is called once per line read (the CLI's progress bar)."""
    report = ReplayReport()
    throttle = Throttle(rate)
    for number, raw in enumerate(lines, start=1):
        if on_line is not None:
            on_line()
        line = raw.strip()
        if not line:
            report.blank += 1
            continue
        parsed = parse_line(line)
        if isinstance(parsed, str):
            report.skipped.append((number, parsed))
            continue
        await throttle.wait()
        await sender.send(parsed[0], parsed[1], line)
    return report
