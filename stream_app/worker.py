"""Run one loyalty-pulse worker in the foreground."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
from pathlib import Path
from typing import IO

import faust

from stream_app.app import create_app
from stream_app.broker import EMBEDDED_CLUSTER_ID
from stream_app.settings import Settings
from stream_app.topics import ensure_topics


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


def run_worker(settings: Settings) -> None:
    """Create the topics, then run the Faust worker until SIGINT/SIGTERM."""
    lock = lock_data_dir(settings.data_dir)
    try:
        cluster_id = asyncio.run(ensure_topics(settings))
        use_uvloop()
        tune_gc()
        runtime = create_app(settings, wants_end_markers(settings, cluster_id))
        worker = faust.Worker(runtime.app, loglevel=settings.log_level, quiet=True)
        # aiokafka logs a debug record per request; building them costs ~3% of ingest.
        logging.getLogger("aiokafka").setLevel(
            max(logging.INFO, logging.getLevelName(settings.log_level.upper()))
        )
        worker.execute_from_commandline()
    finally:
        lock.close()
