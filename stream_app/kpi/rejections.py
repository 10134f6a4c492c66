"""Rejection counts per source partition, idempotent by offset.

A replay after a crash re-reads offsets it already counted; the ledger keeps the
next offset to count so such a replay is recognised and counted once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RejectionLedger:
    next_offset: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def record(self, offset: int, reason: str) -> bool:
        """Count a rejection at ``offset``; False when that offset was counted."""
        if offset < self.next_offset:
            return False
        self.counts[reason] += 1
        self.next_offset = offset + 1
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"next_offset": self.next_offset, "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RejectionLedger:
        return cls(next_offset=data["next_offset"], counts=Counter(data["counts"]))
