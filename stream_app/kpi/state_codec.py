"""A customer's state as bytes: version 5 is a msgpack array of typed fields.

Version 5 is the one written: the counters, the recent event ids as 64-bit
digests (``id_digest``) with their occurred_ms, the applied offsets per
origin, and the history's day maps (day -> channel -> [orders, revenue,
points], day -> store -> [orders, revenue], day -> [points, reward,
unpriced], enrollments as rows), laid out as the objects hold them so that
msgspec encodes and decodes them in C against a typed layout. A record is a
third of the JSON it replaces, and a damaged one fails with the field it broke.
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


class _Head(msgspec.Struct, array_like=True):
    """The leading fields of version 5: enough to read a first purchase day
    (msgspec ignores the rest of the array)."""

    version: int
    purchases: int
    enrollments: int
    redemptions: int
    revenue_minor: int
    points_earned: int
    points_redeemed: int
    recent_ids: dict[int, int]  # id_digest -> occurred_ms
    applied_offsets: dict[str, int]
    first_purchase_day: int | None


class _Layout(_Head, array_like=True):
    """Version 5, field by field: the head's, then these (append, never reorder)."""

    second_purchase_day: int | None
    first_event_day: int | None
    carried_points: int
    purchase_days: dict[int, dict[str, list[int]]]
    store_days: dict[int, dict[str, list[int]]]
    redemption_days: dict[int, list[int]]
    enrolled: list[tuple[int, int, str, str, str]]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Layout)
_head_decoder = msgspec.msgpack.Decoder(_Head)


class StateDecodeError(ValueError):
    """A stored customer state that no readable version describes."""


def encode_state(state: CustomerState) -> bytes:
    h = state.history
    return _encoder.encode(
        _Layout(
            STATE_VERSION,
            state.purchases,
            state.enrollments,
            state.redemptions,
            state.revenue_minor,
            state.points_earned,
            state.points_redeemed,
            state.recent_ids,
            state.applied_offsets,
            h.first_purchase_day,
            h.second_purchase_day,
            h.first_event_day,
            h.carried_points,
            h.purchases,
            h.stores,
            h.redemptions,
            h.enrollments,
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
    recent_ids = layout.recent_ids
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
        history=CustomerHistory(
            purchases=layout.purchase_days,
            redemptions=layout.redemption_days,
            enrollments=layout.enrolled,
            first_purchase_day=layout.first_purchase_day,
            second_purchase_day=layout.second_purchase_day,
            first_event_day=layout.first_event_day,
            carried_points=layout.carried_points,
            stores=layout.store_days,
        ),
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
