"""A customer's state as bytes: version 5 is a msgpack array of flat int rows.

Version 5 is the one written. It holds:
- the counters;
- the recent event ids as 64-bit digests (``id_digest``), each with its occurred_ms;
- the applied offsets per origin;
- the history's rows, flattened: ``[day, channel, orders, revenue, points, ...]``,
  ``[day, store, orders, revenue, ...]``, ``[day, points, reward, unpriced, ...]`` and
  ``[day, occurred_ms, event_id, cohort, tier, ...]``.

It is about a third of the JSON it replaces, and it is decoded by msgspec
against a typed layout, so a damaged record fails with the field it broke.
The JSON records of versions 1 to 4 are still read: a changelog written
before the upgrade restores, and its ids are digested as they are read.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from stream_app.kpi.customer import CustomerState, id_digest
from stream_app.kpi.history import CustomerHistory

STATE_VERSION = 5
LEGACY_JSON_VERSIONS = (1, 2, 3, 4)


class _Layout(msgspec.Struct, array_like=True):
    """Version 5, field by field (the order is the format: append, never reorder)."""

    version: int
    purchases: int
    enrollments: int
    redemptions: int
    revenue_minor: int
    points_earned: int
    points_redeemed: int
    recent: list[int]  # digest, occurred_ms, digest, occurred_ms, ...
    applied_offsets: dict[str, int]
    first_purchase_day: int | None
    second_purchase_day: int | None
    first_event_day: int | None
    carried_points: int
    purchase_rows: list[int | str]  # day, channel, orders, revenue_minor, points_earned
    store_rows: list[int | str]  # day, store_id, orders, revenue_minor
    redemption_rows: list[int]  # day, points, reward_value_minor, points_without_reward_value
    enrollment_rows: list[int | str]  # day, occurred_ms, event_id, cohort, tier


class _Head(msgspec.Struct, array_like=True):
    """The leading fields of version 5 (msgspec ignores the rest of the array)."""

    version: int
    purchases: int
    enrollments: int
    redemptions: int
    revenue_minor: int
    points_earned: int
    points_redeemed: int
    recent: list[int]
    applied_offsets: dict[str, int]
    first_purchase_day: int | None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Layout)
_head_decoder = msgspec.msgpack.Decoder(_Head)


class StateDecodeError(ValueError):
    """A stored customer state that no readable version describes."""


def encode_state(state: CustomerState) -> bytes:
    h = state.history
    recent: list[int] = []
    for digest, occurred in state.recent_ids.items():
        recent += (digest, occurred)
    purchase_rows: list[int | str] = []
    for day, channels in h.purchases.items():
        for channel, (orders, revenue, points) in channels.items():
            purchase_rows += (day, channel, orders, revenue, points)
    store_rows: list[int | str] = []
    for day, stores in h.stores.items():
        for store, (orders, revenue) in stores.items():
            store_rows += (day, store, orders, revenue)
    redemption_rows: list[int] = []
    for day, row in h.redemptions.items():
        redemption_rows += (day, *row)
    enrollment_rows: list[int | str] = []
    for entry in h.enrollments:
        enrollment_rows += entry
    return _encoder.encode(
        _Layout(
            STATE_VERSION,
            state.purchases,
            state.enrollments,
            state.redemptions,
            state.revenue_minor,
            state.points_earned,
            state.points_redeemed,
            recent,
            state.applied_offsets,
            h.first_purchase_day,
            h.second_purchase_day,
            h.first_event_day,
            h.carried_points,
            purchase_rows,
            store_rows,
            redemption_rows,
            enrollment_rows,
        )
    )


def decode_state(data: bytes) -> CustomerState:
    """Version 5, or the JSON of versions 1 to 4."""
    if data[:1] == b"{":
        return legacy_state(orjson.loads(data))
    try:
        layout = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise StateDecodeError(f"unreadable customer state ({len(data)} bytes): {exc}") from exc
    if layout.version != STATE_VERSION:
        raise StateDecodeError(f"unsupported customer state version {layout.version!r}")
    history = CustomerHistory(
        first_purchase_day=layout.first_purchase_day,
        second_purchase_day=layout.second_purchase_day,
        first_event_day=layout.first_event_day,
        carried_points=layout.carried_points,
    )
    rows: Any = layout.purchase_rows
    for i in range(0, len(rows), 5):
        history.purchases.setdefault(rows[i], {})[rows[i + 1]] = [
            rows[i + 2],
            rows[i + 3],
            rows[i + 4],
        ]
    rows = layout.store_rows
    for i in range(0, len(rows), 4):
        history.stores.setdefault(rows[i], {})[rows[i + 1]] = [rows[i + 2], rows[i + 3]]
    rows = layout.redemption_rows
    for i in range(0, len(rows), 4):
        history.redemptions[rows[i]] = [rows[i + 1], rows[i + 2], rows[i + 3]]
    rows = layout.enrollment_rows
    history.enrollments = [tuple(rows[i : i + 5]) for i in range(0, len(rows), 5)]
    recent = layout.recent
    recent_ids = {recent[i]: recent[i + 1] for i in range(0, len(recent), 2)}
    return CustomerState(
        purchases=layout.purchases,
        enrollments=layout.enrollments,
        redemptions=layout.redemptions,
        revenue_minor=layout.revenue_minor,
        points_earned=layout.points_earned,
        points_redeemed=layout.points_redeemed,
        recent_ids=recent_ids,
        oldest_id_ms=min(recent_ids.values(), default=2**63),
        applied_offsets=layout.applied_offsets,
        history=history,
    )


def first_purchase_day(data: bytes) -> int | None:
    """The customer's first purchase day, read from the head of its record."""
    if data[:1] == b"{":
        return decode_state(data).history.first_purchase_day
    try:
        return _head_decoder.decode(data).first_purchase_day
    except msgspec.DecodeError as exc:
        raise StateDecodeError(f"unreadable customer state ({len(data)} bytes): {exc}") from exc


def legacy_state(data: dict[str, Any]) -> CustomerState:
    """A JSON record of versions 1 to 4 (version 1 had no history)."""
    if data.get("v") not in LEGACY_JSON_VERSIONS:
        raise StateDecodeError(f"unsupported customer state version {data.get('v')!r}")
    stored = data.get("history")
    recent_ids = {id_digest(event_id): ms for event_id, ms in data["recent_ids"].items()}
    return CustomerState(
        purchases=data["purchases"],
        enrollments=data["enrollments"],
        redemptions=data["redemptions"],
        revenue_minor=data["revenue_minor"],
        points_earned=data["points_earned"],
        points_redeemed=data["points_redeemed"],
        recent_ids=recent_ids,
        oldest_id_ms=min(recent_ids.values(), default=2**63),
        applied_offsets=dict(data["applied_offsets"]),
        history=CustomerHistory() if stored is None else CustomerHistory.from_dict(stored),
    )
