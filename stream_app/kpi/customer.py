"""Per-customer state: what a customer did, plus what protects it from replays.

Two guards live inside the state they protect, so one changelog write carries
them with it (idempotence instead of transactions):

- ``applied_offsets``: per origin input partition, the last offset applied,
  or recognised as a repeat of an applied event. Records of one partition
  arrive in offset order, so a crash replay (or a record forwarded again after
  a crash) is recognised whatever its event time.
- ``recent_ids``: event ids within the dedup horizon, for a producer that sends
  the same event twice (spec §4). Ids are forgotten as event time moves on, so
  a repeat records its own offset too: read again after a crash, possibly long
  after the horizon, it is still a repeat (not an event of a final day, late).

``history`` is what the KPI engine needs of the customer (kpi/history.py); the
partition's engine holds the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import blake2b

from stream_app.contract import Enrollment, Event, Purchase, Redemption
from stream_app.kpi.history import CustomerHistory


def id_digest(event_id: str) -> int:
    """An event id as 64 bits (BLAKE2b): the dedup ids kept per customer.

    Two ids of one customer within the horizon share a digest with odds of
    about k/2**64 per event (k ids remembered): ~5e-18 at k = 100; the
    second would be taken for a repeat (docs/architecture.md)."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "little")


@dataclass(slots=True)
class CustomerState:
    purchases: int = 0
    enrollments: int = 0
    redemptions: int = 0
    revenue_minor: int = 0
    points_earned: int = 0
    points_redeemed: int = 0
    recent_ids: dict[int, int] = field(default_factory=dict)  # id_digest -> occurred_ms
    applied_offsets: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> offset
    history: CustomerHistory = field(default_factory=CustomerHistory)
    # The oldest occurred_ms in recent_ids (not stored: derived), so most events
    # skip the scan for ids to forget.
    oldest_id_ms: int = field(default=2**63, compare=False, repr=False)

    @property
    def is_known(self) -> bool:
        """True once the customer has any accepted event."""
        return bool(self.purchases or self.enrollments or self.redemptions)

    def has_seen(self, digest: int) -> bool:
        """Whether an event whose id has this ``id_digest`` was applied recently."""
        return digest in self.recent_ids

    def has_applied(self, origin: str, offset: int) -> bool:
        return offset <= self.applied_offsets.get(origin, -1)

    def record_repeat(self, origin: str, offset: int) -> None:
        """A repeat of an applied event was read at ``origin``@``offset``."""
        self.applied_offsets[origin] = max(offset, self.applied_offsets.get(origin, -1))

    def apply(
        self, event: Event, digest: int, origin: str, offset: int, dedup_floor_ms: int
    ) -> None:
        """Fold in an event (its id's ``id_digest``) read at ``origin``@``offset``
        (the caller checked it is new)."""
        self.applied_offsets[origin] = offset
        if isinstance(event, Purchase):
            self.purchases += 1
            self.revenue_minor += event.amount_minor
            self.points_earned += event.points_earned
        elif isinstance(event, Redemption):
            self.redemptions += 1
            self.points_redeemed += event.points
        elif isinstance(event, Enrollment):
            self.enrollments += 1
        self.recent_ids[digest] = event.occurred_ms
        self.oldest_id_ms = min(self.oldest_id_ms, event.occurred_ms)
        self._forget_before(dedup_floor_ms)

    def _forget_before(self, floor_ms: int) -> None:
        if floor_ms <= self.oldest_id_ms:
            return
        stale = [eid for eid, ms in self.recent_ids.items() if ms < floor_ms]
        for eid in stale:
            del self.recent_ids[eid]
        self.oldest_id_ms = min(self.recent_ids.values(), default=2**63)
