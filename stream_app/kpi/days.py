"""Business days as integers: days since 1970-01-01 in the reporting time zone."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def now_ms() -> int:
    """Wall-clock time as epoch milliseconds (processing time)."""
    return time.time_ns() // 1_000_000


def business_day(occurred_ms: int, zone: ZoneInfo | None) -> int:
    """The calendar day of an instant in ``zone`` (None: UTC)."""
    if zone is None:
        return occurred_ms // DAY_MS
    local = datetime.fromtimestamp(occurred_ms // 1000, UTC).astimezone(zone)
    return local.date().toordinal() - _EPOCH_ORDINAL


def to_date(day: int) -> date:
    return date.fromordinal(day + _EPOCH_ORDINAL)


def from_date(value: date) -> int:
    return value.toordinal() - _EPOCH_ORDINAL


def day_end_ms(day: int, zone: ZoneInfo | None) -> int:
    """The first instant after ``day`` (midnight starting day + 1), epoch ms."""
    if zone is None:
        return (day + 1) * DAY_MS
    nxt = to_date(day + 1)
    local = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return int(local.timestamp() * 1000)


@lru_cache(maxsize=4096)
def month_of(day: int) -> int:
    """The calendar month of a business day, as months since 1970-01."""
    d = to_date(day)
    return (d.year - 1970) * 12 + d.month - 1


def month_start(month: int) -> int:
    """The first business day of a month (months since 1970-01)."""
    return from_date(date(1970 + month // 12, month % 12 + 1, 1))


def month_label(month: int) -> str:
    """YYYY-MM."""
    return f"{1970 + month // 12:04d}-{month % 12 + 1:02d}"
