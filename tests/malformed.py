"""Malformed events with the reason the contract must give each."""

from __future__ import annotations

from typing import Any

import orjson

BASE: dict[str, Any] = {
    "type": "purchase",
    "customer_id": "c-bad",
    "occurred_at": "2024-03-01T10:00:00Z",
    "amount": 10.5,
}

# (changes to BASE, expected reason); each stays JSON with a "type" so replay sends it
CASES: list[tuple[dict[str, Any], str]] = [
    ({"occurred_at": "2024-03-01T10:00:00"}, "timestamp_without_offset"),
    ({"occurred_at": "yesterday"}, "invalid_timestamp"),
    ({"occurred_at": "2999-01-01T00:00:00Z"}, "future_timestamp"),
    ({"amount": "12.00"}, "invalid_type:amount"),
    ({"amount": -1}, "out_of_range:amount"),
    ({"amount": None}, "null_value:amount"),
    ({"customer_id": None}, "null_value:customer_id"),
    ({"currency": "EUR"}, "currency_mismatch"),
    ({"channel": "Point Of Sale"}, "invalid_format:channel"),
    ({"points_earned": -3}, "out_of_range:points_earned"),
    ({"type": "redemption", "points": 0}, "out_of_range:points"),
    ({"type": "enrollment", "cohort": "vip"}, "invalid_format:cohort"),
]


def malformed_event(n: int) -> tuple[dict[str, Any], str]:
    changes, reason = CASES[n % len(CASES)]
    event = {**BASE, "event_id": f"bad-{n}", **changes}
    if "customer_id" not in changes:
        event["customer_id"] = f"c-bad-{n % 7}"
    return event, reason


def missing_customer(n: int) -> tuple[dict[str, Any], str]:
    event = {**BASE, "event_id": f"bad-missing-{n}"}
    del event["customer_id"]
    return event, "missing_field:customer_id"


def line(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)
