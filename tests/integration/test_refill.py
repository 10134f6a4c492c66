"""A serving store (Redis) that loses its data is refilled from the results
topic: workers of the test harness (stream_app/testing.py) over a real Redis
whose keys are wiped, once mid-stream and once at rest."""

from __future__ import annotations

import random
from typing import Any

from stream_app.keys import ResultKey
from stream_app.results_log import MemoryResultsLog, last_values
from stream_app.serving import ServingStore
from stream_app.settings import Settings
from stream_app.testing import MemoryBroker, MemoryWorker
from tests.integration.test_day_close import (
    applied_events,
    check_against_reference,
    check_open_day,
    event_days,
    final_documents,
    publish,
    run,
    run_some,
    simulated,
    sleepy_clock,
)


async def lose_everything(store: ServingStore) -> None:
    """Redis restarted without persistence: every key of the app is gone."""
    keys = [k async for k in store.r.scan_iter(match=store.prefix + "*")]
    assert keys
    await store.r.delete(*keys)


async def served(store: ServingStore) -> dict[str, Any]:
    return {
        "history": await final_documents(store),
        "current": await store.current(),
        "final_days": await store.final_days(),
        "merged_through": await store.merged_through(),
        "spike": await store.r.hgetall(store.key("spike")),
        "alerts": await store.r.lrange(store.key("alerts"), 0, -1),
    }


async def test_redis_lost_mid_stream_and_at_rest_serves_the_same_kpis_again(
    store: ServingStore,
    settings: Settings,
) -> None:
    lines = simulated(days=60)
    rng, clock, broker, results = (
        random.Random(5),
        sleepy_clock(),
        MemoryBroker(),
        MemoryResultsLog(),
    )
    publish(settings, broker, lines, random.Random(2))
    workers = [
        MemoryWorker(settings, broker, store, owned, clock=lambda: clock[0], results=results)
        for owned in ({0, 1}, {2, 3})
    ]
    while (await store.merged_through() or 0) < event_days(lines)[0] + 20:
        for worker in workers:
            await run_some(worker, rng, clock)
    assert await store.r.keys(store.prefix + "partials:*"), "lost with partials not merged yet"
    before = await served(store)
    await lose_everything(store)
    await run(workers, rng, clock)

    docs = await final_documents(store)
    first_event_day, last_event_day = event_days(lines)
    assert sorted(docs) == list(range(first_event_day, last_event_day - 1))
    for day, doc in before["history"].items():  # merged before the loss: kept as it was
        assert docs[day] == doc, day
    check_against_reference(settings, docs, applied_events(lines))
    check_open_day(settings, await store.current(), applied_events(lines), last_event_day)
    assert sum(w.pipeline.rejected().get("late", 0) for w in workers) == 0

    settled = await served(store)
    await lose_everything(store)
    for worker in workers:  # no restart: the next ticks refill and republish
        await worker.tick()
    for worker in workers:
        await worker.tick()
    assert await served(store) == settled

    # The topic keeps what Redis serves, and no partial of a merged day.
    kept = {ResultKey.decode(k) for k in last_values(results.records) if k != b"spike"}
    assert {k.day for k in kept if k and k.kind == "final"} == set(docs)
    assert not [k for k in kept if k and k.kind == "partial"]


async def test_a_new_store_of_a_deployment_with_no_results_starts_empty_and_counts(
    store: ServingStore,
    settings: Settings,
) -> None:
    lines = simulated(days=12, customers=200)
    rng, clock, broker = random.Random(3), sleepy_clock(), MemoryBroker()
    publish(settings, broker, lines, random.Random(4))
    worker = MemoryWorker(settings, broker, store, {0, 1, 2, 3}, clock=lambda: clock[0])
    await run([worker], rng, clock)
    assert worker.closer.refiller.last is not None and worker.closer.refiller.last.days == 0
    assert await store.epoch() == worker.closer.refiller.last.epoch
    assert len(await final_documents(store)) == event_days(lines)[1] - 1 - event_days(lines)[0]
