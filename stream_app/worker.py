"""The composition root: ``build`` wires one worker, ``run_worker`` runs it.

Read ``build`` top to bottom for the data path: the broker adapter hands poll
batches to the batch ingest, which writes the tables through the changelog
writer; a timer closes days and publishes KPIs to the serving store; the HTTP
views read that store and this worker's status.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import gc
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import faust

from agents.ingest import MARK_INTERVAL_SECONDS, BatchIngest
from stream_app.alerts import AlertStore, SpikeMonitor
from stream_app.app import new_app
from stream_app.day_close import CLOSE_INTERVAL_SECONDS, DayCloser
from stream_app.faust_adapter import FaustBroker
from stream_app.keys import source_name
from stream_app.metrics import WorkerMetrics
from stream_app.pipeline import Pipeline
from stream_app.results_log import KafkaResultsLog
from stream_app.runtime import Readiness, Views, WorkerStatus
from stream_app.serving import ServingStore
from stream_app.settings import Settings
from stream_app.state_layout import check_state_layout
from stream_app.topics import EMBEDDED_CLUSTER_ID, ensure_topics
from stream_app.web import register_views
from tables.state import StateTables, declare_tables


@dataclass(frozen=True)
class Worker:
    app: faust.App
    broker: FaustBroker
    tables: StateTables
    pipeline: Pipeline
    ingest: BatchIngest
    closer: DayCloser
    views: Views


def build(settings: Settings, end_markers: bool = False) -> Worker:
    """One worker, wired. ``end_markers``: see ``FaustBroker``."""
    app = new_app(settings)
    broker = FaustBroker(app, end_markers)
    tables = declare_tables(app, settings)
    pipeline = Pipeline(settings, loader=tables.load)
    metrics = WorkerMetrics()

    # records enter here: every poll batch of the input and rerouted topics
    ingest = BatchIngest(settings, pipeline, tables, broker.writer, metrics)
    broker.consume(ingest)
    every(app, MARK_INTERVAL_SECONDS, "send_markers", ingest.send_markers)

    # days close on a timer; final days and the open day go to the serving store
    store = ServingStore.connect(settings.redis_url, settings.app_id, settings.history_days)
    alerts = AlertStore(store)

    async def send_alert(key: bytes, value: bytes) -> None:
        await app.producer.send_and_wait(settings.topic_alerts, key, value, None, None, None)

    # final results are kept in Kafka before Redis gets them; Redis is their cache
    results = KafkaResultsLog(settings, app.producer.send)

    def backlog() -> list[str]:
        lags = broker.lag(settings.topics.values())
        return [source_name(topic, p) for (topic, p), lag in lags.items() if lag > 0]

    closer = DayCloser(
        settings,
        pipeline,
        store,
        ingest.save_meta,
        ingest.flush,
        results,
        lock=ingest.lock,
        spikes=SpikeMonitor(settings, alerts, results=results),
        send_alert=send_alert,
        metrics=metrics,
        backlog=backlog,
    )
    readiness = Readiness()

    async def close_days() -> None:
        # state recovered for the partitions this worker owns; a tick that stopped
        # on its time budget is followed by the next at once, after a yield
        more = True
        while more and readiness.recovered:
            more = await closer.tick()
            await asyncio.sleep(0)

    every(app, CLOSE_INTERVAL_SECONDS, "close_days", close_days)
    follow_assignment(app, broker, settings, pipeline, ingest.lock, readiness)

    # the HTTP views read the serving store and this worker's status
    def lag() -> dict[tuple[str, int], int]:
        return broker.lag(settings.topics.values())

    status = WorkerStatus(pipeline, closer.status, metrics, readiness, lag)
    views = Views(settings, store, alerts, status)
    register_views(app, views)
    return Worker(app, broker, tables, pipeline, ingest, closer, views)


def every(app: faust.App, seconds: float, name: str, run: Callable[[], Awaitable[None]]) -> None:
    async def timer() -> None:
        await run()

    app.timer(seconds, name=name)(timer)


def follow_assignment(
    app: faust.App,
    broker: FaustBroker,
    settings: Settings,
    pipeline: Pipeline,
    lock: asyncio.Lock,
    readiness: Readiness,
) -> None:
    """The pipeline owns exactly the partitions this worker is assigned. The
    ingest lock: a batch in flight, the markers and a day close's metas finish
    before the partitions change hands."""

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _on_recovered(sender: Any, **kwargs: Any) -> None:
        # Tables are recovered and streams not yet resumed: rebuild derived state.
        async with lock:
            pipeline.assign(broker.owned_partitions(settings.topics.values()))
            readiness.recovered = True

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        readiness.recovered = False
        async with lock:
            pipeline.assign(set())


class DataDirInUse(RuntimeError):
    """Another worker already keeps its state in this directory."""


def lock_data_dir(data_dir: Path) -> IO[bytes]:
    """Hold an exclusive lock on the state directory for the life of the process.

    Two workers on one RocksDB directory corrupt each other's view of which
    changelog offsets are stored locally.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "worker.lock").open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(
            f"another worker is using {data_dir}; give each worker its own "
            "--data-dir (LOYALTY_PULSE_DATA_DIR)"
        ) from None
    return handle


class WebPortInUse(RuntimeError):
    """The HTTP view cannot listen where the settings say."""


def check_web_port(settings: Settings) -> None:
    """Fail early, in one line, when the HTTP view's port is taken.

    Faust binds it only once the worker is running, and a refused bind there
    ends in a long traceback. A server that binds the port between this check
    and Faust's start still gets that traceback; the check is for the common
    case (a second worker on one host, a demo left running).
    """
    host, port = settings.web_host, settings.web_port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            # as aiohttp binds: connections in TIME_WAIT don't block the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise WebPortInUse(
                f"port {port} is in use: set LOYALTY_PULSE_WEB_PORT (--web-port) "
                "or stop the other process"
            ) from None
        why = exc.strerror or str(exc)
        raise WebPortInUse(
            f"cannot listen on {host}:{port} ({why}): check LOYALTY_PULSE_WEB_HOST "
            "and LOYALTY_PULSE_WEB_PORT (--web-port)"
        ) from None


def wants_end_markers(settings: Settings, cluster_id: str | None) -> bool:
    if settings.changelog_end_markers == "auto":
        return cluster_id == EMBEDDED_CLUSTER_ID
    return settings.changelog_end_markers == "on"


def use_uvloop() -> None:
    """The worker's event loop: uvloop where it is installed (Linux, macOS)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop wheels
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())


# Objects allocated between young collections. A worker keeps millions of
# long-lived objects (customer states) and allocates a few per event; at
# Python's default (700) the collector ran ~250 times a second and took a
# fifth of the ingest time. Cycles are still collected, just in larger steps.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


async def prepare_topics(settings: Settings) -> str | None:
    """Refuse state kept for another partition count (state_layout.py), then
    create the topics; returns the broker's cluster id. The state check comes
    first: after a partition change it is what the operator must act on."""
    await check_state_layout(settings)
    return await ensure_topics(settings)


def run_worker(settings: Settings) -> None:
    """Create the topics, then run the Faust worker until SIGINT/SIGTERM."""
    check_web_port(settings)
    lock = lock_data_dir(settings.data_dir)
    try:
        cluster_id = asyncio.run(prepare_topics(settings))
        use_uvloop()
        tune_gc()
        worker = build(settings, wants_end_markers(settings, cluster_id))
        faust_worker = faust.Worker(worker.app, loglevel=settings.log_level, quiet=True)
        # aiokafka logs a debug record per request; building them costs ~3% of ingest.
        logging.getLogger("aiokafka").setLevel(
            max(logging.INFO, logging.getLevelName(settings.log_level.upper()))
        )
        faust_worker.execute_from_commandline()
    finally:
        lock.close()
