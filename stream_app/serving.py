"""The Redis serving store: current KPIs, per-partition partials, daily history.

Every write that can race carries a version and goes through a compare-and-set
script, so a worker that lost a partition (or any slow writer) can never
replace newer numbers with older ones. Keys live under ``lp:<app_id>:``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, cast

import orjson
import redis.asyncio as redis

from stream_app.kpi.contribution import Terms
from stream_app.kpi.days import from_date, to_date

# KEYS[1] hash; ARGV[1] version; ARGV[2..] field, value pairs.
_SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], unpack(ARGV, 2))
return 1
"""

# KEYS[1] string; ARGV[1] candidate: keep the maximum.
_RAISE_TO = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1e18')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('GET', KEYS[1])
"""


def encode_terms(terms: Terms) -> bytes:
    return orjson.dumps([[list(k), v] for k, v in terms.items() if v])


def decode_terms(raw: bytes | str) -> Terms:
    return {tuple(k): v for k, v in orjson.loads(raw)}


class ServingStore:
    def __init__(self, client: redis.Redis, app_id: str, history_days: int) -> None:
        self.r = client
        self.prefix = f"lp:{app_id}:"
        self.history_days = history_days
        self._set_if_newer = client.register_script(_SET_IF_NEWER)
        self._raise_to = client.register_script(_RAISE_TO)

    @classmethod
    def connect(cls, url: str, app_id: str, history_days: int) -> ServingStore:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return cls(client, app_id, history_days)

    def key(self, name: str) -> str:
        return self.prefix + name

    async def close(self) -> None:
        await self.r.aclose()

    async def publish_current(self, document: dict[str, Any], version: int) -> bool:
        """Replace the current KPIs unless a newer version is already there."""
        done = await self._set_if_newer(
            keys=[self.key("current")], args=[version, "doc", orjson.dumps(document)]
        )
        return bool(done)

    async def current(self) -> dict[str, Any] | None:
        raw = await self.r.hget(self.key("current"), "doc")
        return None if raw is None else dict(orjson.loads(raw))

    async def raise_final_day(self, day: int) -> int:
        """Record that ``day`` is final; returns the highest final day (never lower)."""
        return int(await self._raise_to(keys=[self.key("final_day")], args=[day]))

    async def final_day(self) -> int | None:
        raw = await self.r.get(self.key("final_day"))
        return None if raw is None else int(raw)

    async def publish_partial(self, day: int, partition: int, terms: Terms, version: int) -> bool:
        """One partition's totals as of a final day (merged once all are in)."""
        key = self.key(f"partial:{day}:{partition}")
        done = await self._set_if_newer(keys=[key], args=[version, "terms", encode_terms(terms)])
        await self.r.expire(key, 7 * 86_400)
        return bool(done)

    async def partials(self, day: int, partitions: Iterable[int]) -> dict[int, Terms]:
        """The partials stored for ``day`` (only the partitions that have one)."""
        out: dict[int, Terms] = {}
        for partition in partitions:
            raw = await self.r.hget(self.key(f"partial:{day}:{partition}"), "terms")
            if raw is not None:
                out[partition] = decode_terms(raw)
        return out

    async def store_final(self, day: int, document: dict[str, Any]) -> None:
        """Keep the KPIs of a final day; days beyond ``history_days`` are dropped."""
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("history"), to_date(day).isoformat(), orjson.dumps(document))
            pipe.zadd(self.key("history:days"), {to_date(day).isoformat(): day})
            await pipe.execute()
        await self._trim(day)

    async def _trim(self, newest: int) -> None:
        cutoff = newest - self.history_days
        old = await self.r.zrangebyscore(self.key("history:days"), "-inf", cutoff)
        if old:
            await self.r.hdel(self.key("history"), *old)
            await self.r.zrem(self.key("history:days"), *old)

    async def final(self, day: int) -> dict[str, Any] | None:
        raw = await self.r.hget(self.key("history"), to_date(day).isoformat())
        return None if raw is None else dict(orjson.loads(raw))

    async def history(self, first: int, last: int) -> list[dict[str, Any]]:
        """Final days in [first, last], oldest first."""
        names = await self.r.zrangebyscore(self.key("history:days"), first, last)
        if not names:
            return []
        raws = await self.r.hmget(self.key("history"), cast(list[bytes], names))
        return [dict(orjson.loads(raw)) for raw in raws if raw is not None]

    async def kept_days(self) -> list[int]:
        names = cast(list[bytes], await self.r.zrange(self.key("history:days"), 0, -1))
        return [from_date_iso(n) for n in names]


def from_date_iso(name: bytes | str) -> int:
    text = name.decode() if isinstance(name, bytes) else name
    return from_date(date.fromisoformat(text))
