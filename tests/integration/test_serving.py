"""The Redis serving store against a real redis-server of the test's own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from loyalty_pulse_dev.processes import free_port, stop
from loyalty_pulse_dev.redis_server import start_redis
from stream_app.kpi.terms import KpiTerms, from_flat
from stream_app.kpi.watermarks import PartitionTime
from stream_app.serving import ServingStore


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[ServingStore]:
    s = ServingStore.connect(redis_url, f"test-{uuid.uuid4().hex[:8]}", history_days=3)
    yield s
    keys = [k async for k in s.r.scan_iter(match=s.prefix + "*")]
    if keys:
        await s.r.delete(*keys)
    await s.close()


async def test_current_never_goes_back_to_an_older_version(store: ServingStore) -> None:
    assert await store.current() is None
    assert await store.publish_current({"as_of": "b"}, day=100, count=20)
    assert not await store.publish_current({"as_of": "a"}, day=100, count=10)  # a stale writer
    assert not await store.publish_current({"as_of": "a"}, day=100, count=20)
    assert not await store.publish_current({"as_of": "a"}, day=99, count=10**9)
    assert await store.current() == {"as_of": "b"}
    assert await store.publish_current({"as_of": "c"}, day=100, count=21)
    assert await store.current() == {"as_of": "c"}
    assert await store.publish_current({"as_of": "d"}, day=101, count=0)  # a new day
    assert await store.current() == {"as_of": "d"}
    # the watermark moved without a new event (a source went idle): shown, never undone
    assert await store.publish_current({"as_of": "e"}, day=101, count=0, watermark_ms=5)
    assert not await store.publish_current({"as_of": "f"}, day=101, count=0, watermark_ms=4)
    assert await store.current() == {"as_of": "e"}


async def test_final_day_only_rises_and_the_first_one_is_kept(store: ServingStore) -> None:
    assert await store.final_days() is None
    assert await store.raise_final_day(100) == (100, 100)
    assert await store.raise_final_day(99) == (100, 100)
    assert await store.raise_final_day(101) == (101, 100)
    assert await store.final_days() == (101, 100)


async def test_the_first_final_day_may_start_the_history_earlier(store: ServingStore) -> None:
    assert await store.final_days() is None
    assert await store.raise_final_day(100, first=60) == (100, 60)
    assert await store.raise_final_day(105, first=10) == (105, 60)  # set once
    assert await store.final_days() == (105, 60)


def flat(terms: dict[tuple[object, ...], int]) -> KpiTerms:
    return from_flat(terms.items())


async def test_partials_are_written_once(store: ServingStore) -> None:
    terms = flat(
        {("w", 30, "orders"): 5, ("ch", 30, "pos", "revenue"): 1999, ("churn", "churned"): 0}
    )
    assert await store.publish_partial(100, 3, terms)
    assert not await store.publish_partial(100, 3, flat({("w", 30, "orders"): 1}))  # a stale writer
    assert await store.publish_partial(100, 0, flat({("w", 30, "orders"): 2}))
    assert await store.partials(100) == {
        3: flat({("w", 30, "orders"): 5, ("ch", 30, "pos", "revenue"): 1999}),
        0: flat({("w", 30, "orders"): 2}),
    }
    assert await store.partials(101) == {}
    await store.store_final(100, {"as_of": "merged"})
    assert await store.partials(100) == {}  # merged: no longer needed
    assert await store.merged_through() == 100


async def test_previews_keep_the_newest_per_partition(store: ServingStore) -> None:
    assert await store.publish_preview(1, day=100, terms=flat({("w", 30, "orders"): 3}), count=3)
    assert not await store.publish_preview(
        1, day=100, terms=flat({("w", 30, "orders"): 2}), count=2
    )
    assert await store.publish_preview(2, day=100, terms=KpiTerms(), count=0)
    assert await store.previews(range(4)) == {
        1: (100, 3, flat({("w", 30, "orders"): 3})),
        2: (100, 0, KpiTerms()),
    }


async def test_partition_times_round_trip(store: ServingStore) -> None:
    times = {
        0: PartitionTime(1_000, first_day=19_000),
        1: PartitionTime(None, holds_back=True),
        2: PartitionTime(None),
    }
    await store.publish_times(times)
    assert await store.times() == times


async def test_history_keeps_the_most_recent_days_and_answers_ranges(store: ServingStore) -> None:
    for day in range(100, 106):
        await store.store_final(day, {"day": day})
    assert await store.kept_days() == [103, 104, 105]  # the 3 most recent final days
    assert await store.final(102) is None
    assert await store.final(104) == {"day": 104}
    assert [d["day"] for d in await store.history(103, 104)] == [103, 104]
    assert await store.history(90, 95) == []


async def test_history_shows_the_newest_days_only_while_a_merge_trims(
    store: ServingStore,
) -> None:
    """A tick keeps every day it merges, then trims: a read in between sees only
    the newest ``history_days``."""
    for day in (10, 11, 12, 13, 14):
        await store.keep_final(day, orjson.dumps({"as_of": day}))
    assert [doc["as_of"] for doc in await store.history(0, 100)] == [12, 13, 14]
    assert [doc["as_of"] for doc in await store.history(0, 12)] == [12]
    assert await store.kept_days() == [10, 11, 12, 13, 14]  # not trimmed yet


async def test_a_connection_redis_closed_is_reopened_not_reported() -> None:
    """After a Redis restart every pooled connection is dead: the next command on
    one reconnects and is sent again instead of failing (a view answered 503)."""
    port = free_port()
    server = start_redis(port)
    store = ServingStore.connect(f"redis://127.0.0.1:{port}/0", "restart", 400)
    try:
        await asyncio.gather(*(store.current() for _ in range(4)))  # 4 pooled connections
        stop(server)
        server = start_redis(port)
        assert [await store.current() for _ in range(4)] == [None] * 4
    finally:
        await store.close()
        stop(server)
