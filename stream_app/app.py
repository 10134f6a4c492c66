"""The faust.App built from settings (the worker wires it: stream_app/worker.py)."""

from __future__ import annotations

from typing import Any

import faust

from stream_app.kafka_security import faust_credentials
from stream_app.settings import Settings


def faust_settings(settings: Settings) -> dict[str, Any]:
    store = "memory://" if settings.store == "memory" else "rocksdb://"
    return {
        "broker": "kafka://" + settings.broker.replace(",", ";"),
        "broker_credentials": faust_credentials(settings),
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


def new_app(settings: Settings) -> faust.App:
    return faust.App(settings.app_id, **faust_settings(settings))
