"""What one customer did, per business day, as far back as any KPI looks.

Purchases are aggregated per (day, channel), redemptions per day. Older days
are pruned; what the KPIs still need of them (first purchase day, net points,
the latest enrollment) is carried in a few fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream_app.contract import Enrollment, Event, Purchase, Redemption

# purchases[day][channel] = [orders, revenue_minor, points_earned]
# redemptions[day] = [points, reward_value_minor, points_without_reward_value]
# enrollments = [(day, occurred_ms, event_id, cohort)], oldest first


@dataclass(slots=True)
class CustomerHistory:
    purchases: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    redemptions: dict[int, list[int]] = field(default_factory=dict)
    enrollments: list[tuple[int, int, str, str]] = field(default_factory=list)
    first_purchase_day: int | None = None
    carried_points: int = 0  # points earned minus redeemed on pruned days

    def add(self, event: Event, day: int) -> None:
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
            entry = (day, event.occurred_ms, event.event_id, event.cohort)
            self.enrollments.append(entry)
            self.enrollments.sort()

    def _add_purchase(self, event: Purchase, day: int) -> None:
        by_channel = self.purchases.setdefault(day, {})
        row = by_channel.setdefault(event.channel, [0, 0, 0])
        row[0] += 1
        row[1] += event.amount_minor
        row[2] += event.points_earned
        if self.first_purchase_day is None or day < self.first_purchase_day:
            self.first_purchase_day = day

    def days(self) -> set[int]:
        """Every day with an event of this customer still in the history."""
        return {*self.purchases, *self.redemptions, *(e[0] for e in self.enrollments)}

    def segment_as_of(self, day: int) -> str:
        """Cohort of the latest enrollment (by occurred_at, then event_id) up to ``day``."""
        latest: tuple[int, str, str] | None = None
        for e_day, occurred, event_id, cohort in self.enrollments:
            if e_day <= day and (latest is None or (occurred, event_id) > latest[:2]):
                latest = (occurred, event_id, cohort)
        return "non_member" if latest is None else latest[2]

    def prune(self, before: int) -> None:
        """Forget days before ``before``, keeping what later KPIs still need."""
        for day in [d for d in self.purchases if d < before]:
            rows = self.purchases.pop(day).values()
            self.carried_points += sum(r[2] for r in rows)
        for day in [d for d in self.redemptions if d < before]:
            self.carried_points -= self.redemptions.pop(day)[0]
        old = [e for e in self.enrollments if e[0] < before]
        if len(old) > 1:  # the latest old one still decides the segment
            keep = max(old, key=lambda e: (e[1], e[2]))
            self.enrollments = [keep] + [e for e in self.enrollments if e[0] >= before]

    @property
    def is_empty(self) -> bool:
        return not (self.purchases or self.redemptions or self.enrollments)

    def to_dict(self) -> dict[str, Any]:
        """Integer day keys: serialize with orjson.OPT_NON_STR_KEYS (tables/codecs.py)."""
        return {
            "p": self.purchases,
            "r": self.redemptions,
            "e": self.enrollments,
            "f": self.first_purchase_day,
            "c": self.carried_points,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerHistory:
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
        history.enrollments = [(d, ms, eid, cohort) for d, ms, eid, cohort in data["e"]]
        return history
