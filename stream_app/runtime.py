"""What the HTTP views may read of a running worker, and nothing of Faust.

The composition root (stream_app/worker.py) fills these in; the views
(stream_app/web.py) and their tests depend only on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from stream_app.alerts import AlertStore
from stream_app.day_close import CloserStatus
from stream_app.kpi.partition import PartitionState
from stream_app.kpi.totals import Totals
from stream_app.metrics import WorkerMetrics
from stream_app.serving import ServingStore
from stream_app.settings import Settings

Lag = Callable[[], dict[tuple[str, int], int]]


@dataclass
class Readiness:
    """Whether the worker's state is recovered for the partitions it owns."""

    recovered: bool = False


class PipelineStatus(Protocol):
    """The owned partitions and what they counted (stream_app/pipeline.py ``Pipeline``)."""

    @property
    def partitions(self) -> Mapping[int, PartitionState]: ...
    def totals(self) -> Totals: ...
    def rejected(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class WorkerStatus:
    pipeline: PipelineStatus
    closer: CloserStatus
    metrics: WorkerMetrics
    readiness: Readiness
    lag: Lag  # records not yet read per owned input partition


@dataclass(frozen=True)
class Views:
    """Everything the HTTP views read: settings, the serving store, the alerts
    kept in it, and this worker's status."""

    settings: Settings
    store: ServingStore
    alerts: AlertStore
    worker: WorkerStatus


def no_lag() -> dict[tuple[str, int], int]:
    """The lag of a worker that owns no input partition yet."""
    return {}
