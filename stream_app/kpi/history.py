"""What one customer did, per business day, as far back as any KPI looks.

Purchases are aggregated per (day, channel) and, when they name a store, per
(day, store); redemptions per day. Older days are pruned; what the KPIs still
need of them (the first event day, the first two purchase days, net points,
the latest enrollment) is carried in a few fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream_app.contract import Enrollment, Event, Purchase, Redemption

# purchases[day][channel] = [orders, revenue_minor, points_earned]
# stores[day][store_id] = [orders, revenue_minor]
# redemptions[day] = [points, reward_value_minor, points_without_reward_value]
# enrollments = [(day, occurred_ms, event_id, cohort, tier)], oldest first; tier "" when none
Enrolled = tuple[int, int, str, str, str]


@dataclass(slots=True)
class CustomerHistory:
    purchases: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    redemptions: dict[int, list[int]] = field(default_factory=dict)
    enrollments: list[Enrolled] = field(default_factory=list)
    first_purchase_day: int | None = None
    # The day of the second purchase (sorted with repeats: may equal the first).
    second_purchase_day: int | None = None
    first_event_day: int | None = None  # of any event
    carried_points: int = 0  # points earned minus redeemed on pruned days
    stores: dict[int, dict[str, list[int]]] = field(default_factory=dict)

    def add(self, event: Event, day: int) -> None:
        if self.first_event_day is None or day < self.first_event_day:
            self.first_event_day = day
        if isinstance(event, Purchase):
            self._add_purchase(event, day)
        elif isinstance(event, Redemption):
            row = self.redemptions.setdefault(day, [0, 0, 0])
            row[0] += event.points
            if event.reward_value_minor is None:
                row[2] += event.points
            else:
                row[1] += event.reward_value_minor
        elif isinstance(event, Enrollment):
            entry = (day, event.occurred_ms, event.event_id, event.cohort, event.tier or "")
            self.enrollments.append(entry)
            self.enrollments.sort()

    def _add_purchase(self, event: Purchase, day: int) -> None:
        by_channel = self.purchases.setdefault(day, {})
        row = by_channel.setdefault(event.channel, [0, 0, 0])
        row[0] += 1
        row[1] += event.amount_minor
        row[2] += event.points_earned
        if event.store_id:
            store = self.stores.setdefault(day, {}).setdefault(event.store_id, [0, 0])
            store[0] += 1
            store[1] += event.amount_minor
        first, second = self.first_purchase_day, self.second_purchase_day
        if first is None:
            self.first_purchase_day = day
        elif day < first:
            self.first_purchase_day, self.second_purchase_day = day, first
        elif second is None or day < second:
            self.second_purchase_day = day

    def days(self) -> set[int]:
        """Every day with an event of this customer still in the history."""
        return {*self.purchases, *self.redemptions, *(e[0] for e in self.enrollments)}

    def segment_as_of(self, day: int) -> str:
        """Cohort of the latest enrollment (by occurred_at, then event_id) up to ``day``."""
        return self.segment_and_tier(day)[0]

    def segment_and_tier(self, day: int) -> tuple[str, str]:
        """Segment and tier as of ``day`` (spec §3.1): both from the latest enrollment
        (by occurred_at, then event_id) up to ``day``; the tier is "" unless that
        enrollment is a member one that names a tier."""
        latest: Enrolled | None = None
        for entry in self.enrollments:
            if entry[0] <= day and (latest is None or entry[1:3] > latest[1:3]):
                latest = entry
        if latest is None:
            return "non_member", ""
        cohort = latest[3]
        return cohort, latest[4] if cohort == "member" else ""

    def prune(self, before: int) -> None:
        """Forget days before ``before``, keeping what later KPIs still need."""
        for day in [d for d in self.purchases if d < before]:
            rows = self.purchases.pop(day).values()
            self.carried_points += sum(r[2] for r in rows)
        for day in [d for d in self.redemptions if d < before]:
            self.carried_points -= self.redemptions.pop(day)[0]
        for day in [d for d in self.stores if d < before]:
            del self.stores[day]
        old = [e for e in self.enrollments if e[0] < before]
        if len(old) > 1:  # the latest old one still decides the segment
            keep = max(old, key=lambda e: (e[1], e[2]))
            self.enrollments = [keep] + [e for e in self.enrollments if e[0] >= before]

    @property
    def is_empty(self) -> bool:
        return not (self.purchases or self.redemptions or self.enrollments)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerHistory:
        """The JSON history of customer state versions 2 to 4 (kpi/state_codec.py)."""
        history = cls(first_purchase_day=data["f"], carried_points=data["c"])
        purchases, redemptions = data["p"], data["r"]
        if isinstance(purchases, dict):  # state version 3: days as JSON object keys
            history.purchases = {
                int(day): {channel: list(row) for channel, row in chans.items()}
                for day, chans in purchases.items()
            }
            history.redemptions = {int(day): list(row) for day, row in redemptions.items()}
        else:  # version 2: rows [day, channel, *row] and [day, *row]
            for day, channel, *row in purchases:
                history.purchases.setdefault(day, {})[channel] = list(row)
            history.redemptions = {day: list(row) for day, *row in redemptions}
        # state version <= 3 kept no tier: read as none
        history.enrollments = [
            (e[0], e[1], e[2], e[3], e[4] if len(e) > 4 else "") for e in data["e"]
        ]
        history.stores = {
            int(day): {store: list(row) for store, row in by_store.items()}
            for day, by_store in data.get("s", {}).items()
        }
        if "g" in data:
            history.second_purchase_day, history.first_event_day = data["q"], data["g"]
        else:  # state version <= 3: from what is still in the history
            history._derive_carried()
        return history

    def _derive_carried(self) -> None:
        days = sorted(
            day
            for day, chans in self.purchases.items()
            for row in chans.values()
            for _ in range(row[0])
        )
        if self.first_purchase_day is not None and (not days or days[0] > self.first_purchase_day):
            days.insert(0, self.first_purchase_day)
        self.second_purchase_day = days[1] if len(days) > 1 else None
        known = [
            *self.days(),
            *([self.first_purchase_day] if self.first_purchase_day is not None else []),
        ]
        self.first_event_day = min(known, default=None)
