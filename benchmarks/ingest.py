"""Ingest benchmark: one worker vs a raw aiokafka consume-and-decode baseline.

Runs everything on an embedded broker of its own and prints, from one run:
events/s of the baseline and of one worker, their ratio, and the worker's peak
memory per 100k customers. Not a test: figures depend on the machine.

    python -m benchmarks.ingest --events 300000 --customers 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from stream_app.broker import start_broker
from stream_app.contract import EventType, Rejected, decode
from stream_app.processes import free_port, spawn, stop
from stream_app.producer import EventSender
from stream_app.settings import Settings
from stream_app.simulator import SimulationConfig, generate, to_json_line


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
        bootstrap_servers=settings.broker,
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
        "LOYALTY_PULSE_WEB_PORT": str(port),
        "LOYALTY_PULSE_DATA_DIR": str(workdir / "worker"),
        "LOYALTY_PULSE_LOG_LEVEL": "warning",
    }
    with (workdir / "worker.log").open("wb") as log:
        cmd = [sys.executable, "-m", "stream_app.cli", "worker"]
        proc = spawn(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/totals"
    while not _owns_partitions(url):
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited; see {workdir / 'worker.log'}")
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--customers", type=int, default=20_000)
    args = parser.parse_args(argv)
    port = free_port()
    broker = start_broker(port)
    try:
        with tempfile.TemporaryDirectory(prefix="lp-bench-") as tmp:
            settings = Settings(broker=f"127.0.0.1:{port}", app_id="bench", data_dir=Path(tmp))
            records = events(args.events, args.customers)
            proc, url = start_worker(settings, Path(tmp))
            try:
                idle = _memory(proc.pid, "VmRSS")
                asyncio.run(produce(settings, records))
                rate = measure_worker(proc, url, len(records))
                peak = _memory(proc.pid, "VmHWM")
            finally:
                stop(proc)
            base = asyncio.run(baseline(settings, len(records)))
            customers = len({key for _, key, _ in records})
    finally:
        stop(broker)
    per_100k = (peak - idle) / customers * 100_000 / 2**20
    print(f"events                      {len(records):>12,}")
    print(f"customers                   {customers:>12,}")
    print(f"baseline consume+decode /s  {base:>12,.0f}")
    print(f"worker events/s             {rate:>12,.0f}")
    print(f"worker / baseline           {rate / base:>12.3f}")
    print(f"worker peak RSS             {peak / 2**20:>9,.0f} MiB (idle {idle / 2**20:,.0f} MiB)")
    print(f"state memory / 100k cust.   {per_100k:>9,.0f} MiB (peak - idle, scaled)")
    print(f"python {sys.version.split()[0]}, cpus {os.cpu_count()}")


if __name__ == "__main__":
    main()
