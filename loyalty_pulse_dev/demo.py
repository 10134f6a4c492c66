"""Broker + worker + simulated traffic on the embedded defaults, in one command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from loyalty_pulse_dev.broker import start_broker
from loyalty_pulse_dev.processes import port_is_free, spawn, stop
from loyalty_pulse_dev.redis_server import start_redis
from loyalty_pulse_dev.simulator import SimulationConfig
from loyalty_pulse_dev.traffic import simulate_to_broker, stop_on_signals
from stream_app.producer import EventSender
from stream_app.settings import Settings, env_name
from stream_app.topics import ensure_topics

console = Console(stderr=True)

# The demo's program economics (README: "Why the demo's ROI is what it is"). The
# simulator decides what customers spend and redeem; the business's side is set here.
DEMO_SEED = 7
"""A representative year: at the default 5,000 customers its lift (11 %) and ROI
(~100 %) are near the model's expectation. With ~350 control customers both are
noisy: over seeds, the first year's ROI has a standard deviation of ~100 points."""
MARGIN = Decimal("0.40")
"""Gross margin on revenue: a specialty retailer's."""
FIXED_COST_PER_CUSTOMER_DAY = Decimal("0.003")
"""The program's running cost (platform, app, staff) per simulated customer and day."""


def program_economics(customers: int) -> dict[str, Decimal]:
    """The settings the demo gives its worker: margin and running cost per day."""
    fixed = (FIXED_COST_PER_CUSTOMER_DAY * customers).quantize(Decimal("0.01"))
    return {"margin": MARGIN, "program_fixed_cost_per_day": fixed}


def _worker_env(settings: Settings) -> dict[str, str]:
    return {
        "LOYALTY_PULSE_BROKER": settings.broker,
        "LOYALTY_PULSE_REDIS_URL": settings.redis_url,
        "LOYALTY_PULSE_WEB_PORT": str(settings.web_port),
        "LOYALTY_PULSE_DATA_DIR": str(settings.data_dir),
        "LOYALTY_PULSE_LOG_LEVEL": "warning",
        "LOYALTY_PULSE_MARGIN": str(settings.margin),
        "LOYALTY_PULSE_PROGRAM_FIXED_COST_PER_DAY": str(settings.program_fixed_cost_per_day),
    }


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait until the worker owns partitions (its consumer group has formed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/totals", timeout=2) as resp:  # noqa: S310
                if orjson.loads(resp.read())["partitions"]:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the worker was not ready after {timeout_s:.0f}s")


def run_demo(
    broker_port: int,
    web_port: int,
    redis_port: int,
    customers: int,
    speed: float,
    rate: float,
    days_back: int,
) -> None:
    flags = {"--broker-port": broker_port, "--web-port": web_port, "--redis-port": redis_port}
    for flag, port in flags.items():
        if not port_is_free("127.0.0.1", port):
            raise RuntimeError(f"port {port} is in use: pick another with {flag}")
    workdir = Path(tempfile.mkdtemp(prefix="loyalty-pulse-demo-"))
    economics: dict[str, Any] = {  # an economics setting in the environment wins
        name: value
        for name, value in program_economics(customers).items()
        if env_name(name) not in os.environ
    }
    settings = Settings(
        broker=f"127.0.0.1:{broker_port}",
        web_port=web_port,
        data_dir=workdir / "worker",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        **economics,
    )
    failed = True

    def clean_up() -> None:
        if not failed:  # on failure the logs stay for the user to read
            shutil.rmtree(workdir, ignore_errors=True)

    with ExitStack() as stack:
        stack.callback(clean_up)

        try:
            console.print(f"[bold]loyalty-pulse demo[/] — logs in {workdir}")
            broker_log = stack.enter_context((workdir / "broker.log").open("wb"))
            broker = start_broker(broker_port, log=broker_log)
            stack.callback(stop, broker)
            console.print(f"  broker   127.0.0.1:{broker_port} (embedded Tansu, in memory)")
            redis = start_redis(redis_port)
            stack.callback(stop, redis)
            console.print(f"  redis    127.0.0.1:{redis_port} (the demo's own, in memory)")
            asyncio.run(ensure_topics(settings))
            log = stack.enter_context((workdir / "worker.log").open("wb"))
            worker = spawn(
                [sys.executable, "-m", "stream_app.cli", "worker"],
                env=_worker_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(stop, worker)
            console.print("  worker   starting (joining its consumer group takes a few seconds)…")
            _wait_ready(settings.web_url, worker, timeout_s=90)
            start = datetime.now(UTC).replace(
                hour=0, minute=0, second=0, microsecond=0
            ) - timedelta(days=days_back)
            config = SimulationConfig(customers=customers, seed=DEMO_SEED, start=start)
            url = settings.web_url
            console.print(f"\n  [bold green]Dashboard: {url}/[/]  (open it in a browser)")
            console.print(f"  [bold green]KPIs:      {url}/kpis[/]  (days close as time passes)")
            console.print(f"  [bold green]History:   {url}/kpis/history?fields=churn.churn_rate[/]")
            console.print(f"  [bold green]Totals:    {url}/totals[/]")
            console.print(f"  [bold green]Alerts:    {url}/alerts[/]  (churn spikes)")
            console.print(f"  [bold green]Metrics:   {url}/metrics[/]  (Prometheus)\n")
            console.print(
                f"  traffic  {customers} customers from {start.date()} at {speed:g} event-days/s "
                f"(max {rate:g} events/s); Ctrl-C stops everything"
            )
            console.print(
                f"  program  margin {float(settings.margin):.0%}, running cost "
                f"{settings.program_fixed_cost_per_day:,.2f} {settings.currency}/day "
                "(README: the demo's ROI)"
            )
            asyncio.run(_traffic(settings, config, speed, rate))
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP, while starting too
            _say("\nstopping…")
        failed = False  # an interrupt is no failure: the children stop, the temp dir goes


def _say(text: str) -> None:
    """Print unless the terminal is gone (a closed terminal sends SIGHUP, and
    writing to it then fails): stopping must not fail on a message."""
    with contextlib.suppress(OSError):
        console.print(text, highlight=False)


async def _traffic(settings: Settings, config: SimulationConfig, speed: float, rate: float) -> None:
    last = [0.0]

    def progress(occurred_ms: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 5:
            last[0] = now
            day = datetime.fromtimestamp(occurred_ms / 1000, UTC).date()
            _say(f"  event time {day}  sent {sender.total:,}")

    stop = stop_on_signals()
    async with EventSender(settings) as sender:
        await simulate_to_broker(
            config, sender, speed=speed, rate=rate, stop=stop, on_event=progress
        )
    _say("\nstopping…")
