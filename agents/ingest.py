"""The ingest agent: every input record through the pipeline, outcome carried out.

All work per record is synchronous; the only awaits are Faust's. Sends use
``send_soon`` (buffered): Faust flushes the producer before it commits offsets,
so a committed offset always has its table writes and dead letters on the broker.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import EventT

from stream_app.pipeline import (
    Applied,
    DeadLettered,
    Forward,
    Pipeline,
    Record,
)
from stream_app.settings import Settings
from tables.state import StateTables

RAW = {"key_serializer": "raw", "value_serializer": "raw"}
MARK_INTERVAL_SECONDS = 0.5  # how stale another partition's view of a watermark may be


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple((str(k), bytes(v or b"")) for k, v in items)


def to_record(event: EventT[bytes]) -> Record:
    msg = event.message
    return Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value, _headers(msg.headers))


class IngestHandler:
    """Carries out pipeline outcomes against Faust tables and topics."""

    def __init__(
        self,
        pipeline: Pipeline,
        tables: StateTables,
        dead_letter: faust.TopicT,
        rerouted: faust.TopicT,
    ) -> None:
        self.pipeline = pipeline
        self.tables = tables
        self.dead_letter = dead_letter
        self.rerouted = rerouted

    def __call__(self, event: EventT[bytes]) -> None:
        outcome = self.pipeline.handle(to_record(event))
        if isinstance(outcome, Applied):
            self.tables.customers[outcome.customer_id] = outcome.state
        elif isinstance(outcome, DeadLettered):
            self.dead_letter.send_soon(key=outcome.dead_letter_key, value=outcome.dead_letter)
            if outcome.ledger is not None:
                self.tables.rejections[outcome.ledger_key] = outcome.ledger
        elif isinstance(outcome, Forward):
            self._forward(outcome)
        # Duplicate and Marked: nothing to write

    def _forward(self, outcome: Forward) -> None:
        self.rerouted.send_soon(
            key=outcome.key,
            value=outcome.value,
            partition=outcome.partition,
            headers=list(outcome.headers),
        )

    def send_markers(self) -> None:
        """Watermark markers go through the same producer as forwards, so each one
        reaches its partition behind the records forwarded before it."""
        for marker in self.pipeline.markers():
            self._forward(marker)


def register_ingest(
    app: faust.App, settings: Settings, pipeline: Pipeline, tables: StateTables
) -> IngestHandler:
    inputs = app.topic(
        *settings.topics.values(),
        settings.topic_rerouted,
        **RAW,  # type: ignore[arg-type]
    )
    handler = IngestHandler(
        pipeline,
        tables,
        app.topic(settings.topic_dead_letter, **RAW),  # type: ignore[arg-type]
        app.topic(settings.topic_rerouted, **RAW),  # type: ignore[arg-type]
    )

    @app.timer(MARK_INTERVAL_SECONDS)  # type: ignore[untyped-decorator]
    async def send_markers() -> None:
        handler.send_markers()

    @app.agent(inputs, name="ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            handler(event)

    return handler
