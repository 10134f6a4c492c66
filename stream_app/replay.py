"""Replay a JSON Lines file of events onto the input topics."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from stream_app.contract import EventType
from stream_app.producer import EventSender, Throttle

MAX_REPORTED = 50


@dataclass
class ReplayReport:
    skipped: list[tuple[int, str]] = field(default_factory=list)
    blank: int = 0

    def describe_skipped(self) -> str:
        shown = ", ".join(f"{n} ({why})" for n, why in self.skipped[:MAX_REPORTED])
        more = len(self.skipped) - MAX_REPORTED
        return shown + (f" and {more} more" if more > 0 else "")


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
    kind = obj.get("type")
    if kind not in ("purchase", "enrollment", "redemption"):
        return 'no "type" of purchase, enrollment or redemption'
    customer = obj.get("customer_id")
    key = customer.encode("utf-8", "surrogatepass") if isinstance(customer, str) else None
    return EventType(kind), key


async def replay_lines(
    lines: Iterable[bytes],
    sender: EventSender,
    rate: float | None = None,
    on_line: object = None,
) -> ReplayReport:
    """Send every parseable line as-is; a line that can't be parsed is reported."""
    report = ReplayReport()
    throttle = Throttle(rate)
    for number, raw in enumerate(lines, start=1):
        if callable(on_line):
            on_line(len(raw))
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
