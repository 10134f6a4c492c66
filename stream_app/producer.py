"""Sending events to the input topics, with throttling, for replay and simulate."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from types import TracebackType

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stream_app.contract import EventType
from stream_app.kafka_security import client_kwargs
from stream_app.settings import Settings
from stream_app.topics import ensure_topics

MAX_IN_FLIGHT = 5000
STOP_TIMEOUT_S = 5.0


class Throttle:
    """Hold a caller to ``rate`` calls per second (None: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        self.next_at = max(self.next_at + self.interval, time.monotonic() - 0.1)
        ahead = self.next_at - time.monotonic()
        if ahead > 0.005:  # sleeping per event at high rates costs more than it saves
            await asyncio.sleep(ahead)


class EventSender:
    """An aiokafka producer that counts what it sent; ``async with`` it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: Counter[EventType] = Counter()
        self.failed = 0
        self.first_error: str | None = None
        self._pending: list[asyncio.Future[object]] = []
        self._producer = AIOKafkaProducer(
            **client_kwargs(settings),
            acks="all",
            linger_ms=5,
            max_batch_size=262_144,
            max_request_size=max(settings.max_message_bytes * 4, 1_048_576),
        )

    async def __aenter__(self) -> EventSender:
        await ensure_topics(self.settings)
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise ConnectionError(
                f"cannot reach the broker at {self.settings.broker}: {exc}"
            ) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.flush()
        finally:
            # Interrupted: give in-flight sends a moment, never hang on a broker that is gone.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._producer.stop(), STOP_TIMEOUT_S)

    async def send(self, kind: EventType, key: bytes | None, value: bytes) -> None:
        topic = self.settings.topics[kind]
        self._pending.append(await self._producer.send(topic, value=value, key=key))
        self.sent[kind] += 1
        if len(self._pending) >= MAX_IN_FLIGHT:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException):
                self.failed += 1
                self.first_error = self.first_error or repr(result)

    @property
    def total(self) -> int:
        return sum(self.sent.values()) - self.failed
