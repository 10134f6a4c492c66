"""Per-partition totals: a reducer over customer states and accepted events.

``Totals.of_customers`` (recompute from recovered state) and ``Totals.count``
(incremental, per event) must agree; a property test holds them to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from stream_app.contract import Event, EventType, Purchase, Redemption
from stream_app.kpi.customer import CustomerState


@dataclass(slots=True)
class Totals:
    events: dict[EventType, int] = field(default_factory=lambda: dict.fromkeys(EventType, 0))
    customers: int = 0
    revenue_minor: int = 0
    points_earned: int = 0
    points_redeemed: int = 0

    def count(self, event: Event, new_customer: bool) -> None:
        self.events[event.type] += 1
        self.customers += new_customer
        if isinstance(event, Purchase):
            self.revenue_minor += event.amount_minor
            self.points_earned += event.points_earned
        elif isinstance(event, Redemption):
            self.points_redeemed += event.points

    def add_customer(self, state: CustomerState) -> None:
        self.events[EventType.PURCHASE] += state.purchases
        self.events[EventType.ENROLLMENT] += state.enrollments
        self.events[EventType.REDEMPTION] += state.redemptions
        self.customers += state.is_known
        self.revenue_minor += state.revenue_minor
        self.points_earned += state.points_earned
        self.points_redeemed += state.points_redeemed

    def merge(self, other: Totals) -> None:
        for kind, n in other.events.items():
            self.events[kind] += n
        self.customers += other.customers
        self.revenue_minor += other.revenue_minor
        self.points_earned += other.points_earned
        self.points_redeemed += other.points_redeemed

    @classmethod
    def of_customers(cls, states: Iterable[CustomerState]) -> Totals:
        totals = cls()
        for state in states:
            totals.add_customer(state)
        return totals
