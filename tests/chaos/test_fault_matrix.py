"""Issue 13, item 2: the fault matrix. A real broker, a real Redis (both this
test's own, so it may stall and kill them) and worker processes.

One generated stream (more than 50,000 events over more than 400 days, shuffled
within each day, 2 % of the events delivered twice, 1 % hostile records mixed
in) is produced at a throttled pace while faults land on it one after another,
each at a random point of its own stretch of the stream:

1. kill -9 of a worker, three times, each restarted;
2. SIGTERM of a worker, restarted;
3. a worker joining, then leaving;
4. Redis stalled 15 s (SIGSTOP, SIGCONT);
6. the broker stalled 10 s;
7. a worker killed and its data directory wiped before its restart;
5. Redis killed and restarted empty on the same port (no persistence);
8. the hostile records, all along.

After each fault the test waits until the workers have caught up again: every
partition owned by exactly one ready worker, every event produced 3 s earlier
handled, no Redis error, the open day (``/kpis``) moved past the stream's day
at the fault, final days merged to within 6 days of the stream and, after Redis
came back empty, every final day it served before served again. It reports that
recovery time, from the fault and from its end (restart issued, SIGCONT sent),
with the late and excess rejections counted so far, in a table: printed (shown
with ``-s`` or ``-rA``) and written to ``recovery.txt`` in the test's directory
with what each recovery waited for. Once the stream ends: every final day kept
equals the brute-force reference on every worker (``/kpis?as_of=``, the
watermark aside; a day that does not is charged to the fault before it), the
open day equals the reference over every event, the workers' totals are exact,
every hostile record is counted once as a rejection with its reason and has its
dead letter, and no event is late.

``CHAOS_SEED`` replays the fault points of an earlier run (printed with the
table); ``CHAOS_FAULTS`` (comma-separated keys, see ``plan``) keeps some faults
only and ``CHAOS_RATE`` sets the records a second, to look into one fault.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import random
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from loyalty_pulse_dev.simulator import event_time_ms, to_json_line
from stream_app.kafka_security import client_kwargs
from stream_app.kpi.days import DAY_MS, to_date
from stream_app.kpi.finality import final_day
from stream_app.settings import Settings
from stream_app.topics import ensure_topics
from tests.chaos.conftest import Server
from tests.chaos.reference_pool import ReferencePool, decode_events
from tests.e2e.conftest import Cluster, WorkerHandle
from tests.e2e.test_kpis_e2e import open_day_settles_on_the_reference, stream, without_watermark
from tests.e2e.test_pipeline import HOSTILE, to_records, with_redeliveries
from tests.malformed import CASES, line, malformed_event, missing_customer
from tests.oracle import expected_totals, observed
from tests.unit.test_kpi_engine import assert_same, reference_params

RATE = int(os.environ.get("CHAOS_RATE") or 450)  # records a second while the stream flows
CHUNK = 90  # records sent and acknowledged at a time
LAG_S = 3.0  # caught up: every event acknowledged this long ago is applied
MERGED_BEHIND_DAYS = 6  # caught up: the final days are merged this close to the stream
RECOVERY_TIMEOUT_S = 150
REDIS_STALL_S = 15
BROKER_STALL_S = 10
Record = tuple[str, bytes | None, bytes | None]  # topic, key, value


# --- the stream ---------------------------------------------------------------


@dataclass
class Stream:
    records: list[Record]  # in the order produced
    events: list[dict[str, Any]]  # the accepted events, each once
    hostile: dict[bytes | None, str]  # hostile value -> the reason it must get
    firsts: list[int]  # firsts[n]: distinct accepted events among records[:n]
    days: list[date]  # days[n]: the business day the stream is at after records[:n]


def in_day_shuffle(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _, group in groupby(events, key=lambda e: event_time_ms(e) // DAY_MS):
        day = list(group)
        rng.shuffle(day)
        out.extend(day)
    return out


def hostile_records(count: int, topics: dict[str, str], rng: random.Random) -> list[Record]:
    """``count`` hostile records: malformed events and bytes that are no event at all."""
    kinds = len(CASES) + 1 + len(HOSTILE)
    out: list[Record] = []
    for n in range(count):
        kind, key = n % kinds, f"hostile-{rng.randrange(1000)}".encode()
        if kind < len(CASES):
            event, _ = malformed_event(n)
        elif kind == len(CASES):
            event, _ = missing_customer(n)
        else:
            value, _ = HOSTILE[kind - len(CASES) - 1]
            out.append((topics["purchase"], key, value))
            continue
        out.append((topics[str(event["type"])], key, line(event)))
    return out


def hostile_reasons(count: int) -> dict[bytes | None, str]:
    reasons: dict[bytes | None, str] = dict(HOSTILE)
    for n in range(count):
        event, reason = malformed_event(n)
        reasons[line(event)] = reason
        missing, reason = missing_customer(n)
        reasons[line(missing)] = reason
    return reasons


def build_stream(cluster: Cluster, rng: random.Random) -> Stream:
    events = stream()
    assert len(events) > 50_000
    assert (event_time_ms(events[-1]) - event_time_ms(events[0])) // DAY_MS >= 400
    raw = [to_json_line(e).rstrip() for e in in_day_shuffle(events, rng)]
    delivered = with_redeliveries(raw, len(raw) * 2 // 100, seed=rng.randrange(1 << 30))
    records: list[Record] = list(
        to_records(cluster, delivered, misroute_share=0.2, seed=rng.randrange(1 << 30))
    )
    bad = hostile_records(len(records) // 99, cluster.settings.topics, rng)
    for record in bad:
        records.insert(rng.randrange(1, len(records)), record)
    hostile = hostile_reasons(len(bad))
    firsts, days, seen = [0], [], set()
    day = datetime.fromtimestamp(event_time_ms(events[0]) / 1000, UTC).date()
    for _, _, value in records:
        if value not in hostile:
            event = orjson.loads(value or b"")
            seen.add(event["event_id"])
            day = datetime.fromtimestamp(event_time_ms(event) / 1000, UTC).date()
        firsts.append(len(seen))
        days.append(day)
    assert len(seen) == len(events)
    return Stream(records, events, hostile, firsts, [days[0], *days])


# --- producing at a pace, holding where a fault must recover first -----------


class Producer(threading.Thread):
    """Sends the records at ``RATE`` a second, ``CHUNK`` at a time, each chunk
    acknowledged before the next. Before record ``n`` of ``holds`` it waits
    until that hold is released."""

    def __init__(self, settings: Settings, records: list[Record], holds: list[int]) -> None:
        super().__init__(daemon=True, name="chaos-producer")
        self.settings, self.records = settings, records
        self.holds = {n: threading.Event() for n in holds}
        self.acked = 0
        self.timeline: list[tuple[float, int]] = [(time.monotonic(), 0)]
        self.error: BaseException | None = None
        self.done = threading.Event()

    def release(self, hold: int) -> None:
        if hold in self.holds:
            self.holds[hold].set()

    def release_all(self) -> None:
        for event in self.holds.values():
            event.set()

    def acked_at(self, moment: float) -> int:
        """Records acknowledged by ``moment`` (monotonic clock)."""
        times = [t for t, _ in self.timeline]
        at = bisect.bisect_right(times, moment) - 1
        return self.timeline[max(at, 0)][1]

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            self.error = exc
        finally:
            self.done.set()

    async def _run(self) -> None:
        await ensure_topics(self.settings)
        producer = AIOKafkaProducer(**client_kwargs(self.settings), acks="all", linger_ms=5)
        await producer.start()
        try:
            await self._send_all(producer)
        finally:
            await producer.stop()

    async def _send_all(self, producer: AIOKafkaProducer) -> None:
        n, total = 0, len(self.records)
        origin, sent_since = time.monotonic(), 0
        stops = sorted([*self.holds, total])
        while n < total:
            if n in self.holds and not self.holds[n].is_set():
                while not self.holds[n].wait(0.05):
                    await asyncio.sleep(0)
                origin, sent_since = time.monotonic(), 0  # no burst after a hold
            end = min(n + CHUNK, stops[bisect.bisect_right(stops, n)])
            futures = [
                await producer.send(topic, value=value, key=key)
                for topic, key, value in self.records[n:end]
            ]
            await asyncio.gather(*futures)
            sent_since += end - n
            n = self.acked = end
            self.timeline.append((time.monotonic(), n))
            pause = origin + sent_since / RATE - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)


# --- reading the workers --------------------------------------------------------


class NotYet(Exception):
    """The cluster has not caught up: why."""


def get(worker: WorkerHandle, path: str, timeout_s: float = 4) -> Any:
    try:
        with urllib.request.urlopen(worker.url + path, timeout=timeout_s) as resp:  # noqa: S310
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        raise NotYet(f"{path}: HTTP {err.code} {err.read()[:200]!r}") from None
    except (OSError, ValueError) as err:
        raise NotYet(f"{path}: {err}") from None


@dataclass
class Outcome:
    case: int
    fault: str
    at_record: int
    stream_day: date
    started: float
    resumed: float = 0.0  # the fault ended: restart issued, SIGCONT sent
    recovered: float | None = None
    late: int = 0
    excess: int = 0
    differ: int = 0  # final days that closed after this fault and differ from the reference
    problem: str | None = None
    waits: list[tuple[float, str]] = field(default_factory=list)  # (s after fault, why)
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        back = "-" if self.recovered is None else f"{self.recovered - self.started:6.1f}"
        after = "-" if self.recovered is None else f"{self.recovered - self.resumed:6.1f}"
        return (
            f"{self.case:>4} | {self.fault:<44} | {self.at_record:>7} | {self.stream_day} "
            f"| {back:>8} | {after:>8} | {self.late:>4} | {self.excess:>6} | "
            f"{self.problem or 'ok'}"
        )


HEADER = (
    "case | fault                                        |  record | stream day "
    "| recovered s | after end s | late | excess | status"
)


@dataclass
class Matrix:
    cluster: Cluster
    broker: Server
    redis: Server
    stream: Stream
    producer: Producer
    live: dict[str, WorkerHandle] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)  # the checks once the stream ended

    @property
    def partitions(self) -> int:
        return self.cluster.settings.partitions

    def start(self, name: str) -> None:
        self.live[name] = self.cluster.start_worker(name)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        worker = self.live.pop(name)
        os.kill(worker.proc.pid, sig)
        try:
            worker.proc.wait(timeout=60)
        except Exception:
            worker.proc.kill()
            worker.proc.wait()
            raise

    def rejected(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for worker in self.live.values():
            try:
                out.update(get(worker, "/totals")["rejected"])
            except NotYet:
                pass
        return out

    def check(self, since: date, kept: list[str] | None = None) -> None:
        """Raise NotYet unless caught up: every partition owned once by a ready
        worker, every event produced ``LAG_S`` ago handled, final days merged a few
        days behind it, the open day past ``since`` (the stream's day at the fault)
        and, with ``kept``, those final days served again."""
        acked = self.producer.acked_at(time.monotonic() - LAG_S)
        day = self.stream.days[acked]
        owned: list[int] = []
        applied = 0
        for name, worker in self.live.items():
            if worker.proc.poll() is not None:
                raise NotYet(f"worker {name} exited:\n{worker.log_tail()}")
            totals, pipeline = get(worker, "/totals"), get(worker, "/pipeline")
            if not pipeline["ready"]:
                raise NotYet(f"worker {name} not ready")
            if pipeline["redis_error"]:
                raise NotYet(f"worker {name}: {pipeline['redis_error']}")
            owned += totals["partitions"]
            # a late event is handled too (and reported as late by the caller)
            applied += sum(totals["events"].values()) + totals["rejected"].get("late", 0)
        if sorted(owned) != list(range(self.partitions)):
            raise NotYet(f"partitions owned: {sorted(owned)}")
        if applied < self.stream.firsts[acked]:
            raise NotYet(f"{applied} events handled of {self.stream.firsts[acked]}")
        any_worker = next(iter(self.live.values()))
        current = get(any_worker, "/kpis")
        if current["as_of"] <= since.isoformat():
            raise NotYet(f"/kpis still as of {current['as_of']}, the fault at {since}")
        # the final day trails the stream by the lateness and a day; merging, a little
        merged = day - timedelta(days=MERGED_BEHIND_DAYS)
        get(any_worker, f"/kpis?as_of={merged}")
        if kept is not None:
            served = kept_days(any_worker)
            window = [d for d in kept if served and d > days_before(served[-1], 400)]
            missing = [d for d in window if d not in served]
            if not served or missing:
                raise NotYet(f"{len(missing)} final days served before the fault are not")

    def wait_caught_up(self, outcome: Outcome, kept: list[str] | None = None) -> None:
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        why = ""
        while time.monotonic() < deadline:
            self.raise_producer_error()
            try:
                self.check(outcome.stream_day, kept)
            except NotYet as not_yet:
                if str(not_yet).split(":")[0][:32] != why.split(":")[0][:32]:
                    outcome.waits.append((time.monotonic() - outcome.started, str(not_yet)))
                why = str(not_yet)
                time.sleep(0.5)
                continue
            outcome.recovered = time.monotonic()
            return
        outcome.problem = f"not caught up after {RECOVERY_TIMEOUT_S} s: {why[:300]}"

    def raise_producer_error(self) -> None:
        if self.producer.error is not None:
            raise self.producer.error

    def table(self) -> str:
        rows = [HEADER, "-" * len(HEADER), *(o.row() for o in self.outcomes), *self.ended]
        return "\n".join(rows)

    def details(self) -> str:
        """What each recovery waited for, and what was late."""
        lines = []
        for o in self.outcomes:
            lines.append(f"{o.fault}:")
            lines.extend(f"  {at:6.1f} s  {why[:160]}" for at, why in o.waits)
            lines.extend(f"  {note}" for note in o.notes)
        return "\n".join(lines)


def kept_days(worker: WorkerHandle) -> list[str]:
    """Every final day the serving store keeps."""
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=3000), today + timedelta(days=2)
    return list(get(worker, f"/kpis/history?from={first}&to={last}&fields=as_of")["days"])


def days_before(day: str, n: int) -> str:
    return (date.fromisoformat(day) - timedelta(days=n)).isoformat()


# --- the faults -----------------------------------------------------------------


Fault = tuple[int, str, Callable[[Matrix], None]]


def kill_and_restart(name: str) -> Callable[[Matrix], None]:
    def run(m: Matrix) -> None:
        m.kill(name)
        m.start(name)

    return run


def sigterm_and_restart(name: str) -> Callable[[Matrix], None]:
    def run(m: Matrix) -> None:
        m.kill(name, signal.SIGTERM)
        m.start(name)

    return run


def join(name: str) -> Callable[[Matrix], None]:
    def run(m: Matrix) -> None:
        m.start(name)

    return run


def leave(name: str) -> Callable[[Matrix], None]:
    def run(m: Matrix) -> None:
        m.kill(name, signal.SIGTERM)

    return run


def stall(server: str, seconds: float) -> Callable[[Matrix], None]:
    def run(m: Matrix) -> None:
        target: Server = getattr(m, server)
        target.stall()
        try:
            time.sleep(seconds)
        finally:
            target.resume()

    return run


def redis_restarted_empty(m: Matrix) -> None:
    m.redis.kill()
    m.redis.restart()


def wipe_and_restart(name: str) -> Callable[[Matrix], None]:
    def run(m: Matrix) -> None:
        m.kill(name)
        shutil.rmtree(m.cluster.tmp / name)
        m.start(name)

    return run


def plan(rng: random.Random) -> list[Fault]:
    """The faults in the order they land; ``CHAOS_FAULTS`` (comma-separated keys:
    kill, sigterm, join, leave, redis-stall, broker-stall, wipe, redis-empty)
    keeps only some, to look into one of them."""
    kills = [rng.choice("ab") for _ in range(3)]
    faults = [
        *(("kill", 1, f"kill -9 worker {w}, restart", kill_and_restart(w)) for w in kills),
        ("sigterm", 2, "SIGTERM worker a, restart", sigterm_and_restart("a")),
        ("join", 3, "worker c joins", join("c")),
        ("leave", 3, "worker c leaves (SIGTERM)", leave("c")),
        (
            "redis-stall",
            4,
            f"Redis stalled {REDIS_STALL_S} s (SIGSTOP/SIGCONT)",
            stall("redis", REDIS_STALL_S),
        ),
        ("broker-stall", 6, f"broker stalled {BROKER_STALL_S} s", stall("broker", BROKER_STALL_S)),
        ("wipe", 7, "kill -9 worker b, data dir wiped, restart", wipe_and_restart("b")),
        ("redis-empty", 5, "Redis killed, restarted empty", redis_restarted_empty),
    ]
    wanted = [k for k in os.environ.get("CHAOS_FAULTS", "").split(",") if k]
    return [(case, name, run) for key, case, name, run in faults if not wanted or key in wanted]


def fault_points(rng: random.Random, faults: int, records: int) -> list[int]:
    """One point per fault, each at random in its own stretch of the stream
    (the stream's first and last stretches have none)."""
    stretch = records / (faults + 1)
    return [round(stretch * (k + 0.5 + rng.uniform(0.1, 0.8))) for k in range(faults)]


def hold_points(points: list[int]) -> list[int]:
    """Where the stream waits until the fault before has recovered: a few seconds
    before the next fault's point, so that it lands on a flowing stream."""
    ahead = RATE * 3
    return [max(before + 1, at - ahead) for before, at in itertools.pairwise(points)]


def run_fault(m: Matrix, case: int, name: str, action: Callable[[Matrix], None], at: int) -> None:
    while m.producer.acked < at:
        m.raise_producer_error()
        assert not m.producer.done.is_set(), f"the stream ended before: {name}"
        time.sleep(0.05)
    outcome = Outcome(case, name, at, m.stream.days[m.producer.acked], time.monotonic())
    m.outcomes.append(outcome)
    kept = None
    if case == 5:
        try:
            kept = kept_days(next(iter(m.live.values())))
        except NotYet as not_yet:
            outcome.problem = f"before the fault: {not_yet}"
    action(m)
    outcome.resumed = time.monotonic()
    m.wait_caught_up(outcome, kept)
    rejected = m.rejected()
    outcome.late = rejected.pop("late", 0)
    sent = m.stream.records[: m.producer.acked]
    hostile_sent = sum(1 for _, _, value in sent if value in m.stream.hostile)
    outcome.excess = max(0, sum(rejected.values()) - hostile_sent)
    if outcome.late or outcome.excess:
        outcome.problem = outcome.problem or "late or excess rejections"
        outcome.notes.extend(late_letters(m.cluster.settings))


def late_letters(settings: Settings) -> list[str]:
    """The dead letters of late records: where each was read, why, which event."""
    out = []
    for topic, partition, offset, value in asyncio.run(
        read_topics(settings, [settings.topic_dead_letter])
    ):
        letter = orjson.loads(value)
        if letter["reason"] != "late":
            continue
        event = orjson.loads(letter["payload"])
        out.append(
            f"late: read at {letter['topic']}/{letter['partition']}@{letter['offset']} "
            f"(letter {topic}/{partition}@{offset}): {event['event_id']} of "
            f"{event['customer_id']} at {event['occurred_at']}: {letter['detail']}"
        )
    return out


# --- what the broker holds --------------------------------------------------------


async def read_topics(settings: Settings, topics: list[str]) -> list[tuple[str, int, int, Any]]:
    """(topic, partition, offset, value) of every record, read until none comes
    for 3 s (the embedded broker under-reports end offsets after batches)."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # the cluster's metadata
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or [])
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[str, int, int, Any]] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, messages in batch.items():
                out.extend((tp.topic, tp.partition, m.offset, m.value) for m in messages)
            if batch:
                quiet_since = time.monotonic()
        return out
    finally:
        await consumer.stop()


# --- the test ---------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_fault_matrix(
    chaos_cluster: Cluster, chaos_broker: Server, chaos_redis: Server, tmp_path: Path
) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    settings = chaos_cluster.settings
    params = reference_params(settings.kpi_params)
    data = build_stream(chaos_cluster, rng)
    good = [(str(e["type"]), to_json_line(e).rstrip()) for e in data.events]
    newest_ms = max(event_time_ms(e) for e in data.events)
    last_final = final_day(newest_ms, DAY_MS, None)  # once every partition is idle
    assert last_final is not None
    last = to_date(last_final)
    pool = ReferencePool(good, params)
    pool.submit([last - timedelta(days=n) for n in range(settings.history_days)])

    faults = plan(rng)
    points = fault_points(rng, len(faults), len(data.records))
    holds = hold_points(points)
    producer = Producer(settings, data.records, holds)
    m = Matrix(chaos_cluster, chaos_broker, chaos_redis, data, producer)
    started = time.monotonic()
    report = tmp_path / "recovery.txt"
    failures: list[str] = []
    try:
        m.start("a")
        m.start("b")
        producer.start()
        for k, ((case, name, action), at) in enumerate(zip(faults, points, strict=True)):
            run_fault(m, case, name, action, at)
            producer.release(holds[k] if k < len(holds) else -1)
        producer.release_all()
        producer.done.wait(600)
        m.raise_producer_error()
        failures += final_checks(m, pool, params, last)
        ended = [f"once the stream ended: {f}" for f in failures]
        m.ended = ended or ["once the stream ended: every check held"]
    finally:
        producer.release_all()
        pool.close()
        took = time.monotonic() - started
        text = f"fault matrix, CHAOS_SEED={seed}, {took:.0f} s\n{m.table()}\n"
        report.write_text(f"{text}\n{m.details()}\n")
        print(f"\n{text}(details: {report})")
    problems = [o for o in m.outcomes if o.problem]
    assert not problems and not failures, m.table()


def final_checks(m: Matrix, pool: ReferencePool, params: Any, last: date) -> list[str]:
    """The checks once the stream has ended; what failed (nothing: all held)."""
    failures: list[str] = []
    for check in (
        lambda: totals_are_exact(m),
        lambda: every_final_day_is_the_reference(m, pool, last),
        lambda: open_day_is_the_reference(m, params),
    ):
        try:
            check()
        except (AssertionError, NotYet) as failed:
            failures.append(str(failed)[:2000])
    return failures


def totals_are_exact(m: Matrix) -> None:
    """Every event applied once; every hostile record rejected once, with its
    reason, and dead-lettered; no other rejection (no late event)."""
    settings = m.cluster.settings
    log = asyncio.run(read_topics(settings, list(settings.topics.values())))
    assert len(log) >= len(m.stream.records), f"{len(log)} records on the broker"
    hostile = {(t, p, o): m.stream.hostile[v] for t, p, o, v in log if v in m.stream.hostile}
    want_totals = expected_totals([v for _, _, _, v in log if v not in m.stream.hostile])
    want_rejected = Counter(hostile.values())
    deadline, got = time.monotonic() + 120, None
    while time.monotonic() < deadline:
        try:
            got = sum_totals(list(m.live.values()), m.partitions)
        except NotYet:
            time.sleep(1)
            continue
        if got == (want_totals, want_rejected):
            break
        time.sleep(1)
    assert got is not None, "no worker answers /totals"
    assert got[0] == want_totals, f"totals {got[0]}, the oracle's {want_totals}"
    assert got[1] == want_rejected, (
        f"rejections beyond the hostile records: {dict(got[1] - want_rejected)}, "
        f"hostile records not rejected: {dict(want_rejected - got[1])}"
    )
    letters = asyncio.run(read_topics(settings, [settings.topic_dead_letter]))
    lettered = {}
    for _, _, _, value in letters:
        letter = orjson.loads(value)
        lettered[letter["topic"], letter["partition"], letter["offset"]] = letter["reason"]
    assert lettered == hostile, (
        f"dead letters of no hostile record: {len(lettered.keys() - hostile.keys())}, "
        f"hostile records without a dead letter: {len(hostile.keys() - lettered.keys())}"
    )


def every_final_day_is_the_reference(m: Matrix, pool: ReferencePool, last: date) -> None:
    """Every final day kept, on every worker, is the brute-force reference (the
    watermark aside); a day that is not is charged to the fault it closed after."""
    workers = list(m.live.values())
    wait_final(workers[0], last)
    days = [last - timedelta(days=n) for n in range(m.cluster.settings.history_days)][::-1]
    assert kept_days(workers[0]) == [d.isoformat() for d in days], "the kept days"
    differ: dict[date, str] = {}
    for day in days:
        want = pool.document(day)
        for worker in workers:
            doc = get(worker, f"/kpis?as_of={day}")
            try:
                assert doc.pop("final") is True
                assert_same(without_watermark(doc), want, f"{day} on {worker.url}")
            except AssertionError as wrong:
                differ.setdefault(day, str(wrong).splitlines()[0][:200])
    for day, why in differ.items():
        since = [o for o in m.outcomes if o.stream_day - timedelta(days=3) <= day]
        if since:
            outcome = since[-1]
            outcome.differ += 1
            outcome.problem = f"{outcome.differ} final days differ from the reference: {why}"
    if differ:
        first = min(differ)
        raise AssertionError(
            f"{len(differ)} final days differ from the reference, first {first}: {differ[first]}"
        )


def open_day_is_the_reference(m: Matrix, params: Any) -> None:
    lines = [(str(e["type"]), to_json_line(e).rstrip()) for e in m.stream.events]
    events = decode_events(lines)
    for worker in m.live.values():
        open_day_settles_on_the_reference(worker, m.stream.events, events, params)


def sum_totals(workers: list[WorkerHandle], partitions: int) -> tuple[dict[str, Any], Counter[str]]:
    """The workers' /totals summed (each partition owned by exactly one)."""
    totals = [get(w, "/totals") for w in workers]
    owned = sorted(p for t in totals for p in t["partitions"])
    if owned != list(range(partitions)):
        raise NotYet(f"partitions {owned}")
    summed = observed(totals[0])
    rejected: Counter[str] = Counter(totals[0]["rejected"])
    for t in totals[1:]:
        more = observed(t)
        summed["events"] = dict(Counter(summed["events"]) + Counter(more["events"]))
        for key in ("customers", "revenue_cents", "points_earned", "points_redeemed"):
            summed[key] += more[key]
        rejected.update(t["rejected"])
    return summed, rejected


def wait_final(worker: WorkerHandle, day: date, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            get(worker, f"/kpis?as_of={day}")
            return
        except NotYet:
            time.sleep(1)
    raise AssertionError(f"{day} never became final\n{worker.log_tail()}")
