"""The Redis serving store against a real redis-server of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

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
    assert await store.publish_current({"as_of": "b"}, version=20)
    assert not await store.publish_current({"as_of": "a"}, version=10)  # a stale writer
    assert not await store.publish_current({"as_of": "a"}, version=20)
    assert await store.current() == {"as_of": "b"}
    assert await store.publish_current({"as_of": "c"}, version=21)
    assert await store.current() == {"as_of": "c"}


async def test_final_day_only_rises(store: ServingStore) -> None:
    assert await store.final_day() is None
    assert await store.raise_final_day(100) == 100
    assert await store.raise_final_day(99) == 100
    assert await store.raise_final_day(101) == 101


async def test_partials_round_trip_and_keep_the_newest(store: ServingStore) -> None:
    terms = {("w", 30, "orders"): 5, ("ch", 30, "pos", "revenue"): 1999, ("churn", "churned"): 0}
    assert await store.publish_partial(100, 3, terms, version=7)
    assert not await store.publish_partial(100, 3, {("w", 30, "orders"): 1}, version=6)
    got = await store.partials(100, range(4))
    assert got == {3: {("w", 30, "orders"): 5, ("ch", 30, "pos", "revenue"): 1999}}


async def test_history_keeps_the_most_recent_days_and_answers_ranges(store: ServingStore) -> None:
    for day in range(100, 106):
        await store.store_final(day, {"day": day})
    assert await store.kept_days() == [103, 104, 105]  # the 3 most recent final days
    assert await store.final(102) is None
    assert await store.final(104) == {"day": 104}
    assert [d["day"] for d in await store.history(103, 104)] == [103, 104]
    assert await store.history(90, 95) == []
