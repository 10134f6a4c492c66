"""Every internal key and header the worker writes, encoded and decoded here only.

| what | form | where it goes |
|---|---|---|
| source (an input partition) | ``topic/partition`` | watermarks, replay guards, metas |
| origin of a forwarded record | ``topic/partition@offset`` | header ``lp-source`` (rerouted) |
| watermark marker | ``topic/partition@ms`` | header ``lp-mark`` (rerouted topic) |
| event type of a forwarded record | ``purchase`` … | header ``lp-type`` |
| rejection ledger | ``<ledger source>:<partition>`` | key in the rejections table |
| ledger source of late events | ``late|topic/partition`` | the ledger source above |
| dead letter of a rejected record | ``topic:partition:offset`` | key on the dead-letter topic |
| dead letter of a late record | its origin, ``topic/partition@offset`` | dead-letter key |
| partition meta | ``MetaKey(partition)`` | key in the customers table (see below) |
| terms as of its last close | ``MetaKey(partition, CLOSED_TERMS)`` | key in the customers table |
| changelog end marker | a reserved tombstone key | changelogs, embedded broker only |
| a partition's totals of a final day | ``partial/<date>/<partition>`` | results topic |
| the merged document of a final day | ``final/<date>`` | results topic |
| a final day declared | ``final-day/<date>`` | results topic |
| the churn-spike detector's state | ``spike`` | results topic |

Topic names cannot contain ``/``, ``:``, ``@`` or ``|`` (Kafka allows only
``[a-zA-Z0-9._-]``), so splitting at the last separator is exact.

A reserved key is longer than any customer id can be (the contract caps ids at
``MAX_ID_CHARS``), so no customer can collide with it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

from stream_app.contract import MAX_ID_CHARS
from stream_app.kpi.days import from_date, to_date

TYPE_HEADER = "lp-type"
SOURCE_HEADER = "lp-source"
MARK_HEADER = "lp-mark"
LATE_PREFIX = "late|"

# The byte form of a MetaKey: unchanged since state version 1, so existing
# changelogs keep reading.
META_KEY_PREFIX = "loyalty-pulse/partition-meta/".ljust(MAX_ID_CHARS + 1, "~") + "/"
CLOSED_TERMS = "closed-terms"
END_MARKER_KEY = b"loyalty-pulse/changelog-end".ljust(MAX_ID_CHARS + 300, b"~")


@functools.cache
def source_name(topic: str, partition: int) -> str:
    """An input partition as watermarks and replay guards name it."""
    return f"{topic}/{partition}"


def source_partition(source: str) -> int:
    return int(source.rpartition("/")[2])


def origin_header(topic: str, partition: int, offset: int) -> bytes:
    return f"{topic}/{partition}@{offset}".encode()


def parse_origin(text: str) -> tuple[str, int] | None:
    """(source, offset) of an ``lp-source`` header; None when malformed."""
    source, _, offset = text.rpartition("@")
    return (source, int(offset)) if offset.isdigit() else None


def marker_header(source: str, mark_ms: int) -> bytes:
    return f"{source}@{mark_ms}".encode()


def parse_marker(text: str) -> tuple[str, int] | None:
    """(source, watermark ms) of an ``lp-mark`` header; None when malformed."""
    source, _, mark = text.rpartition("@")
    if source and mark.lstrip("-").isdigit():
        return source, int(mark)
    return None


def ledger_key(source: str, partition: int) -> str:
    """The rejections-table key of a ledger: its source (a topic, or a late-ledger
    source) in the state partition that keeps it."""
    return f"{source}:{partition}"


def ledger_partition(key: str) -> int:
    return int(key.rpartition(":")[2])


def ledger_source(key: str) -> str:
    return key.rpartition(":")[0]


def late_ledger_source(source: str) -> str:
    """Late events are counted per origin source, apart from rejections."""
    return f"{LATE_PREFIX}{source}"


def dead_letter_key(topic: str, partition: int, offset: int) -> bytes:
    """A rejected record's dead letter: replays of it share the key."""
    return f"{topic}:{partition}:{offset}".encode()


def late_dead_letter_key(source: str, offset: int) -> bytes:
    """A late record's dead letter is keyed by its origin, wherever it was read."""
    return f"{source}@{offset}".encode()


RESULTS_SPIKE_KEY = b"spike"


@dataclass(frozen=True, slots=True)
class ResultKey:
    """A key of the results topic (stream_app/results_log.py): what a record is
    and the day it is about. ``kind`` is ``partial`` (with ``partition``),
    ``final`` or ``final-day``."""

    kind: str
    day: int
    partition: int | None = None

    def encode(self) -> bytes:
        name = f"{self.kind}/{to_date(self.day).isoformat()}"
        return (name if self.partition is None else f"{name}/{self.partition}").encode()

    @staticmethod
    def decode(raw: bytes) -> ResultKey | None:
        """The key a record stands for; None for a key of another kind (``spike``)."""
        parts = raw.decode().split("/")
        if len(parts) == 3 and parts[0] == "partial":
            return ResultKey("partial", from_date(date.fromisoformat(parts[1])), int(parts[2]))
        if len(parts) == 2 and parts[0] in ("final", "final-day"):
            return ResultKey(parts[0], from_date(date.fromisoformat(parts[1])))
        return None


@dataclass(frozen=True, slots=True)
class MetaKey:
    """The key of a partition's meta (kpi/meta.py) in the customers table.

    It must stay in the customers table: the meta then goes to the same
    changelog partition as the partition's customer records, behind them, and
    a restore reads it after every record it describes. That order is what
    makes the day close crash-exact (stream_app/day_close.py).
    """

    partition: int
    # "": the meta; CLOSED_TERMS: the terms as of its last close (kpi/meta.py),
    # written only when a day closes (the meta is rewritten as watermarks move)
    record: str = ""

    def encode(self) -> str:
        suffix = f"/{self.record}" if self.record else ""
        return f"{META_KEY_PREFIX}{self.partition}{suffix}"

    @staticmethod
    def decode(text: str) -> MetaKey | None:
        """The MetaKey a stored key stands for; None for a customer id."""
        if text.startswith(META_KEY_PREFIX):
            partition, _, record = text.removeprefix(META_KEY_PREFIX).partition("/")
            return MetaKey(int(partition), record)
        return None
