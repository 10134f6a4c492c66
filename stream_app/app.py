"""The faust.App built from settings, with its tables, agent and web views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from agents.close_days import register_day_close
from agents.ingest import register_ingest
from stream_app.alerts import AlertStore, SpikeMonitor
from stream_app.dashboard import register_dashboard
from stream_app.day_close import DayCloser
from stream_app.metrics import WorkerMetrics
from stream_app.pipeline import Pipeline
from stream_app.serving import ServingStore
from stream_app.settings import Settings
from stream_app.transport import RewindingTransport
from stream_app.web import register_views
from tables.state import StateTables, declare_tables


@dataclass
class Readiness:
    """Whether the worker's state is recovered for the partitions it owns."""

    recovered: bool = False


@dataclass(frozen=True)
class Runtime:
    app: faust.App
    settings: Settings
    pipeline: Pipeline
    tables: StateTables
    store: ServingStore
    closer: DayCloser
    alerts: AlertStore
    metrics: WorkerMetrics
    readiness: Readiness = field(default_factory=Readiness)


def faust_settings(settings: Settings) -> dict[str, Any]:
    store = "memory://" if settings.store == "memory" else "rocksdb://"
    conf = {
        "broker": "kafka://" + settings.broker.replace(",", ";"),
        "store": store,
        "datadir": str(settings.data_dir),
        "topic_partitions": settings.partitions,
        "topic_allow_declare": True,
        "table_standby_replicas": 0,
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": settings.session_timeout,
        "broker_heartbeat_interval": settings.heartbeat_interval,
        "broker_rebalance_timeout": settings.rebalance_timeout,
        "broker_commit_interval": settings.commit_interval,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "web_bind": settings.web_host,
        "autodiscover": False,
    }
    return conf


def create_app(settings: Settings, end_markers: bool = False) -> Runtime:
    """``end_markers``: end every changelog write with a one-record batch (the
    embedded broker under-reports a changelog's end otherwise; tables/writer.py)."""
    app = faust.App(settings.app_id, **faust_settings(settings))
    app.transport = RewindingTransport(app.conf.broker_consumer, app)

    tables = declare_tables(app, settings)
    pipeline = Pipeline(settings, loader=tables.load)
    metrics = WorkerMetrics()
    ingest = register_ingest(app, settings, pipeline, tables, end_markers, metrics)
    store = ServingStore.connect(settings.redis_url, settings.app_id, settings.history_days)
    alerts = AlertStore(store)

    async def send_alert(key: bytes, value: bytes) -> None:
        await app.producer.send_and_wait(settings.topic_alerts, key, value, None, None, None)

    closer = DayCloser(
        settings,
        pipeline,
        store,
        ingest.save_meta,
        ingest.flush,
        lock=ingest.lock,
        spikes=SpikeMonitor(settings, alerts),
        send_alert=send_alert,
        metrics=metrics,
    )
    runtime = Runtime(app, settings, pipeline, tables, store, closer, alerts, metrics)
    register_day_close(app, closer, lambda: runtime.readiness.recovered)
    _follow_assignment(runtime)
    register_views(runtime)
    register_dashboard(runtime)
    return runtime


def owned_partitions(app: faust.App, settings: Settings) -> set[int]:
    inputs = set(settings.topics.values())
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic in inputs}


def _follow_assignment(runtime: Runtime) -> None:
    app, settings, pipeline = runtime.app, runtime.settings, runtime.pipeline
    readiness = runtime.readiness
    # The ingest lock: a batch in flight, the markers and a day close's metas
    # finish before the partitions change hands.
    lock = runtime.closer.lock

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _on_recovered(sender: Any, **kwargs: Any) -> None:
        # Tables are recovered and streams not yet resumed: rebuild derived state.
        async with lock:
            pipeline.assign(owned_partitions(app, settings))
            readiness.recovered = True

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        readiness.recovered = False
        async with lock:
            pipeline.assign(set())
