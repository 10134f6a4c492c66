"""Day close and serving over a real Redis: workers of the test harness
(stream_app/testing.py: the real ingest and day close) share an in-memory
broker; every final day in the history equals the brute-force
reference, whatever the interleaving, the number of workers, a crash or Redis
being away for a while."""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import pytest

from loyalty_pulse_dev.processes import free_port
from loyalty_pulse_dev.simulator import SimulationConfig, event_time_ms, generate, to_json_line
from stream_app import day_close
from stream_app.contract import Event, EventType, decode
from stream_app.kpi.days import to_date
from stream_app.kpi.partition import PartitionState
from stream_app.pipeline import partition_for
from stream_app.serving import ServingStore
from stream_app.settings import Settings
from stream_app.testing import MemoryBroker, MemoryWorker, memory_tables
from tables.state import StateTables
from tests import kpi_reference as ref
from tests.unit.test_kpi_engine import assert_same, reference_params

PARTITIONS = 4
START = datetime(2024, 1, 1, tzinfo=UTC)


def settings_for(redis_url: str) -> Settings:
    return Settings(
        partitions=PARTITIONS,
        app_id=f"test-close-{uuid.uuid4().hex[:8]}",
        redis_url=redis_url,
        windows_days=(7, 30),
        churn_period_days=7,
        inactivity_days=14,
        history_days=400,
    )


def simulated(days: int, customers: int = 1000) -> list[dict[str, object]]:
    return list(generate(SimulationConfig(customers=customers, start=START, days=days)))


def start_worker(
    settings: Settings, store: ServingStore, owned: set[int], clock: list[int], broker: MemoryBroker
) -> MemoryWorker:
    """The real ingest and day close over the in-memory broker, on a simulated clock."""
    return MemoryWorker(settings, broker, store, owned, clock=lambda: clock[0])


def publish(
    settings: Settings, broker: MemoryBroker, events: list[dict[str, object]], rng: random.Random
) -> None:
    """Each event on its owner's partition, or (one in five) on another one."""
    topics = {"purchase": settings.topic_purchases, "enrollment": settings.topic_enrollments}
    topics["redemption"] = settings.topic_redemptions
    for event in events:
        owner = partition_for(str(event["customer_id"]), PARTITIONS)
        partition = owner if rng.random() < 0.8 else rng.randrange(PARTITIONS)
        broker.send(topics[str(event["type"])], partition, to_json_line(event))


QUIET_MS = 60_000


async def run(
    workers: list[MemoryWorker],
    rng: random.Random,
    clock: list[int],
    crash_at: Collection[int] = (),
) -> None:
    """Interleave the workers at random; markers and ticks as the timers would run
    them. At each step of ``crash_at`` the last worker is killed mid-batch and
    restarts."""
    steps = 0
    while True:
        progressed = False
        for _ in range(200):
            worker = rng.choice(workers)
            progressed |= await worker.step(rng)
            steps += 1
            clock[0] += 1
            if steps in crash_at:
                await workers[-1].kill_mid_batch(rng)
        for worker in workers:
            await worker.send_markers()
            await worker.tick()
        if not progressed and not any(w.unread() for w in workers):
            clock[0] += workers[0].settings.idle_timeout_seconds * 1000 + 1  # all idle now
            for _ in range(2):  # the last markers, then the last closes
                # A quiet minute between rounds: the open-day preview is throttled
                # by its wall-clock cost, and a tick of the live worker runs every
                # second, so a slow preview only delays the last one.
                clock[0] += QUIET_MS
                for worker in workers:
                    await worker.send_markers()
                    await worker.tick()
            return


def applied_events(lines: list[dict[str, object]]) -> list[Event]:
    kinds = {"purchase": EventType.PURCHASE, "enrollment": EventType.ENROLLMENT}
    kinds["redemption"] = EventType.REDEMPTION
    out = []
    for line in lines:
        decoded = decode(kinds[str(line["type"])], to_json_line(line), 2**62, Settings().contract)
        assert isinstance(decoded, Event)
        out.append(decoded)
    return out


async def final_documents(store: ServingStore) -> dict[int, dict[str, Any]]:
    return {day: doc for day in await store.kept_days() if (doc := await store.final(day))}


def check_against_reference(
    settings: Settings, docs: dict[int, dict[str, Any]], events: list[Event], sample: int = 8
) -> None:
    params = reference_params(settings.kpi_params)
    days = sorted(docs)
    picked = days[:: max(1, len(days) // sample)] + days[-1:]
    for day in picked:
        doc = dict(docs[day])
        assert doc.pop("final") is True and doc.pop("watermark")
        assert_same(doc, ref.kpis_as_of(events, to_date(day), params), f"day {to_date(day)}")


def check_open_day(
    settings: Settings, current: dict[str, Any] | None, events: list[Event], day: int
) -> None:
    """The current document, once the stream is quiet: the open ``day`` as of every
    event applied."""
    assert current is not None and current.pop("final") is False and current.pop("watermark")
    assert current["as_of"] == to_date(day).isoformat()
    want = ref.kpis_as_of(events, to_date(day), reference_params(settings.kpi_params))
    assert_same(current, want, f"open day {to_date(day)}")


def event_days(lines: list[dict[str, object]]) -> tuple[int, int]:
    days = [event_time_ms(e) // 86_400_000 for e in lines]
    return min(days), max(days)


def sleepy_clock() -> list[int]:
    return [1_900_000_000_000]


async def test_two_workers_serve_the_reference_kpis_of_every_final_day(
    store: ServingStore, settings: Settings
) -> None:
    lines = simulated(days=60)
    rng, clock, broker = random.Random(7), sleepy_clock(), MemoryBroker()
    publish(settings, broker, lines, rng)
    workers = [
        start_worker(settings, store, {0, 1}, clock, broker),
        start_worker(settings, store, {2, 3}, clock, broker),
    ]
    await run(workers, rng, clock)

    docs = await final_documents(store)
    first_event_day, last_event_day = event_days(lines)
    assert sorted(docs) == list(range(first_event_day, last_event_day - 1))  # lateness 1 day
    assert sorted(docs) == list(range(min(docs), max(docs) + 1))  # no gaps
    assert sum(w.pipeline.rejected().get("late", 0) for w in workers) == 0
    check_against_reference(settings, docs, applied_events(lines))
    check_open_day(settings, await store.current(), applied_events(lines), last_event_day)


async def test_a_tick_out_of_time_closes_one_day_and_the_next_goes_on(
    store: ServingStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no time budget a tick closes one day of one partition and says more
    is ready; the ticks that follow at once close the rest, and every final day
    still matches the reference."""
    monkeypatch.setattr(day_close, "CLOSE_BUDGET_S", 0.0)
    lines = simulated(days=30, customers=300)
    rng, clock, broker = random.Random(4), sleepy_clock(), MemoryBroker()
    publish(settings, broker, lines, rng)
    worker = start_worker(settings, store, set(range(PARTITIONS)), clock, broker)
    closed = [0]  # partition-days closed so far
    real_close = PartitionState.close_through

    def close_through(part: PartitionState, *args: Any) -> list[tuple[int, Any]]:
        days = real_close(part, *args)
        closed[0] += len(days)
        return days

    monkeypatch.setattr(PartitionState, "close_through", close_through)
    steps: list[tuple[int, bool]] = []  # per tick: partition-days closed, more
    real_tick = worker.closer.tick

    async def tick() -> bool:
        before = closed[0]
        more = await real_tick()
        steps.append((closed[0] - before, more))
        return more

    worker.closer.tick = tick  # type: ignore[method-assign]
    await run([worker], rng, clock)

    assert (1, True) in steps  # stopped on the budget after one day
    assert all(days <= 1 for days, more in steps if more)
    docs = await final_documents(store)
    first_event_day, last_event_day = event_days(lines)
    assert sorted(docs) == list(range(first_event_day, last_event_day - 1))
    check_against_reference(settings, docs, applied_events(lines))
    check_open_day(settings, await store.current(), applied_events(lines), last_event_day)


def stored_tables() -> StateTables:
    return memory_tables(PARTITIONS, stored=True)


async def test_customers_read_from_the_store_through_a_small_cache_survive_kills(
    store: ServingStore, settings: Settings
) -> None:
    """Customers restored as a RocksDB store holds them, read when used and
    evicted past a cache of four per partition, with the worker of partitions 2
    and 3 killed five times while a batch's writes reach the broker: every final
    day and the open day as the reference."""
    settings = settings.model_copy(update={"state_cache_customers": 4 * PARTITIONS})
    lines = simulated(days=40, customers=400)
    rng, clock, broker = random.Random(21), sleepy_clock(), MemoryBroker()
    publish(settings, broker, lines, random.Random(6))
    workers = [
        MemoryWorker(settings, broker, store, owned, lambda: clock[0], stored_tables())
        for owned in ({0, 1}, {2, 3})
    ]
    await run(workers, rng, clock, crash_at={len(lines) * k // 6 for k in range(1, 6)})

    assert workers[-1].kills == 5
    assert workers[-1].pipeline.partitions[2].customers.decodes > 0  # read from the store
    docs = await final_documents(store)
    first_event_day, last_event_day = event_days(lines)
    assert sorted(docs) == list(range(first_event_day, last_event_day - 1))
    assert sum(w.pipeline.rejected().get("late", 0) for w in workers) == 0
    check_against_reference(settings, docs, applied_events(lines))
    check_open_day(settings, await store.current(), applied_events(lines), last_event_day)


async def test_one_worker_a_crash_and_an_absent_redis_give_the_same_history(
    store: ServingStore, settings: Settings
) -> None:
    lines = simulated(days=60)
    rng, clock = random.Random(11), sleepy_clock()

    two = MemoryBroker()
    publish(settings, two, lines, random.Random(3))
    pair = [
        start_worker(settings, store, {0, 1}, clock, two),
        start_worker(settings, store, {2, 3}, clock, two),
    ]
    await run(pair, rng, clock, crash_at={len(lines) // 2})
    with_crash = await final_documents(store)
    _, last_event_day = event_days(lines)
    check_open_day(settings, await store.current(), applied_events(lines), last_event_day)
    await store.r.delete(*[k async for k in store.r.scan_iter(match=store.prefix + "*")])

    dead = ServingStore.connect(f"redis://127.0.0.1:{free_port()}/0", "x", 400)
    one = MemoryBroker()
    publish(settings, one, lines, random.Random(3))
    single = start_worker(settings, store, set(range(PARTITIONS)), clock, one)
    thirds = len(lines) // 600
    for reachable in (store, dead):  # Redis there, then away for a third of the stream
        single.closer.store = reachable
        for _ in range(thirds):
            await run_some(single, rng, clock)
    assert single.closer.status.redis_ok is False and single.closer.status.redis_errors > 0
    single.closer.store = store
    await run([single], rng, clock)
    alone = await final_documents(store)
    await dead.close()
    check_open_day(settings, await store.current(), applied_events(lines), last_event_day)

    # The history starts at the first event's day, whenever the first close came.
    first_day, _ = event_days(lines)
    for docs in (with_crash, alone):
        assert sorted(docs) == list(range(first_day, max(docs) + 1))
    assert alone.keys() == with_crash.keys()
    for day in alone:
        assert {**alone[day], "watermark": None} == {**with_crash[day], "watermark": None}, day
    check_against_reference(settings, alone, applied_events(lines), sample=4)


async def run_some(worker: MemoryWorker, rng: random.Random, clock: list[int]) -> None:
    for _ in range(200):
        await worker.step(rng)
        clock[0] += 1
    await worker.send_markers()
    await worker.tick()


class PartialsFail(ServingStore):
    """Redis drops the connection right when the partials are being published."""

    async def publish_partial(self, day: int, partition: int, terms: Any) -> bool:
        raise ConnectionError("connection reset by peer")


async def test_days_closed_before_a_crash_but_never_published_are_published_after_it(
    store: ServingStore, settings: Settings
) -> None:
    lines = simulated(days=60)
    rng, clock, broker = random.Random(5), sleepy_clock(), MemoryBroker()
    publish(settings, broker, lines, random.Random(4))
    worker = start_worker(settings, store, set(range(PARTITIONS)), clock, broker)
    while not await store.kept_days():
        await run_some(worker, rng, clock)
    worker.closer.store = PartialsFail(store.r, settings.app_id, settings.history_days)
    for _ in range(3):
        await run_some(worker, rng, clock)
    unpublished = {d for p in worker.pipeline.partitions.values() for d in p.unpublished}
    assert unpublished  # closed, written to the changelog, not in Redis
    worker.crash_and_restart()
    worker.closer.store = store
    await run([worker], rng, clock)

    docs = await final_documents(store)
    assert unpublished <= docs.keys()
    assert sorted(docs) == list(range(min(docs), max(docs) + 1))
    check_against_reference(settings, docs, applied_events(lines), sample=4)


class RebalanceMidTick(ServingStore):
    """The partitions change hands while the tick awaits Redis."""

    worker: MemoryWorker

    async def publish_partial(self, day: int, partition: int, terms: Any) -> bool:
        self.worker.pipeline.assign({0})
        return await super().publish_partial(day, partition, terms)


async def test_a_rebalance_in_the_middle_of_a_tick_does_not_break_it(
    store: ServingStore, settings: Settings
) -> None:
    lines = simulated(days=20, customers=300)
    rng, clock, broker = random.Random(2), sleepy_clock(), MemoryBroker()
    publish(settings, broker, lines, random.Random(1))
    worker = start_worker(settings, store, set(range(PARTITIONS)), clock, broker)
    while not worker.closer.status.watermark_ms:
        await run_some(worker, rng, clock)
    flaky = RebalanceMidTick(store.r, settings.app_id, settings.history_days)
    flaky.worker = worker
    worker.closer.store = flaky
    final = worker.closer.status.final_day
    assert final is not None
    await store.raise_final_day(final + 3)  # every partition closes and publishes days
    await worker.closer.tick()
    assert worker.closer.status.errors == 0 and sorted(worker.pipeline.partitions) == [0]


async def test_a_worker_busy_past_the_idle_timeout_keeps_its_backlog_on_time(
    store: ServingStore, settings: Settings
) -> None:
    """A partition with records not read yet is not idle, however long ago the
    worker last read from it: its days stay open until they are read. The small
    topics of partition 0 are read to their ends, its purchases only begun, then
    the worker is away for longer than the idle timeout (a long close, a pause)."""
    lines = simulated(days=30, customers=300)
    mine = [e for e in lines if partition_for(str(e["customer_id"]), PARTITIONS) == 0]
    clock, broker = sleepy_clock(), MemoryBroker()
    for event in mine:  # each on its owner's partition: nothing forwarded
        broker.send(settings.topics[EventType(str(event["type"]))], 0, to_json_line(event))
    worker = start_worker(settings, store, set(range(PARTITIONS)), clock, broker)
    purchases = (settings.topic_purchases, 0)
    for tp in [tp for tp in broker.logs if tp != purchases]:
        await worker.ingest.handle([broker.take(tp) for _ in range(len(broker.logs[tp]))])
    await worker.ingest.handle([broker.take(purchases) for _ in range(20)])
    await worker.tick()
    clock[0] += settings.idle_timeout_seconds * 1000 + 1  # busy, the backlog waiting
    for _ in range(2):  # the final day raised (were it taken for idle), then closed
        await worker.tick()
    await run([worker], random.Random(3), clock)

    assert worker.pipeline.rejected().get("late", 0) == 0
    docs = await final_documents(store)
    first_event_day, last_event_day = event_days(mine)
    assert sorted(docs) == list(range(first_event_day, last_event_day - 1))
    check_against_reference(settings, docs, applied_events(mine))
