"""Churn-spike alerts: judged once per final day, kept in Redis, sent to Kafka.

Any worker may run ``SpikeMonitor.check`` after merging final days. Each day's
verdict is committed to Redis with a compare-and-set on the last day judged,
so exactly one worker judges a day, and an alert event is committed together
with that verdict into an outbox. The outbox is then sent to the alerts topic
by whichever worker holds a short lock, and an entry leaves the outbox only
once the broker has it: an alert is never lost, and is sent twice only if a
worker dies between the broker's ack and the outbox pop (consumers can
deduplicate on the record key, ``<id>:<status>``).

Alert event (JSON, the value on the alerts topic and an entry of ``GET /alerts``):

    {"alert": "churn_spike", "id": "churn_spike:2025-03-14", "status": "raised",
     "day": "2025-03-14", "raised_day": "2025-03-14", "churn_rate": 0.12,
     "baseline": 0.05, "threshold": 0.075, "churned": 45,
     "customers_at_start": 375, "rule": {"baseline_days": 28, "min_days": 7,
     "factor": 1.5, "min_churned": 20}, "detected_at": "2025-03-16T00:00:02.125Z"}

``day`` is the final day whose verdict changed the alert (the spike day for
``raised``, the first day that is no spike for ``resolved``).

The detector's state and the recent alerts also go to the results topic (key
``spike``), each time the outbox has been sent empty, so a refilled serving
store resumes judging where it was and lists the same alerts (refill.py). A
Redis lost while an alert waits in the outbox rolls the state back to before
it: that day is judged again and its alert sent then.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson

from stream_app.keys import RESULTS_SPIKE_KEY
from stream_app.kpi.days import now_ms, to_date
from stream_app.kpi.spike import AlertChange, DayChurn, SpikeRule, Verdict, judge, step
from stream_app.refill_snapshot import spike_value
from stream_app.results_log import ResultsLog
from stream_app.serving import ServingStore, from_date_iso
from stream_app.settings import Settings
from stream_app.timefmt import iso_ms

KEEP_ALERTS = 200  # recent alerts listed by GET /alerts
MAX_DAYS_PER_CHECK = 64  # days judged per call (a replay judges its history in steps)
SEND_LOCK_SECONDS = 30

log = logging.getLogger(__name__)

# KEYS: state hash, recent alerts list, outbox list.
# ARGV[1]: expected checked_through ("" = none yet); ARGV[2]: event JSON or "";
# ARGV[3..]: field, value pairs of the new state.
_COMMIT_VERDICT = f"""
local current = redis.call('HGET', KEYS[1], 'checked_through') or ''
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] ~= '' then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], 0, {KEEP_ALERTS - 1})
  redis.call('RPUSH', KEYS[3], ARGV[2])
end
return 1
"""

# KEYS[1] lock; ARGV[1] token. Deletes the lock only if this worker holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

SendAlert = Callable[[bytes, bytes], Awaitable[None]]


def rule_of(settings: Settings) -> SpikeRule:
    return SpikeRule(
        baseline_days=settings.spike_baseline_days,
        min_days=settings.spike_min_days,
        factor=settings.spike_factor,
        min_churned=settings.spike_min_churned,
    )


def rule_json(rule: SpikeRule) -> dict[str, Any]:
    return {
        "baseline_days": rule.baseline_days,
        "min_days": rule.min_days,
        "factor": float(rule.factor),
        "min_churned": rule.min_churned,
    }


def churn_by_day(documents: Iterable[Mapping[str, Any]]) -> dict[int, DayChurn]:
    """The churn counts of final-day KPI documents (spec §5), by day."""
    return {
        from_date_iso(doc["as_of"]): DayChurn(
            int(doc["churn"]["churned"]),
            int(doc["churn"]["customers_at_start"]),
            # documents of contract version 1 did not say; they counted as complete
            bool(doc["churn"].get("history_complete", True)),
        )
        for doc in documents
    }


def _ratio(value: Any) -> float | None:
    return None if value is None else float(value)


def alert_event(change: AlertChange, rule: SpikeRule, detected_ms: int) -> dict[str, Any]:
    verdict = change.verdict
    raised = to_date(change.raised_day).isoformat()
    return {
        "alert": "churn_spike",
        "id": f"churn_spike:{raised}",
        "status": change.status,
        "day": to_date(verdict.day).isoformat(),
        "raised_day": raised,
        "churn_rate": _ratio(verdict.churn.rate),
        "baseline": _ratio(verdict.baseline),
        "threshold": _ratio(verdict.threshold),
        "churned": verdict.churn.churned,
        "customers_at_start": verdict.churn.customers_at_start,
        "rule": rule_json(rule),
        "detected_at": iso_ms(detected_ms),
    }


class AlertStore:
    """The detector's state, recent alerts and the outbox, next to the serving store."""

    def __init__(self, store: ServingStore) -> None:
        self.store = store
        self.r = store.r
        self._commit = self.r.register_script(_COMMIT_VERDICT)
        self._release = self.r.register_script(_RELEASE)

    def key(self, name: str) -> str:
        return self.store.key(name)

    async def state(self) -> dict[str, str]:
        raw = await self.r.hgetall(self.key("spike"))
        return {_str(k): _str(v) for k, v in raw.items()}

    async def commit(
        self, expected: int | None, verdict: Verdict, open_since: int | None, event: bytes
    ) -> bool:
        fields: list[str | int | float] = [
            "checked_through",
            verdict.day,
            "open_since",
            "" if open_since is None else open_since,
            "churn_rate",
            _text(verdict.churn.rate),
            "baseline",
            _text(verdict.baseline),
            "threshold",
            _text(verdict.threshold),
        ]
        keys = [self.key("spike"), self.key("alerts"), self.key("alerts:outbox")]
        args = ["" if expected is None else str(expected), event, *fields]
        return bool(await self._commit(keys=keys, args=args))

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        return [dict(orjson.loads(raw)) for raw in await self.recent_raw(limit)]

    async def recent_raw(self, limit: int) -> list[str]:
        """The newest ``limit`` alert events as stored, newest first."""
        raws = await self.r.lrange(self.key("alerts"), 0, max(limit, 1) - 1)
        return [_str(raw) for raw in raws]

    async def pending(self) -> int:
        """Alert events committed and not yet on the alerts topic."""
        return int(await self.r.llen(self.key("alerts:outbox")))

    async def send_outbox(self, send: SendAlert) -> int:
        """Send pending alert events in order; the number sent (0: none, or another
        worker is sending)."""
        if not await self.r.llen(self.key("alerts:outbox")):
            return 0
        lock, token = self.key("alerts:sending"), secrets.token_hex(8)
        if not await self.r.set(lock, token, nx=True, ex=SEND_LOCK_SECONDS):
            return 0
        sent = 0
        try:
            while True:
                raw = await self.r.lindex(self.key("alerts:outbox"), 0)
                if raw is None:
                    return sent
                value = raw.encode() if isinstance(raw, str) else raw
                event = orjson.loads(value)
                await send(f"{event['id']}:{event['status']}".encode(), value)
                await self.r.lpop(self.key("alerts:outbox"))
                sent += 1
        finally:
            await self._release(keys=[lock], args=[token])


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _text(value: Any) -> str:
    return "" if value is None else repr(float(value))


class SpikeMonitor:
    def __init__(
        self,
        settings: Settings,
        alerts: AlertStore,
        clock: Callable[[], int] = now_ms,
        results: ResultsLog | None = None,
    ) -> None:
        """``results``: where the state is kept beyond Redis (None: not kept)."""
        self.rule = rule_of(settings)
        self.alerts = alerts
        self.store = alerts.store
        self.clock = clock
        self.results = results
        self._kept: dict[str, str] | None = None  # the state last appended to ``results``

    async def check(self, merged_through: int | None, send: SendAlert) -> None:
        """Judge the merged final days not judged yet, then send pending alerts."""
        if merged_through is not None:
            await self._judge_through(merged_through)
        await self.alerts.send_outbox(send)
        if self.results is not None:
            await self._keep_state(self.results)

    async def _keep_state(self, results: ResultsLog) -> None:
        state = await self.alerts.state()
        if not state or state == self._kept or await self.alerts.pending():
            return
        recent = await self.alerts.recent_raw(KEEP_ALERTS)
        await results.append([(RESULTS_SPIKE_KEY, spike_value(state, recent))])
        self._kept = state

    async def _judge_through(self, merged_through: int) -> None:
        state = await self.alerts.state()
        checked = int(state["checked_through"]) if state.get("checked_through") else None
        open_since = int(state["open_since"]) if state.get("open_since") else None
        if checked is None:
            kept = await self.store.kept_days()
            if not kept:
                return
            first = kept[0]
        else:
            first = checked + 1
        last = min(merged_through, first + MAX_DAYS_PER_CHECK - 1)
        if first > last:
            return
        churn = churn_by_day(await self.store.history(first - self.rule.baseline_days, last))
        for day in range(first, last + 1):
            verdict = judge(day, churn, self.rule)
            open_since, change = step(open_since, verdict)
            event = b""
            if change is not None:
                event = orjson.dumps(alert_event(change, self.rule, self.clock()))
            if not await self.alerts.commit(checked, verdict, open_since, event):
                return  # another worker judged it first: it carries on
            if change is not None:
                log.warning(
                    "churn spike %s: %s (churn rate %.4f, baseline %.4f)",
                    change.status,
                    to_date(day),
                    verdict.churn.rate or 0,
                    verdict.baseline or 0,
                )
            checked = day
