"""The ``loyalty-pulse`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from stream_app.settings import Settings, env_name, settings_table, unknown_settings

cli = typer.Typer(
    help="Real-time loyalty-program KPIs from Kafka events.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

BrokerOpt = Annotated[
    str | None, typer.Option(help="Bootstrap servers host:port [env LOYALTY_PULSE_BROKER]")
]


def load_settings(**overrides: Any) -> Settings:
    """Settings from env vars, with the flags that were given on top."""
    for warning in unknown_settings(os.environ):
        console.print(f"[bold yellow]warning:[/] {warning}")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(map(setting_problem, exc.errors()))) from None


def setting_problem(error: Any) -> str:
    """A validation error as the variable, the value given and the rule."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message  # a rule across settings: the message names them
    field = str(error["loc"][0])
    return f"{env_name(field)}={error.get('input')!r}: {message}"


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


@cli.command()
def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 9092,
    partitions: Annotated[
        int | None, typer.Option(help="Partitions of the topics it creates [default 8]")
    ] = None,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in memory) in the foreground."""
    from loyalty_pulse_dev.broker import start_broker
    from loyalty_pulse_dev.processes import stop
    from stream_app.topics import ensure_topics

    settings = load_settings(broker=f"127.0.0.1:{port}", partitions=partitions)
    try:
        proc = start_broker(port, log=None)
    except (RuntimeError, TimeoutError) as exc:
        raise fail(str(exc)) from None
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        asyncio.run(ensure_topics(settings))
        console.print(
            f"broker listening on 127.0.0.1:{port}; topics ready with "
            f"{settings.partitions} partitions; Ctrl-C stops it"
        )
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(proc)


@cli.command()
def worker(
    broker: BrokerOpt = None,
    web_port: Annotated[
        int | None, typer.Option(help="HTTP port [env LOYALTY_PULSE_WEB_PORT]")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Local state dir [env LOYALTY_PULSE_DATA_DIR]")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="rocksdb or memory [env LOYALTY_PULSE_STORE]")
    ] = None,
) -> None:
    """Run one worker: consume the input topics, keep state, serve HTTP."""
    from stream_app.state_layout import StateLayoutError
    from stream_app.topics import TopicLayoutError
    from stream_app.worker import DataDirInUse, WebPortInUse, run_worker

    settings = load_settings(broker=broker, web_port=web_port, data_dir=data_dir, store=store)
    try:
        run_worker(settings)
    except (ConnectionError, TopicLayoutError, StateLayoutError, DataDirInUse, WebPortInUse) as exc:
        raise fail(str(exc)) from None


def count_lines(path: Path, chunk: int = 1 << 20) -> int:
    """Lines in a file (a last line without a newline counts), read in chunks."""
    lines, last = 0, b"\n"
    with path.open("rb") as f:
        while block := f.read(chunk):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


@cli.command()
def replay(
    file: Annotated[str, typer.Argument(help="JSON Lines file of events, or - for stdin")],
    rate: Annotated[float | None, typer.Option(help="Events per second at most")] = None,
    broker: BrokerOpt = None,
) -> None:
    """Send a JSON Lines file of events (each with a "type") to the input topics."""
    from stream_app.producer import EventSender
    from stream_app.replay import replay_lines

    settings = load_settings(broker=broker)
    try:
        source: IO[bytes] = sys.stdin.buffer if file == "-" else Path(file).open("rb")  # noqa: SIM115
        show = console.is_terminal
        total = count_lines(Path(file)) if show and file != "-" else None
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    progress = Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
    )

    async def run() -> tuple[Any, Any]:
        async with EventSender(settings) as sender:
            with progress:
                task = progress.add_task("replay", total=total)
                on_line = (lambda: progress.advance(task)) if show else None
                report = await replay_lines(source, sender, rate, on_line=on_line)
        return sender, report

    started = time.monotonic()
    try:
        sender, report = asyncio.run(run())
    except ConnectionError as exc:
        raise fail(str(exc)) from None
    finally:
        source.close()
    elapsed = time.monotonic() - started
    counts = ", ".join(f"{k.value} {n:,}" for k, n in sorted(sender.sent.items()))
    console.print(f"sent {sender.total:,} events ({counts}) in {elapsed:.1f}s", highlight=False)
    if report.skipped:
        console.print(f"[bold red]error:[/] {escape(report.summary())}", highlight=False)
    if sender.failed:
        raise fail(f"{sender.failed} events failed to send; first error: {sender.first_error}")
    if report.skipped:  # the good lines are sent; the exit code says not all were
        raise typer.Exit(1)


def _start_of(day: date | None, days_back: int) -> datetime:
    if day is not None:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_back)


@cli.command()
def simulate(
    customers: Annotated[int, typer.Option(min=1, help="Number of customers")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same traffic")] = 42,
    start: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Event-time start date [default: 365 days ago]"),
    ] = None,
    days: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Event-time days to generate [default: endless to the broker, up to now to a file]",  # noqa: E501
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0, help="Event-time days per wall second (0: as fast as possible)")
    ] = 1.0,
    rate: Annotated[float | None, typer.Option(min=0, help="Events per second at most")] = None,
    output: Annotated[
        str, typer.Option(help="'broker', a file path, or - for stdout (JSON Lines)")
    ] = "broker",
    churn_spike_at: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="Make a churn spike: from this (UTC) day customers stop buying for good; "
            "they count as churned once inactive for the inactivity threshold (90 days)",
        ),
    ] = None,
    spike_strength: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Share of customers the spike takes (their next purchase is lost)"
        ),
    ] = 0.5,
    spike_days: Annotated[
        int, typer.Option(min=1, help="Days the spike lasts; its end resolves the alert")
    ] = 14,
    broker: BrokerOpt = None,
) -> None:
    """Generate realistic POS and webshop loyalty traffic."""
    from loyalty_pulse_dev.simulator import SimulationConfig

    config = SimulationConfig(
        customers=customers,
        seed=seed,
        start=_start_of(start.date() if start else None, 365),
        days=days,
        churn_spike_at=churn_spike_at.date() if churn_spike_at else None,
        spike_strength=spike_strength,
        spike_days=spike_days,
    )
    if output != "broker":
        _simulate_to_file(config, output)
        return
    settings = load_settings(broker=broker)
    _simulate_to_broker(settings, config, speed or None, rate or None)


def _simulate_to_file(config: Any, output: str) -> None:
    from loyalty_pulse_dev.traffic import simulate_to_file, wall_ms

    out: IO[bytes] = sys.stdout.buffer if output == "-" else Path(output).open("wb")  # noqa: SIM115
    try:
        written = simulate_to_file(config, out, until_ms=wall_ms())
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    console.print(f"wrote {written:,} events")


def _simulate_to_broker(
    settings: Settings, config: Any, speed: float | None, rate: float | None
) -> None:
    from loyalty_pulse_dev.traffic import simulate_to_broker, stop_on_signals
    from stream_app.producer import EventSender

    async def run() -> int:
        stop = stop_on_signals()
        async with EventSender(settings) as sender:
            return await simulate_to_broker(config, sender, speed=speed, rate=rate, stop=stop)

    try:
        sent = asyncio.run(run())
    except KeyboardInterrupt:
        console.print("stopped")
        return
    except ConnectionError as exc:
        raise fail(str(exc)) from None
    console.print(f"sent {sent:,} events")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@cli.command()
def demo(
    broker_port: Annotated[int, typer.Option(help="Port of the embedded broker")] = 9092,
    web_port: Annotated[int, typer.Option(help="Port of the worker's HTTP view")] = 6066,
    redis_port: Annotated[int, typer.Option(help="Port of the demo's own Redis")] = 6399,
    customers: Annotated[int, typer.Option(min=1)] = 5000,
    speed: Annotated[float, typer.Option(min=0.01, help="Event-time days per wall second")] = 1.0,
    rate: Annotated[float, typer.Option(min=1, help="Events per second at most")] = 5000,
    days_back: Annotated[int, typer.Option(min=1, help="Simulated history before today")] = 365,
) -> None:
    """Broker + Redis + worker + simulated traffic; prints the URLs of the HTTP view."""
    from loyalty_pulse_dev.demo import run_demo

    # SIGHUP: the terminal closed. Like Ctrl-C and SIGTERM it stops the traffic,
    # the worker, Redis and the broker and removes the demo's temp dir.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        run_demo(broker_port, web_port, redis_port, customers, speed, rate, days_back)
    except (RuntimeError, TimeoutError, ConnectionError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # after SIGHUP there may be no terminal to write to
            console.print("stopped")


@cli.command("settings")
def show_settings(
    markdown: Annotated[bool, typer.Option("--markdown", help="As a Markdown table")] = False,
    env: Annotated[bool, typer.Option("--env", help="As an env file (.env.example)")] = False,
) -> None:
    """List every setting: env var, default, meaning."""
    from stream_app.settings import settings_env_file, settings_markdown

    if markdown or env:
        sys.stdout.write(settings_env_file() if env else settings_markdown() + "\n")
        return
    table = Table("env var", "default", "meaning")
    for row in settings_table():
        table.add_row(*row)
    Console().print(table)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
