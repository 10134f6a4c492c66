"""What a partition records about its closed days, next to its customers.

It is written to the same changelog partition as the partition's customer
records, after them, so a restored partition never has a closed day without
every event applied before that close: a record re-read after a crash is then
a redelivery (applied before the close) or late (read after it), exactly as in
a run without the crash. ``unpublished`` holds the totals of closed days not
yet confirmed in the serving store; a crash between the changelog write and
the publication loses nothing (a history pruned since cannot recompute them).
``marks`` is the partition's view of each source's watermark: a partition
restored after a crash or a rebalance resumes from it instead of holding the
stream back until every source speaks again, and the stream watermark is only
ever computed from views that are on the broker (so a day is never declared
final on the strength of records a crash could make a worker read again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream_app.kpi.terms import KpiTerms, from_flat

# 2: terms in their typed JSON form (kpi/terms.py); version 1 (flat rows) still reads.
META_VERSION = 2
READABLE_META_VERSIONS = (1, 2)


def terms_to_json(terms: KpiTerms) -> dict[str, Any]:
    return terms.to_json()


def terms_from_json(data: dict[str, Any] | list[list[Any]]) -> KpiTerms:
    """Typed terms; also the flat [[key...], value] rows written before them."""
    if isinstance(data, list):
        return from_flat((tuple(k), v) for k, v in data)
    return KpiTerms.from_json(data)


CLOSED_TERMS_VERSION = 1


@dataclass(slots=True)
class ClosedTerms:
    """The partition's KPI terms as of its last closed day, written when a day
    closes, before the meta that names that day: a restore whose meta names the
    same day starts from them instead of recomputing every customer's
    contribution (events applied after a close are of later days, so the
    customer records before the meta sum to exactly these terms)."""

    closed_day: int
    terms: KpiTerms

    def to_dict(self) -> dict[str, Any]:
        return {
            "closed_terms": CLOSED_TERMS_VERSION,
            "closed_day": self.closed_day,
            "terms": terms_to_json(self.terms),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClosedTerms:
        if data.get("closed_terms") != CLOSED_TERMS_VERSION:
            raise ValueError(f"unsupported closed terms version {data.get('closed_terms')!r}")
        return cls(data["closed_day"], terms_from_json(data["terms"]))


@dataclass(slots=True)
class PartitionMeta:
    closed_day: int | None = None
    unpublished: dict[int, KpiTerms] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": META_VERSION,
            "closed_day": self.closed_day,
            "unpublished": {str(d): terms_to_json(t) for d, t in self.unpublished.items()},
            "marks": self.marks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionMeta:
        if data.get("meta") not in READABLE_META_VERSIONS:
            raise ValueError(f"unsupported partition meta version {data.get('meta')!r}")
        unpublished = {int(d): terms_from_json(t) for d, t in data["unpublished"].items()}
        return cls(data["closed_day"], unpublished, dict(data.get("marks", {})))
