"""Scale benchmark: one worker as the number of customers grows.

For each size (N customers x E events each over D days) on an embedded broker
and a Redis of its own, from one run: events/s of one worker draining the
backlog and of a raw aiokafka consume+decode baseline over the same records,
their ratio, the worker's RSS after the drain, bytes on disk per customer,
changelog bytes written per input event (the embedded broker's end markers
apart), and the time to ready after a SIGKILL and restart with the same data
directory, then after a restart with an empty one (state restored from the
changelog alone). Not a test: figures depend on the machine.
``benchmarks/ingest.py`` measures latency.

    python -m benchmarks.scale                         # 22k, 300k and 1M customers
    python -m benchmarks.scale --sizes 5000x4 --days 30
    python -m benchmarks.scale --sizes 1000000x2 --no-restarts --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks import profile
from benchmarks.ingest import _applied, _memory, baseline, start_worker
from loyalty_pulse_dev.broker import start_broker
from loyalty_pulse_dev.processes import free_port
from loyalty_pulse_dev.processes import stop as stop_process
from loyalty_pulse_dev.redis_server import start_redis
from stream_app.contract import EventType
from stream_app.kafka_security import client_kwargs
from stream_app.keys import END_MARKER_KEY
from stream_app.producer import EventSender
from stream_app.settings import Settings
from tables.state import TABLE_NAMES

DEFAULT_SIZES = "22000x14,300000x3,1000000x2"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Size:
    customers: int
    per_customer: int

    @staticmethod
    def parse(text: str) -> Size:
        customers, _, per = text.lower().partition("x")
        return Size(int(customers.replace("_", "")), int(per or 2))


@dataclass(frozen=True)
class Result:
    size: Size
    events: int
    worker_rate: float
    baseline_rate: float
    rss: int
    disk_per_customer: float
    changelog_per_event: float
    markers_per_event: float  # the embedded broker's end markers, not in the above
    ready_after_kill: float | None  # None: not measured (--no-restarts)
    ready_from_changelog: float | None


@dataclass(frozen=True)
class Synthetic:
    """The events of a size, kept as numpy columns (~40 B per event: 5M customers
    fit in memory) and encoded one at a time as they are produced."""

    times: np.ndarray  # occurred_at, epoch ms
    kinds: np.ndarray  # 0 purchase, 1 enrollment, 2 redemption
    customers: np.ndarray
    ids: np.ndarray  # n of event id "e{n}"
    cents: np.ndarray  # purchase amounts in cents (0 for the others)

    def __len__(self) -> int:
        return len(self.times)

    def records(self) -> Iterator[tuple[EventType, bytes, bytes]]:
        """(topic's event type, key, value) in time order."""
        kinds = (EventType.PURCHASE, EventType.ENROLLMENT, EventType.REDEMPTION)
        columns = zip(
            self.times.tolist(),
            self.kinds.tolist(),
            self.customers.tolist(),
            self.ids.tolist(),
            self.cents.tolist(),
            strict=True,
        )
        for at, kind, c, n, cents in columns:
            customer = f"c{c}"
            event: dict[str, object] = {
                "event_id": f"e{n}",
                "customer_id": customer,
                "occurred_at": at,
            }
            if kind == 0:
                amount = cents / 100
                event["amount"] = amount
                event["points_earned"] = int(amount)
                event["channel"] = "pos" if n % 3 else "web"
                event["store_id"] = f"s{c % 32}"
            elif kind == 2:
                event["points"] = 5
            yield kinds[kind], customer.encode(), orjson.dumps(event)


def synthetic_events(size: Size, days: int, seed: int = 7) -> Synthetic:
    """Every customer's purchases spread over ``days`` ending now, one in five
    enrolled first, one in ten of those redeeming; interleaved by time."""
    rng = np.random.default_rng(seed)
    end = int(datetime.now(UTC).timestamp() * 1000) - DAY_MS
    start = end - days * DAY_MS
    n_c, each = size.customers, size.per_customer
    customer = np.arange(n_c, dtype=np.int64)
    bought = np.sort(rng.integers(start, end, size=(n_c, each)), axis=1)
    enrolls, redeems = customer % 5 == 0, customer % 50 == 0
    # event ids numbered customer by customer: enrollment, purchases, redemption
    first_id = np.concatenate(([0], np.cumsum(each + enrolls + redeems)[:-1]))
    purchase_ids = first_id[:, None] + enrolls[:, None] + np.arange(each)
    parts = [
        (bought.ravel(), 0, np.repeat(customer, each), purchase_ids.ravel()),
        (
            bought[enrolls, 0] - rng.integers(1, DAY_MS, size=int(enrolls.sum())),
            1,
            customer[enrolls],
            first_id[enrolls],
        ),
        (bought[redeems, -1] + 1, 2, customer[redeems], first_id[redeems] + 1 + each),
    ]
    times = np.concatenate([p[0] for p in parts])
    order = np.argsort(times, kind="stable")
    kinds = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int8) for p in parts])
    cents = np.zeros(len(times), dtype=np.int64)
    cents[: bought.size] = rng.integers(500, 12_001, size=bought.size)
    return Synthetic(
        times[order],
        kinds[order],
        np.concatenate([p[2] for p in parts])[order],
        np.concatenate([p[3] for p in parts])[order],
        cents[order],
    )


async def produce(settings: Settings, records: Iterable[tuple[EventType, bytes, bytes]]) -> None:
    async with EventSender(settings) as sender:
        for kind, key, value in records:
            await sender.send(kind, key, value)
    if sender.failed:
        raise RuntimeError(f"{sender.failed} events were not produced: {sender.first_error}")


async def changelog_bytes(settings: Settings) -> tuple[int, int]:
    """Key and value bytes of the records in the app's changelog topics: the
    tables' own, and the embedded broker's end markers (``END_MARKER_KEY``; a
    worker on Apache Kafka writes none)."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), group_id=None, enable_auto_commit=False, max_poll_records=10_000
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(f"{settings.app_id}-{table}-changelog", p)
            for table in TABLE_NAMES
            for p in range(settings.partitions)
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        tables = markers = 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for r in records:
                    size = len(r.key or b"") + len(r.value or b"")
                    if r.key == END_MARKER_KEY:
                        markers += size
                    else:
                        tables += size
        return tables, markers
    finally:
        await consumer.stop()


def drain(proc: subprocess.Popen[bytes], url: str, total: int, timeout_s: float) -> float:
    """events/s from the first applied event seen to the last (from the worker's
    start when one poll already saw them all: a tiny run)."""
    started = time.perf_counter()
    first_at, first_count, seen = 0.0, 0, 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        applied = _applied(url)  # 0 when the worker does not answer within 2 s
        seen = max(seen, applied)
        if applied and not first_at:
            first_at, first_count = time.perf_counter(), applied
        if applied >= total:
            if first_count >= total:
                return total / (time.perf_counter() - started)
            return (applied - first_count) / max(time.perf_counter() - first_at, 1e-9)
        if proc.poll() is not None:
            raise RuntimeError("the worker exited during the run")
        time.sleep(0.1)
    raise RuntimeError(f"the worker applied {seen:,} of {total:,} events in {timeout_s:.0f} s")


def ready(readyz: str) -> bool:
    try:
        with urllib.request.urlopen(readyz, timeout=2) as resp:  # noqa: S310 - loopback
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def time_to_ready(
    settings: Settings, workdir: Path, total: int, profile_file: Path | None = None
) -> float:
    """Start a worker on ``settings``' data dir: seconds until /readyz answers 200
    and /totals counts every event again (with py-spy over it into ``profile_file``)."""
    started = time.monotonic()
    proc, url = start_worker(settings, workdir)
    spy = None
    if profile_file is not None:
        time.sleep(1)  # py-spy attached to an interpreter still starting samples nothing
        spy = profile.record(proc.pid, profile_file)
    try:
        readyz = url.replace("/totals", "/readyz")
        while not (ready(readyz) and _applied(url) >= total):
            if proc.poll() is not None:
                raise RuntimeError("the restarted worker exited")
            if time.monotonic() - started > 900:
                raise RuntimeError("the restarted worker was not ready within 900 s")
            time.sleep(0.1)
        took = time.monotonic() - started
        if spy is not None and profile_file is not None:
            profile.stop(spy)
            say(f"py-spy until ready ({profile_file}):\n{profile.summary(profile_file)}")
        return took
    finally:
        if spy is not None and spy.poll() is None:
            profile.stop(spy)
        stop_process(proc)


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_size(
    size: Size,
    days: int,
    broker: str,
    redis_url: str,
    workdir: Path,
    restarts: bool = True,
    profile_dir: Path | None = None,
) -> Result:
    app_id = f"scale-{size.customers}x{size.per_customer}"  # topics of its own per size
    settings = Settings(
        broker=broker,
        app_id=app_id,
        data_dir=workdir,
        redis_url=redis_url,
        topic_purchases=f"{app_id}.purchases",
        topic_enrollments=f"{app_id}.enrollments",
        topic_redemptions=f"{app_id}.redemptions",
        topic_dead_letter=f"{app_id}.dead-letter",
        topic_alerts=f"{app_id}.alerts",
    )
    say(f"{size.customers:,} customers x {size.per_customer}: generating events…")
    records = synthetic_events(size, days)
    say(f"producing {len(records):,} events…")
    asyncio.run(produce(settings, records.records()))
    say("draining them with one worker…")
    proc, url = start_worker(settings, workdir)
    spy = profile_file = None
    if profile_dir is not None:
        profile_file = profile_dir / f"profile-{size.customers}x{size.per_customer}.txt"
        spy = profile.record(proc.pid, profile_file)
    try:
        # at least 2,000 events/s, or something is wrong
        rate = drain(proc, url, len(records), timeout_s=max(1800, len(records) / 2000))
        if spy is not None and profile_file is not None:
            profile.stop(spy)
            say(f"py-spy over the drain ({profile_file}):\n{profile.summary(profile_file)}")
        time.sleep(2)  # the last day-close ticks
        rss = _memory(proc.pid, "VmRSS")
        if restarts:
            say("SIGKILL, then a restart with the same data directory…")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        stop_process(proc)
    state_dir = workdir / app_id
    on_disk = disk_bytes(state_dir)
    after_kill = from_changelog = None
    if restarts:
        after_kill = time_to_ready(
            settings, workdir, len(records), _profile_file(profile_dir, size, "kill")
        )
        say("a restart with an empty data directory (restore from the changelog)…")
        shutil.rmtree(state_dir)
        from_changelog = time_to_ready(
            settings, workdir, len(records), _profile_file(profile_dir, size, "empty")
        )
    say("the changelog's bytes, and the consume+decode baseline…")
    written, markers = asyncio.run(changelog_bytes(settings))
    base = asyncio.run(baseline(settings, len(records)))
    return Result(
        size=size,
        events=len(records),
        worker_rate=rate,
        baseline_rate=base,
        rss=rss,
        disk_per_customer=on_disk / size.customers,
        changelog_per_event=written / len(records),
        markers_per_event=markers / len(records),
        ready_after_kill=after_kill,
        ready_from_changelog=from_changelog,
    )


def _profile_file(profile_dir: Path | None, size: Size, phase: str) -> Path | None:
    if profile_dir is None:
        return None
    return profile_dir / f"profile-{size.customers}x{size.per_customer}-ready-{phase}.txt"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def table(results: list[Result], days: int) -> str:
    head = (
        f"{'customers':>10} {'events':>10} {'worker/s':>9} {'baseline/s':>10} {'ratio':>6} "
        f"{'RSS MiB':>8} {'disk B/cust':>11} {'changelog B/ev':>14} {'markers B/ev':>12} "
        f"{'ready kill s':>12} "
        f"{'ready empty s':>13}"
    )
    lines = [f"one worker, {days} days of events; each row one run", head]
    for r in results:
        lines.append(
            f"{r.size.customers:>10,} {r.events:>10,} {r.worker_rate:>9,.0f} "
            f"{r.baseline_rate:>10,.0f} {r.worker_rate / r.baseline_rate:>6.3f} "
            f"{r.rss / 2**20:>8,.0f} {r.disk_per_customer:>11,.0f} {r.changelog_per_event:>14,.0f} "
            f"{r.markers_per_event:>12,.0f} "
            f"{_seconds(r.ready_after_kill):>12} {_seconds(r.ready_from_changelog):>13}"
        )
    lines.append(f"python {sys.version.split()[0]}, cpus {os.cpu_count()}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"comma-separated CUSTOMERSxEVENTS_EACH (default {DEFAULT_SIZES})",
    )
    parser.add_argument("--days", type=int, default=60, help="days the events span")
    parser.add_argument(
        "--no-restarts", action="store_true", help="skip the two time-to-ready measurements"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy the worker through each drain and restart: raw stacks in DIR, summaries",
    )
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    sizes = [Size.parse(s) for s in args.sizes.split(",") if s.strip()]
    port, redis_port = free_port(), free_port()
    broker, redis = start_broker(port), start_redis(redis_port)
    results: list[Result] = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="lp-scale-") as tmp:
            for size in sizes:
                results.append(
                    run_size(
                        size,
                        args.days,
                        f"127.0.0.1:{port}",
                        f"redis://127.0.0.1:{redis_port}/0",
                        Path(tmp),
                        restarts=not args.no_restarts,
                        profile_dir=args.profile,
                    )
                )
                say(table(results, args.days))
    finally:
        stop_process(redis)
        stop_process(broker)
    print(table(results, args.days))
    print(f"took {time.monotonic() - started:,.0f} s")


if __name__ == "__main__":
    main()
