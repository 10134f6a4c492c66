"""The brute-force reference of many days, computed in background processes.

One day of the reference (tests/kpi_reference.py) over a stream of 50,000
events takes up to a second, so the ~400 final days a run keeps take minutes
of CPU. The chaos test starts these processes before its workers and collects
the documents at the end: at the lowest CPU priority they use what the workers
leave idle while faults stall them, without slowing them down.
"""

from __future__ import annotations

import bisect
import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date
from typing import Any

from stream_app.contract import Event, EventType, decode
from stream_app.settings import Settings
from tests import kpi_reference as ref

PR_SET_PDEATHSIG = 1
_events: list[Event] = []
_days: list[int] = []
_params: ref.KpiParams | None = None


def decode_events(lines: list[tuple[str, bytes]]) -> list[Event]:
    """(type, JSON line) of accepted events as Events."""
    contract = Settings().contract
    out = []
    for kind, line in lines:
        event = decode(EventType(kind), line, 2**62, contract)
        assert isinstance(event, Event), event
        out.append(event)
    return out


def _start(lines: list[tuple[str, bytes]], params: ref.KpiParams) -> None:
    global _events, _days, _params
    os.nice(19)
    if sys.platform.startswith("linux"):  # end with the test, however it ends
        ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    dated = sorted(
        (
            (ref.business_day(e.occurred_ms, params.reporting_tz).toordinal(), e)
            for e in decode_events(lines)
        ),
        key=lambda pair: pair[0],
    )
    _days = [d for d, _ in dated]
    _events = [e for _, e in dated]
    _params = params


def _document(ordinal: int) -> dict[str, Any]:
    # The events of days up to D only: the reference reads no later one, and
    # it is twice as fast on the early days without them.
    assert _params is not None
    upto = _events[: bisect.bisect_right(_days, ordinal)]
    return ref.kpis_as_of(upto, date.fromordinal(ordinal), _params)


class ReferencePool:
    def __init__(self, lines: list[tuple[str, bytes]], params: ref.KpiParams, workers: int = 2):
        self.executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),  # the test runs threads
            initializer=_start,
            initargs=(lines, params),
        )
        self.futures: dict[date, Future[dict[str, Any]]] = {}

    def submit(self, days: list[date]) -> None:
        for day in days:
            if day not in self.futures:
                self.futures[day] = self.executor.submit(_document, day.toordinal())

    def document(self, day: date, timeout_s: float = 600) -> dict[str, Any]:
        self.submit([day])
        return self.futures[day].result(timeout_s)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
