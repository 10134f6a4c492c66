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
- ``epoch``: set once the store holds what the results topic holds (a refill,
  stream_app/refill.py); a store without it is empty or new. ``refill:lock``:
  the worker refilling it.

Everything here but the previews, the current document and the partitions'
event time is also in the results topic (stream_app/results_log.py), written
there first; the rest is republished by the partitions' owners.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, cast

import orjson
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from stream_app.kpi.days import from_date, to_date
from stream_app.kpi.meta import terms_from_json, terms_to_json
from stream_app.kpi.terms import KpiTerms
from stream_app.kpi.watermarks import PartitionTime
from stream_app.refill_snapshot import Snapshot

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

# KEYS[1] history hash, KEYS[2] history days; ARGV[1] date, ARGV[2] document,
# ARGV[3] day. The first document stored for a day stays; returns it.
_KEEP_FINAL = """
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return redis.call('HGET', KEYS[1], ARGV[1])
"""

# KEYS[1] lock; ARGV[1] token. Deletes the lock only if its holder asks.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
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


def current_version(day: int, count: int, watermark_ms: int) -> str:
    """The current document's: by day, count, then watermark (the watermark moves
    without new events when a source goes idle, and the document shows it)."""
    return f"{version(day, count)}{watermark_ms + 10**15:016d}"


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
        self._keep_final = client.register_script(_KEEP_FINAL)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def connect(cls, url: str, app_id: str, history_days: int) -> ServingStore:
        # A pooled connection Redis closed (a restart) fails its next command:
        # reconnect and send it again, twice at most. Commands here are idempotent
        # (set-if-newer, HSETNX, raise-to-max scripts). Timeouts are not retried: a
        # stalled Redis must not hold a request three times as long.
        retry = Retry(
            ExponentialBackoff(cap=0.2, base=0.02), 2, supported_errors=(RedisConnectionError,)
        )
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, retry=retry)
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

    async def publish_partial(self, day: int, partition: int, terms: KpiTerms | bytes) -> bool:
        """One partition's totals as of a final day; False when already there."""
        raw = terms if isinstance(terms, bytes) else encode_terms(terms)
        key = self.key(f"partials:{day}")
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, str(partition), raw)
            pipe.expire(key, PARTIAL_TTL_SECONDS)
            done, _ = await pipe.execute()
        return bool(done)

    async def partials(self, day: int) -> dict[int, KpiTerms]:
        raw = await self.r.hgetall(self.key(f"partials:{day}"))
        return {int(p): decode_terms(v) for p, v in raw.items()}

    async def merged_through(self) -> int | None:
        raw = await self.r.get(self.key("merged_through"))
        return None if raw is None else int(raw)

    async def keep_final(self, day: int, document: bytes) -> bytes:
        """Keep the KPI document of a final day unless one is kept already;
        the one kept. Whoever merges a day gets the same totals; the first
        document stays so that every copy of the day is the same."""
        keys = [self.key("history"), self.key("history:days")]
        kept = await self._keep_final(keys=keys, args=[to_date(day).isoformat(), document, day])
        return bytes(kept)

    async def finish_final(self, day: int) -> list[int]:
        """A kept final day is merged: its partials go, ``merged_through`` rises,
        days beyond ``history_days`` are dropped; the days dropped."""
        await self.r.delete(self.key(f"partials:{day}"))
        await self._raise_to(keys=[self.key("merged_through")], args=[day])
        return await self._trim(day)

    async def store_final(self, day: int, document: dict[str, Any]) -> None:
        """``keep_final`` then ``finish_final``: a final day kept and merged."""
        await self.keep_final(day, orjson.dumps(document))
        await self.finish_final(day)

    async def _trim(self, newest: int) -> list[int]:
        cutoff = newest - self.history_days
        old = cast(
            list[bytes], await self.r.zrangebyscore(self.key("history:days"), "-inf", cutoff)
        )
        if old:
            await self.r.hdel(self.key("history"), *old)
            await self.r.zrem(self.key("history:days"), *old)
        return [from_date_iso(name) for name in old]

    async def final(self, day: int) -> dict[str, Any] | None:
        raw = await self.r.hget(self.key("history"), to_date(day).isoformat())
        return None if raw is None else dict(orjson.loads(raw))

    async def history(self, first: int, last: int) -> list[dict[str, Any]]:
        """Final days in [first, last], oldest first: of the newest ``history_days``
        only (a tick keeps the days it merges, then trims: in between, a read
        would see more)."""
        newest = await self.r.zrange(self.key("history:days"), -1, -1, withscores=True)
        if not newest:
            return []
        first = max(first, int(newest[0][1]) - self.history_days + 1)
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
        self,
        document: dict[str, Any],
        day: int,
        count: int,
        at_ms: int = 0,
        watermark_ms: int = 0,
    ) -> bool:
        """Replace the current KPIs unless a newer version (day, count, watermark)
        is already there. ``at_ms`` (wall clock) marks the snapshot as confirmed
        current then, even when it did not change: its age tells a stalled day close
        from a quiet stream."""
        newer_than = current_version(day, count, watermark_ms)
        args: list[Encodable] = [newer_than, "doc", orjson.dumps(document)]
        newer = bool(await self._set_if_newer(keys=[self.key("current")], args=args))
        await self.r.hset(self.key("current"), "at", at_ms)
        return newer

    async def current_published_ms(self) -> int | None:
        raw = await self.r.hget(self.key("current"), "at")
        return int(raw) if raw else None

    async def current(self) -> dict[str, Any] | None:
        raw = await self.r.hget(self.key("current"), "doc")
        return None if raw is None else dict(orjson.loads(raw))

    # --- refills (stream_app/refill.py) ------------------------------------

    async def epoch(self) -> str | None:
        """The fill epoch: None when the store is empty or new (not refilled yet)."""
        raw = await self.r.get(self.key("epoch"))
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    async def lock_refill(self, token: str, seconds: int) -> bool:
        return bool(await self.r.set(self.key("refill:lock"), token, nx=True, ex=seconds))

    async def unlock_refill(self, token: str) -> None:
        await self._release(keys=[self.key("refill:lock")], args=[token])

    async def refill(self, snapshot: Snapshot, epoch: str) -> None:
        """Write what the results topic holds, never replacing what is newer
        (a worker may have written since the store came back), then the epoch."""
        async with self.r.pipeline(transaction=False) as pipe:
            for day, document in sorted(snapshot.finals.items()):
                name = to_date(day).isoformat()
                pipe.hsetnx(self.key("history"), name, document)
                pipe.zadd(self.key("history:days"), {name: day})
            for day, partials in sorted(snapshot.partials.items()):
                for partition, raw in sorted(partials.items()):
                    pipe.hsetnx(self.key(f"partials:{day}"), str(partition), raw)
                pipe.expire(self.key(f"partials:{day}"), PARTIAL_TTL_SECONDS)
            for field, value in snapshot.spike_state.items():
                pipe.hsetnx(self.key("spike"), field, value)
            await pipe.execute()
        if snapshot.recent_alerts and not await self.r.exists(self.key("alerts")):
            await self.r.rpush(self.key("alerts"), *snapshot.recent_alerts)
        if snapshot.finals:
            newest = max(snapshot.finals)
            await self._raise_to(keys=[self.key("merged_through")], args=[newest])
            await self._trim(newest)
        if snapshot.final_days is not None:
            await self.raise_final_day(*snapshot.final_days)
        await self.r.set(self.key("epoch"), epoch)


def from_date_iso(name: bytes | str) -> int:
    text = name.decode() if isinstance(name, bytes) else name
    return from_date(date.fromisoformat(text))
