"""Issue 3 end to end: real broker, real Redis, real worker processes.

A generated stream of more than 50,000 events over more than 400 days is
replayed to two workers, one of them SIGKILLed mid-replay and restarted; then
to one worker. ``/kpis?as_of`` of final days equals the brute-force reference
for every field of contract v2 (cohorts, tiers, stores, lift, ROI intervals),
and both runs serve the same numbers. Once the stream is quiet, the open day
(``/kpis``) equals the reference too, on every worker of both runs (issue 10:
it used to keep customers in the 365-day window after they had left it).
Then Redis loses the second run's data, and the running worker serves the same
400 final days and open day again, refilled from the results topic (issue 13).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import redis

from loyalty_pulse_dev.simulator import SimulationConfig, event_time_ms, generate, to_json_line
from stream_app.contract import Event, EventType, decode
from stream_app.kpi.days import DAY_MS
from stream_app.settings import Settings
from tests import kpi_reference as ref
from tests.e2e.conftest import Cluster, WorkerHandle
from tests.e2e.kafka_io import produce
from tests.e2e.test_pipeline import to_records
from tests.unit.test_kpi_engine import assert_same, reference_params

DAYS = 420
START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
    days=DAYS + 5
)


def stream() -> list[dict[str, Any]]:
    config = SimulationConfig(customers=2400, seed=31, start=START, days=DAYS)
    events = list(generate(config))
    assert len(events) > 50_000
    return events


def as_events(lines: list[dict[str, Any]]) -> list[Event]:
    kinds = {t.value: t for t in EventType}
    contract = Settings().contract
    out = []
    for line in lines:
        event = decode(kinds[line["type"]], to_json_line(line), 2**62, contract)
        assert isinstance(event, Event)
        out.append(event)
    return out


def replay(cluster: Cluster, lines: list[dict[str, Any]]) -> None:
    raw = [to_json_line(e).rstrip() for e in lines]
    asyncio.run(produce(cluster.settings, to_records(cluster, raw, misroute_share=0.2)))


def events_applied(workers: list[WorkerHandle]) -> int:
    total = 0
    for w in workers:
        try:
            total += sum(w.get("/totals")["events"].values())
        except OSError:
            pass
    return total


def wait_for_final_day(
    cluster: Cluster, worker: WorkerHandle, day: date, timeout_s: float = 300
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for w in cluster.workers:
            if w.proc.poll() is not None and w is worker:
                pytest.fail(f"worker exited:\n{w.log_tail()}")
        try:
            history = worker.get(f"/kpis/history?from={day}&to={day}&fields=as_of")
            if history["days"] == [day.isoformat()]:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{day} never became final\n{worker.log_tail()}")


def history(worker: WorkerHandle) -> dict[str, dict[str, Any]]:
    first, last = START.date(), START.date() + timedelta(days=DAYS + 10)
    body = worker.get(f"/kpis/history?from={first}&to={last}")
    return {doc["as_of"]: doc for doc in body["documents"]}


def merged_history(worker: WorkerHandle, timeout_s: float = 120) -> dict[str, dict[str, Any]]:
    """The history once it reaches the stream's final day: the final day can move on
    past the day a test waited for, and the kept window with it, while the days up
    to it are still merging (a busy machine shows it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        docs = history(worker)
        final = worker.get("/pipeline")["final_day"]
        if docs and max(docs) == final:
            return docs
        assert time.monotonic() < deadline, f"final day {final}, merged {max(docs, default=None)}"
        time.sleep(0.5)


def without_watermark(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "watermark"}


def open_day_settles_on_the_reference(
    worker: WorkerHandle,
    lines: list[dict[str, Any]],
    events: list[Event],
    params: ref.KpiParams,
    timeout_s: float = 150,
) -> None:
    """Once every partition is idle the stream watermark is the newest event, so
    ``/kpis`` shows that event's day; its numbers are the reference as of that
    day over every event (none was late)."""
    newest = max(event_time_ms(line) for line in lines)
    day = datetime.fromtimestamp(newest / 1000, UTC).date()
    want = ref.kpis_as_of(events, day, params)
    deadline, doc = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        doc = worker.get("/kpis")
        if doc["as_of"] == day.isoformat() and same(open_day_body(doc), want):
            return
        time.sleep(1)
    assert doc is not None and doc["as_of"] == day.isoformat(), (doc or {}).get("as_of")
    assert_same(open_day_body(doc), want, f"open day {day}")


def open_day_body(doc: dict[str, Any]) -> dict[str, Any]:
    assert doc["final"] is False and doc["watermark"]
    return {k: v for k, v in doc.items() if k not in ("final", "watermark")}


def same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    try:
        assert_same(got, want)
    except AssertionError:
        return False
    return True


def run_two_workers_with_a_crash(cluster: Cluster, lines: list[dict[str, Any]], last: date) -> None:
    replay(cluster, lines)
    first = cluster.start_worker("a")
    second = cluster.start_worker("b")
    deadline = time.monotonic() + 180
    while events_applied([first, second]) < len(lines) // 3:
        assert time.monotonic() < deadline, second.log_tail()
        time.sleep(0.3)
    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.wait()
    cluster.start_worker("b")  # same data dir: what RocksDB kept, then the changelog
    wait_for_final_day(cluster, first, last)


@pytest.mark.timeout(900)
def test_two_workers_with_a_sigkill_and_one_worker_serve_the_reference_kpis(
    cluster: Cluster, broker_address: str
) -> None:
    lines = stream()
    last = datetime.fromtimestamp(event_time_ms(lines[-1]) / 1000, UTC).date() - timedelta(days=5)
    assert (event_time_ms(lines[-1]) - event_time_ms(lines[0])) // DAY_MS >= 400

    run_two_workers_with_a_crash(cluster, lines, last)
    two = merged_history(cluster.workers[0])
    # any worker answers with the global numbers (days may still close meanwhile)
    other = history(cluster.workers[-1])
    assert len(two.keys() & other.keys()) >= 395
    assert all(two[d] == other[d] for d in two.keys() & other.keys())
    events = as_events(lines)
    params = reference_params(cluster.settings.kpi_params)
    for w in cluster.workers:
        if w.proc.poll() is None:
            assert w.get("/totals")["rejected"].get("late", 0) == 0
            open_day_settles_on_the_reference(w, lines, events, params)

    single = cluster.sibling("single")
    replay(single, lines)
    alone = single.start_worker("alone")
    wait_for_final_day(single, alone, last)
    one = merged_history(alone)
    open_day_settles_on_the_reference(alone, lines, events, params)

    # the most recent 400 final days (LOYALTY_PULSE_HISTORY_DAYS) in both runs; the
    # last day or two depend on when each run's partitions went idle
    assert len(two) == len(one) == 400
    common = sorted(two.keys() & one.keys())
    assert len(common) >= 395
    for day in common:
        assert without_watermark(two[day]) == without_watermark(one[day]), day

    # days that closed since ``two`` was read pushed its oldest out of the 400 kept
    held = sorted(history(cluster.workers[0]).keys() & set(common))
    assert len(held) >= 390
    checked = held[:: len(held) // 10][:10] + [last.isoformat()]
    for day in checked:
        doc = cluster.workers[0].get(f"/kpis?as_of={day}")
        assert doc.pop("final") is True and doc.pop("watermark")
        assert_same(doc, ref.kpis_as_of(events, date.fromisoformat(day), params), day)
    # what the last day compared holds (contract v2): a cohort in every month, as
    # first purchases spread over the stream; tiers, stores and a lift interval
    year = doc["windows"]["365d"]
    assert all(row["size"] > 0 for row in doc["cohorts"]["rows"]), doc["cohorts"]
    assert year["tiers"] and len(year["stores"]) > 10 and year["second_purchases"] > 0
    assert year["lift"]["baseline"] == "control" and year["lift"]["ci_low"] is not None
    assert doc["churn"]["history_complete"] and doc["program"]["roi_ci"][0] is not None

    current = alone.get("/kpis")
    assert current["final"] is False and current["as_of"] > last.isoformat()
    status, missing = alone.get_status("/kpis?as_of=1999-01-01")
    assert status == 404 and "not final" in missing["error"]
    status, wrong = alone.get_status("/kpis?as_of=yesterday")
    assert status == 400 and "YYYY-MM-DD" in wrong["error"]

    refilled_after_redis_loss(single, alone)


def refilled_after_redis_loss(cluster: Cluster, worker: WorkerHandle) -> None:
    """Every Redis key of the deployment goes (a Redis restarted without
    persistence); the worker, not restarted, serves the same again: every final
    day it served, and the open day (or a later one, if the stream moved on)."""
    kept, current = history(worker), worker.get("/kpis")
    client = redis.Redis.from_url(cluster.settings.redis_url)
    keys = list(client.scan_iter(match=f"lp:{cluster.settings.app_id}:*"))
    assert len(keys) > 3
    client.delete(*keys)
    client.close()
    lost = time.monotonic()

    def not_served_again() -> str | None:
        """None once served again, else what is not (yet)."""
        try:  # the day list first: 400 whole documents are a heavy request
            listed = worker.get(f"/kpis/history?from={min(kept)}&to={max(kept)}&fields=as_of")
            if not listed["days"] or listed["days"][-1] != max(kept):
                return f"final days listed up to {listed['days'][-1:]}, not {max(kept)}"
            days, now = history(worker), worker.get("/kpis")
        except OSError as exc:  # 404 / 503 while empty
            return f"not answering: {exc}"
        # days may still close meanwhile, and the oldest kept ones then leave
        for d, doc in kept.items():
            if d >= min(days) and days.get(d) != doc:
                return f"day {d} served as {days.get(d)}, was {doc}"
        moved_on = now["as_of"] > current["as_of"] or (
            now["as_of"] == current["as_of"]
            and without_watermark(now) == without_watermark(current)
            and now["watermark"] >= current["watermark"]  # a source may go idle meanwhile
        )
        if not moved_on:
            return f"the open day served as {now}, was {current}"
        return None

    deadline = time.monotonic() + 120
    while (missing := not_served_again()) is not None:
        assert time.monotonic() < deadline, (
            f"not served again after 120 s: {missing}\n{worker.log_tail()}"
        )
        time.sleep(0.2)
    took = time.monotonic() - lost
    print(f"{len(kept)} final days and the open day served again {took:.1f} s after the loss")
