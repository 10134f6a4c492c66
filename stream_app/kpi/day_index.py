"""Which customers had an event on each day: the boundary index of the day close.

Per day one bytearray of length-prefixed UTF-8 customer ids, about ten bytes
an entry where a set of str took ~200 (the set's slot and a str object per
entry): at a million customers that is the difference between ~20 MB and
~400 MB. A customer with several events on one day may be listed more than
once; ``customers`` returns each once. Ids are read back only when a day is
closed or previewed, or leaves the history.
"""

from __future__ import annotations

from collections.abc import Iterator


class DayIndex:
    def __init__(self) -> None:
        self._days: dict[int, bytearray] = {}
        self._last: dict[int, str] = {}  # the id last added to each day (repeats skipped)

    def add(self, day: int, customer: str) -> None:
        if self._last.get(day) == customer:
            return
        self._last[day] = customer
        raw = customer.encode()
        entries = self._days.get(day)
        if entries is None:
            entries = self._days[day] = bytearray()
        entries += len(raw).to_bytes(2, "little")
        entries += raw

    def customers(self, day: int) -> set[str]:
        """Every customer with an event on ``day`` (the empty set for a day without)."""
        entries = self._days.get(day)
        return set() if entries is None else _decode(entries)

    def pop(self, day: int) -> set[str]:
        self._last.pop(day, None)
        entries = self._days.pop(day, None)
        return set() if entries is None else _decode(entries)

    def days(self) -> list[int]:
        return list(self._days)

    def __iter__(self) -> Iterator[int]:
        return iter(self._days)

    @property
    def bytes(self) -> int:
        return sum(len(entries) for entries in self._days.values())


def _decode(entries: bytearray) -> set[str]:
    view, out, at, end = memoryview(entries), set(), 0, len(entries)
    while at < end:
        size = entries[at] | entries[at + 1] << 8
        at += 2
        out.add(str(view[at : at + size], "utf-8"))
        at += size
    return out
