"""Brute-force totals straight from raw event dicts (an offline oracle).

Independent of stream_app: stdlib json numbers and Decimal, like a person
recomputing the numbers by hand.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any


def cents(amount: Any) -> int:
    return int((Decimal(repr(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def expected_totals(lines: list[bytes]) -> dict[str, Any]:
    """Totals over distinct event_ids (first occurrence wins)."""
    seen: set[str] = set()
    events = {"purchase": 0, "enrollment": 0, "redemption": 0}
    customers: set[str] = set()
    revenue = points_earned = points_redeemed = 0
    for line in lines:
        e = json.loads(line)
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        events[e["type"]] += 1
        customers.add(e["customer_id"])
        if e["type"] == "purchase":
            revenue += cents(e["amount"])
            points_earned += e.get("points_earned") or 0
        elif e["type"] == "redemption":
            points_redeemed += e["points"]
    return {
        "events": events,
        "customers": len(customers),
        "revenue_cents": revenue,
        "points_earned": points_earned,
        "points_redeemed": points_redeemed,
    }


def observed(totals: dict[str, Any]) -> dict[str, Any]:
    """The same shape, read from a worker's /totals."""
    return {
        "events": totals["events"],
        "customers": totals["customers"],
        "revenue_cents": round(totals["revenue"] * 100),
        "points_earned": totals["points_earned"],
        "points_redeemed": totals["points_redeemed"],
    }
