"""Pace simulated traffic in wall time and send it to the broker or a file."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import IO

from loyalty_pulse_dev.simulator import SimulationConfig, event_time_ms, generate, to_json_line
from stream_app.contract import EventType
from stream_app.kpi.days import DAY_MS, now_ms
from stream_app.producer import EventSender, Throttle

wall_ms = now_ms  # the name the CLI and tests use for processing time


class EventClock:
    """Maps event time to wall time: ``speed`` event days per wall second.

    Traffic never runs ahead of the wall clock: once event time catches up
    with now (a history replayed at speed), it continues live, in real time.
    """

    def __init__(self, speed: float | None, live: bool) -> None:
        self.speed_ms = speed * DAY_MS if speed else None
        self.live = live
        self.origin: tuple[float, int] | None = None

    def delay_s(self, event_ms: int) -> float:
        now = time.monotonic()
        if self.origin is None:
            self.origin = (now, event_ms)
        delay = 0.0
        if self.speed_ms:
            start_wall, start_event = self.origin
            delay = start_wall + (event_ms - start_event) / self.speed_ms - now
        if self.live:
            delay = max(delay, (event_ms - wall_ms()) / 1000)
        return delay


async def simulate_to_broker(
    config: SimulationConfig,
    sender: EventSender,
    *,
    speed: float | None,
    rate: float | None,
    stop: asyncio.Event | None = None,
    on_event: Callable[[int], None] | None = None,
) -> int:
    """Send generated events until ``config.days`` pass or ``stop`` is set."""
    clock, throttle, sent = EventClock(speed, live=True), Throttle(rate), 0
    for event in generate(config):
        if stop is not None and stop.is_set():
            break
        occurred = event_time_ms(event)
        delay = clock.delay_s(occurred)
        if delay > 0.005 and await _stopped_within(stop, delay):
            break
        await throttle.wait()
        key = str(event["customer_id"]).encode()
        await sender.send(EventType(str(event["type"])), key, to_json_line(event).rstrip())
        sent += 1
        if on_event is not None:
            on_event(occurred)
    return sent


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    """Sleep, waking early when ``stop`` is set; True if it was."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT, SIGTERM or SIGHUP (Ctrl-C, or the terminal closing,
    ends the traffic loop cleanly)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    return stop


def simulate_to_file(config: SimulationConfig, out: IO[bytes], until_ms: int) -> int:
    """Write generated events as JSON Lines, stopping before ``until_ms``."""
    written = 0
    for event in generate(config):
        if event_time_ms(event) > until_ms:
            break
        out.write(to_json_line(event))
        written += 1
    out.flush()
    return written
