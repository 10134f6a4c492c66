"""Ingest benchmark: one worker vs a raw aiokafka consume-and-decode baseline.

Runs everything on an embedded broker and a Redis of its own and prints, from
one run: events/s of the baseline and of one worker draining a backlog, their
ratio, the event-to-/kpis latency (p50, p99) of live traffic at a fixed rate,
and the worker's peak memory per 100k customers. Not a test: figures depend
on the machine.

    python -m benchmarks.ingest --events 300000 --customers 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from loyalty_pulse_dev.broker import start_broker
from loyalty_pulse_dev.processes import free_port, spawn
from loyalty_pulse_dev.processes import stop as stop_process
from loyalty_pulse_dev.redis_server import start_redis
from loyalty_pulse_dev.simulator import SimulationConfig, generate, to_json_line
from stream_app.contract import EventType, Rejected, decode
from stream_app.kafka_security import client_kwargs
from stream_app.pipeline import partition_for
from stream_app.producer import EventSender, Throttle
from stream_app.settings import Settings


def events(count: int, customers: int) -> list[tuple[EventType, bytes, bytes]]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=800)
    out = []
    for event in generate(SimulationConfig(customers=customers, seed=7, start=start)):
        out.append(
            (
                EventType(str(event["type"])),
                str(event["customer_id"]).encode(),
                to_json_line(event).rstrip(),
            )
        )
        if len(out) == count:
            return out
    return out


async def produce(settings: Settings, records: list[tuple[EventType, bytes, bytes]]) -> None:
    async with EventSender(settings) as sender:
        for kind, key, value in records:
            await sender.send(kind, key, value)


async def baseline(settings: Settings, total: int) -> float:
    """events/s of consuming every input record and decoding it, nothing else."""
    topics = {t: k for k, t in settings.topics.items()}
    consumer = AIOKafkaConsumer(
        *topics,
        **client_kwargs(settings),
        group_id=f"{settings.app_id}-baseline",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
    )
    await consumer.start()
    try:
        seen, started, contract = 0, 0.0, settings.contract
        now = time.time_ns() // 1_000_000
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            started = started or time.perf_counter()
            for tp, records in batch.items():
                kind = topics[tp.topic]
                for record in records:
                    if isinstance(decode(kind, record.value, now, contract), Rejected):
                        raise RuntimeError("the benchmark's events must all be valid")
                seen += len(records)
        return total / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def start_worker(settings: Settings, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        "LOYALTY_PULSE_BROKER": settings.broker,
        "LOYALTY_PULSE_APP_ID": settings.app_id,
        "LOYALTY_PULSE_TOPIC_PURCHASES": settings.topic_purchases,
        "LOYALTY_PULSE_TOPIC_ENROLLMENTS": settings.topic_enrollments,
        "LOYALTY_PULSE_TOPIC_REDEMPTIONS": settings.topic_redemptions,
        "LOYALTY_PULSE_TOPIC_DEAD_LETTER": settings.topic_dead_letter,
        "LOYALTY_PULSE_REDIS_URL": settings.redis_url,
        "LOYALTY_PULSE_WEB_PORT": str(port),
        "LOYALTY_PULSE_DATA_DIR": str(workdir / settings.app_id),
        "LOYALTY_PULSE_LOG_LEVEL": "warning",
    }
    with (workdir / f"{settings.app_id}.log").open("wb") as log:
        cmd = [sys.executable, "-m", "stream_app.cli", "worker"]
        proc = spawn(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/totals"
    while not _owns_partitions(url):
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited; see {workdir / (settings.app_id + '.log')}")
        time.sleep(0.2)
    return proc, url


def measure_worker(proc: subprocess.Popen[bytes], url: str, total: int) -> float:
    """events/s from the first applied event to the last."""
    first_at, first_count = 0.0, 0
    while True:
        applied = _applied(url)
        if applied and not first_at:
            first_at, first_count = time.perf_counter(), applied
        if applied >= total:
            return (applied - first_count) / max(time.perf_counter() - first_at, 1e-9)
        if proc.poll() is not None:
            raise RuntimeError("the worker exited during the run")
        time.sleep(0.1)


def _owns_partitions(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return bool(orjson.loads(resp.read())["partitions"])
    except OSError:
        return False


def _applied(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return int(sum(orjson.loads(resp.read())["events"].values()))
    except OSError:
        return 0


def _memory(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def latency(settings: Settings, workdir: Path, rate: float, seconds: float) -> list[float]:
    """Seconds from sending each purchase until /kpis counts it, live traffic at ``rate``."""
    proc, totals_url = start_worker(settings, workdir)
    kpis_url = totals_url.replace("/totals", "/kpis")
    try:
        asyncio.run(_warm_up(settings))
        base = _wait_for_orders(kpis_url, at_least=1, timeout_s=90)
        sent_at: list[float] = []
        seen: list[tuple[float, int]] = []
        stop = threading.Event()
        poller = threading.Thread(target=_poll_orders, args=(kpis_url, seen, stop))
        poller.start()
        try:
            asyncio.run(_live_purchases(settings, rate, seconds, sent_at))
            _wait_for_orders(kpis_url, at_least=base + len(sent_at), timeout_s=60)
        finally:
            stop.set()
            poller.join()
    finally:
        stop_process(proc)
    out, k = [], 0
    for i, sent in enumerate(sent_at):
        while k < len(seen) and seen[k][1] < base + i + 1:
            k += 1
        if k < len(seen):
            out.append(seen[k][0] - sent)
    return out


async def _warm_up(settings: Settings) -> None:
    """One event on every input partition, so the stream watermark exists at once."""
    now = time.time_ns() // 1_000_000
    async with EventSender(settings) as sender:
        for kind in EventType:
            for p in range(settings.partitions):
                customer = _customer_on(p, settings.partitions)
                event = {"event_id": f"warm-{kind.value}-{p}", "customer_id": customer}
                event |= {"occurred_at": now, "amount": 1.0, "points": 1}
                await sender.send(kind, customer.encode(), orjson.dumps(event))


def _customer_on(partition: int, partitions: int) -> str:
    return next(
        c for c in (f"warm-{n}" for n in range(10_000)) if partition_for(c, partitions) == partition
    )


async def _live_purchases(
    settings: Settings, rate: float, seconds: float, sent_at: list[float]
) -> None:
    throttle = Throttle(rate)
    async with EventSender(settings) as sender:
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            await throttle.wait()
            customer = f"live-{n % 20_000}"
            event = {"event_id": f"live-{n}", "customer_id": customer, "amount": 10.0}
            event["occurred_at"] = time.time_ns() // 1_000_000
            sent_at.append(time.perf_counter())
            await sender.send(EventType.PURCHASE, customer.encode(), orjson.dumps(event))
            n += 1


def _orders(kpis_url: str) -> int | None:
    try:
        with urllib.request.urlopen(kpis_url, timeout=2) as resp:  # noqa: S310 - loopback
            return int(orjson.loads(resp.read())["windows"]["30d"]["orders"])
    except OSError:
        return None


def _poll_orders(kpis_url: str, seen: list[tuple[float, int]], stop: threading.Event) -> None:
    while not stop.is_set():
        orders = _orders(kpis_url)
        if orders is not None:
            seen.append((time.perf_counter(), orders))
        time.sleep(0.02)


def _wait_for_orders(kpis_url: str, at_least: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        orders = _orders(kpis_url)
        if orders is not None and orders >= at_least:
            return orders
        time.sleep(0.1)
    raise RuntimeError(f"/kpis did not reach {at_least} orders within {timeout_s:.0f}s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=5000, help="live events/s for latency")
    parser.add_argument("--latency-seconds", type=float, default=20)
    args = parser.parse_args(argv)
    port, redis_port = free_port(), free_port()
    broker, redis = start_broker(port), start_redis(redis_port)
    try:
        with tempfile.TemporaryDirectory(prefix="lp-bench-") as tmp:
            settings = Settings(
                broker=f"127.0.0.1:{port}",
                app_id="bench",
                data_dir=Path(tmp),
                redis_url=f"redis://127.0.0.1:{redis_port}/0",
            )
            records = events(args.events, args.customers)
            print(f"producing {len(records):,} events…", file=sys.stderr)
            asyncio.run(produce(settings, records))
            print("draining them with one worker…", file=sys.stderr)
            proc, url = start_worker(settings, Path(tmp))
            try:
                idle = _memory(proc.pid, "VmRSS")
                rate = measure_worker(proc, url, len(records))
                peak = _memory(proc.pid, "VmHWM")
            finally:
                stop_process(proc)
            print("raw aiokafka baseline…", file=sys.stderr)
            base = asyncio.run(baseline(settings, len(records)))
            customers = len({key for _, key, _ in records})
            print(f"live traffic at {args.rate:g}/s for latency…", file=sys.stderr)
            live = Settings(  # not model_copy: it would keep cached topic maps
                broker=settings.broker,
                app_id="bench-live",
                data_dir=Path(tmp),
                redis_url=settings.redis_url,
                topic_purchases="live.purchases",
                topic_enrollments="live.enrollments",
                topic_redemptions="live.redemptions",
                topic_dead_letter="live.dead-letter",
            )
            delays = latency(live, Path(tmp), args.rate, args.latency_seconds)
    finally:
        stop_process(redis)
        stop_process(broker)
    per_100k = (peak - idle) / customers * 100_000 / 2**20
    print(f"events                      {len(records):>12,}")
    print(f"customers                   {customers:>12,}")
    print(f"baseline consume+decode /s  {base:>12,.0f}")
    print(f"worker events/s             {rate:>12,.0f}")
    print(f"worker / baseline           {rate / base:>12.3f}")
    print(
        f"event-to-/kpis at {args.rate:>6,.0f}/s  p50 {percentile(delays, 0.5):.3f} s  "
        f"p99 {percentile(delays, 0.99):.3f} s  ({len(delays):,} events)"
    )
    print(f"worker peak RSS             {peak / 2**20:>9,.0f} MiB (idle {idle / 2**20:,.0f} MiB)")
    print(f"state memory / 100k cust.   {per_100k:>9,.0f} MiB (peak - idle, scaled)")
    print(f"python {sys.version.split()[0]}, cpus {os.cpu_count()}")


if __name__ == "__main__":
    main()
