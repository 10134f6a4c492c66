"""Replay's line handling and simulated traffic's pacing, without a broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from loyalty_pulse_dev.traffic import EventClock, wall_ms
from stream_app.cli import count_lines
from stream_app.contract import EventType
from stream_app.replay import ReplayReport, parse_line, replay_lines


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[EventType, bytes | None, bytes]] = []

    async def send(self, kind: EventType, key: bytes | None, value: bytes) -> None:
        self.sent.append((kind, key, value))


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"{nope", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"customer_id": "c"}', 'no "type" (purchase, enrollment, redemption)'),
        (b'{"type": "purchse"}', "unknown type 'purchse' (purchase, enrollment, redemption)"),
        (b'{"type": null}', "unknown type null (purchase, enrollment, redemption)"),
        (b'{"type": 7}', "unknown type 7 (purchase, enrollment, redemption)"),
    ],
)
def test_lines_that_cannot_be_sent_say_why(line: bytes, why: str) -> None:
    assert parse_line(line) == why


def test_type_picks_the_topic_and_customer_id_the_key() -> None:
    assert parse_line(b'{"type": "redemption", "customer_id": "c1"}') == (
        EventType.REDEMPTION,
        b"c1",
    )
    # A bad customer_id is the worker's to reject (dead-lettered), so it is still sent.
    assert parse_line(b'{"type": "purchase", "customer_id": 5}') == (EventType.PURCHASE, None)


async def test_replay_sends_lines_as_they_are_and_reports_the_rest() -> None:
    lines = [
        b'{"type": "purchase", "customer_id": "a", "amount": "bad"}\n',
        b"\n",
        b"garbage\n",
        b'{"type": "enrollment", "customer_id": "b"}\n',
    ]
    sender: Any = RecordingSender()
    report = await replay_lines(lines, sender)
    assert [(k, key) for k, key, _ in sender.sent] == [
        (EventType.PURCHASE, b"a"),
        (EventType.ENROLLMENT, b"b"),
    ]
    assert sender.sent[0][2] == lines[0].strip()
    assert report.skipped == [(3, "not JSON")]
    assert report.blank == 1
    assert report.describe_skipped() == "line 3: not JSON"
    assert report.summary() == "skipped 1 line: line 3: not JSON"


async def test_the_summary_names_each_skipped_line_then_counts_the_rest_by_reason() -> None:
    lines = [b'{"type": "purchse", "customer_id": "a"}'] * 25 + [b"nope", b"\n"]
    lines.insert(11, b'{"type": "purchase", "customer_id": "a"}')
    sender: Any = RecordingSender()
    report = await replay_lines(lines, sender)
    assert len(sender.sent) == 1  # the good line is still sent
    summary = report.summary()
    assert summary.startswith(
        "skipped 26 lines: line 1: unknown type 'purchse' (purchase, enrollment, redemption); "
    )
    assert "line 12:" not in summary and "line 13: unknown type 'purchse'" in summary
    assert summary.endswith("and 6 more (all lines by reason: unknown type 25, not JSON 1)")
    assert ReplayReport().summary() == ""


async def test_every_line_read_is_counted_for_the_progress_bar() -> None:
    seen: list[int] = []
    lines = [b'{"type": "enrollment", "customer_id": "b"}', b"", b"x"]
    await replay_lines(lines, RecordingSender(), on_line=lambda: seen.append(1))  # type: ignore[arg-type]
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("content", "lines"), [(b"", 0), (b"a\n", 1), (b"a\nb", 2), (b"a\n\nb\n", 3)]
)
def test_count_lines_counts_a_last_line_without_newline(
    tmp_path: Path, content: bytes, lines: int
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(content)
    assert count_lines(path, chunk=2) == lines


async def test_rate_limit_holds_replay_back() -> None:
    lines = [b'{"type": "enrollment", "customer_id": "b"}'] * 30
    started = time.monotonic()
    await replay_lines(lines, RecordingSender(), rate=200)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.1  # 30 events at 200/s take at least ~0.15 s


def test_event_clock_maps_event_days_to_wall_seconds() -> None:
    clock = EventClock(speed=2.0, live=False)  # 2 event days per wall second
    day = 86_400_000
    assert clock.delay_s(0) <= 0
    assert 0.9 < clock.delay_s(2 * day) <= 1.0


def test_event_clock_never_runs_ahead_of_the_wall_clock() -> None:
    clock = EventClock(speed=None, live=True)
    assert 9.0 < clock.delay_s(wall_ms() + 10_000) <= 10.0
    assert clock.delay_s(wall_ms() - 10_000) <= 0
