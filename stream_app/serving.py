"""The Redis serving store: what every worker publishes and every worker serves.

Keys live under ``lp:<app_id>:``:

- ``watermarks`` (hash, field = partition): each partition's event time, as its
  owner last saw it (stream_app/kpi/watermarks.py ``PartitionTime``).
- ``final_day`` / ``first_final_day``: the highest day declared final (never
  lower) and the first one ever declared.
- ``partials:<day>`` (hash, field = partition): a partition's totals as of a
  final day. Write-once: the totals of a final day never change, so a worker
  that lost a partition cannot replace them. Deleted once the day is merged.
- ``history`` + ``history:days``: the merged document of each final day, the
  last ``history_days`` days; ``merged_through``: every final day up to it is
  in the history.
- ``preview:<partition>`` and ``current``: the open day's totals per partition
  and their merge, behind a compare-and-set on a version that never goes back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, cast

import orjson
import redis.asyncio as redis

from stream_app.kpi.days import from_date, to_date
from stream_app.kpi.meta import terms_from_json, terms_to_json
from stream_app.kpi.terms import KpiTerms
from stream_app.kpi.watermarks import PartitionTime

Encodable = bytes | str | int | float
# Partials are deleted once merged; the expiry only bounds what a partition
# republishing after a merge leaves behind. It is long: a day waits for its last
# partition's partial however long that partition takes.
PARTIAL_TTL_SECONDS = 400 * 86_400

# KEYS[1] hash; ARGV[1] version (fixed-width digits); ARGV[2..] field, value pairs.
_SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'version')
if current and current >= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], unpack(ARGV, 2))
return 1
"""

# KEYS[1] final day, KEYS[2] first final day; ARGV[1] candidate, ARGV[2] the first
# final day if this is the first. Keeps the maximum.
_RAISE_FINAL = """
redis.call('SETNX', KEYS[2], ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '-1e18')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
"""

# KEYS[1] string; ARGV[1] candidate: keep the maximum.
_RAISE_TO = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1e18')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('GET', KEYS[1])
"""


def version(day: int, count: int) -> str:
    """Versions compare as fixed-width strings: by day, then by count."""
    return f"{day + 10**6:08d}{count:016d}"


def encode_terms(terms: KpiTerms) -> bytes:
    return orjson.dumps(terms_to_json(terms))


def decode_terms(raw: bytes | str) -> KpiTerms:
    return terms_from_json(orjson.loads(raw))


class ServingStore:
    def __init__(self, client: redis.Redis, app_id: str, history_days: int) -> None:
        self.r = client
        self.prefix = f"lp:{app_id}:"
        self.history_days = history_days
        self._set_if_newer = client.register_script(_SET_IF_NEWER)
        self._raise_final = client.register_script(_RAISE_FINAL)
        self._raise_to = client.register_script(_RAISE_TO)

    @classmethod
    def connect(cls, url: str, app_id: str, history_days: int) -> ServingStore:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return cls(client, app_id, history_days)

    def key(self, name: str) -> str:
        return self.prefix + name

    async def close(self) -> None:
        await self.r.aclose()

    # --- event time -------------------------------------------------------

    async def publish_times(self, times: Mapping[int, PartitionTime]) -> None:
        if times:
            fields: dict[Any, Any] = {
                str(p): orjson.dumps([t.low, t.holds_back, t.first_day]) for p, t in times.items()
            }
            await self.r.hset(self.key("watermarks"), mapping=fields)

    async def times(self) -> dict[int, PartitionTime]:
        raw = await self.r.hgetall(self.key("watermarks"))
        out: dict[int, PartitionTime] = {}
        for field, value in raw.items():
            low, holds_back, first_day = orjson.loads(value)
            out[int(field)] = PartitionTime(low, holds_back, first_day)
        return out

    async def raise_final_day(self, day: int, first: int | None = None) -> tuple[int, int]:
        """Record that ``day`` is final: (highest final day, first final day).

        ``first`` (default ``day``): where the history starts if no day was
        final before; every day from it through ``day`` becomes final at once."""
        keys = [self.key("final_day"), self.key("first_final_day")]
        start = day if first is None else min(first, day)
        final, first = await self._raise_final(keys=keys, args=[day, start])
        return int(final), int(first)

    async def final_days(self) -> tuple[int, int] | None:
        """(highest final day, first final day), None before any day is final."""
        final, first = await self.r.mget([self.key("final_day"), self.key("first_final_day")])
        return None if final is None or first is None else (int(final), int(first))

    # --- final days -------------------------------------------------------

    async def publish_partial(self, day: int, partition: int, terms: KpiTerms) -> bool:
        """One partition's totals as of a final day; False when already there."""
        key = self.key(f"partials:{day}")
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, str(partition), encode_terms(terms))
            pipe.expire(key, PARTIAL_TTL_SECONDS)
            done, _ = await pipe.execute()
        return bool(done)

    async def partials(self, day: int) -> dict[int, KpiTerms]:
        raw = await self.r.hgetall(self.key(f"partials:{day}"))
        return {int(p): decode_terms(v) for p, v in raw.items()}

    async def merged_through(self) -> int | None:
        raw = await self.r.get(self.key("merged_through"))
        return None if raw is None else int(raw)

    async def store_final(self, day: int, document: dict[str, Any]) -> None:
        """Keep the KPIs of a final day (the same document whoever merges it);
        days beyond ``history_days`` are dropped."""
        name = to_date(day).isoformat()
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("history"), name, orjson.dumps(document))
            pipe.zadd(self.key("history:days"), {name: day})
            pipe.delete(self.key(f"partials:{day}"))
            await pipe.execute()
        await self._raise_to(keys=[self.key("merged_through")], args=[day])
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

    # --- the open day -----------------------------------------------------

    async def publish_preview(self, partition: int, day: int, terms: KpiTerms, count: int) -> bool:
        """A partition's totals as of the open ``day`` after ``count`` events."""
        key = self.key(f"preview:{partition}")
        args: list[Encodable] = [
            version(day, count),
            "day",
            day,
            "count",
            count,
            "terms",
            encode_terms(terms),
        ]
        return bool(await self._set_if_newer(keys=[key], args=args))

    async def previews(self, partitions: Iterable[int]) -> dict[int, tuple[int, int, KpiTerms]]:
        """(day, count, terms) of each partition that has a preview."""
        numbers = list(partitions)
        async with self.r.pipeline(transaction=False) as pipe:
            for p in numbers:
                pipe.hmget(self.key(f"preview:{p}"), ["day", "count", "terms"])
            rows = await pipe.execute()
        out: dict[int, tuple[int, int, KpiTerms]] = {}
        for p, (day, count, terms) in zip(numbers, rows, strict=True):
            if terms is not None:
                out[p] = (int(day), int(count), decode_terms(terms))
        return out

    async def publish_current(
        self, document: dict[str, Any], day: int, count: int, at_ms: int = 0
    ) -> bool:
        """Replace the current KPIs unless a newer version is already there.
        ``at_ms`` (wall clock) marks the snapshot as confirmed current then, even
        when it did not change: its age tells a stalled day close from a quiet stream."""
        args: list[Encodable] = [version(day, count), "doc", orjson.dumps(document)]
        newer = bool(await self._set_if_newer(keys=[self.key("current")], args=args))
        await self.r.hset(self.key("current"), "at", at_ms)
        return newer

    async def current_published_ms(self) -> int | None:
        raw = await self.r.hget(self.key("current"), "at")
        return int(raw) if raw else None

    async def current(self) -> dict[str, Any] | None:
        raw = await self.r.hget(self.key("current"), "doc")
        return None if raw is None else dict(orjson.loads(raw))


def from_date_iso(name: bytes | str) -> int:
    text = name.decode() if isinstance(name, bytes) else name
    return from_date(date.fromisoformat(text))
