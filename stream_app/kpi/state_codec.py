"""A customer's state as bytes: a head record and one record per day.

Version 6 is the one written, as one head record under the customer's id and
one version-7 record per day of its history (``DayKey``, stream_app/keys.py):

- the head: the counters, the recent event ids as 64-bit digests
  (``id_digest``) with their occurred_ms, the applied offsets per origin, the
  first purchase and event days, the carried points, the enrollments (few:
  older ones are pruned to the one that still decides the segment), the day
  the history was pruned before, and whether any day record exists;
- a day: its purchases per channel [orders, revenue, points], per store
  [orders, revenue], and its redemption row [points, reward, unpriced].

A write sends the head and the days that changed since the last write (and
tombstones for the days pruned since), so its size does not grow with the
history. Day records older than the head's ``pruned_before`` are stale (a
tombstone not written yet) and ignored. msgspec encodes and decodes each
record in C against a typed layout; a damaged one fails with the field it
broke.

Earlier versions are still read, as one whole record: the msgpack array of
version 5 (also the form in which a cache keeps evicted customers in memory)
and the JSON of versions 1 to 4, whose ids are digested as they are read. A
customer read from one is written whole (every day) the next time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec
import orjson

from stream_app.kpi.customer import CustomerState, id_digest
from stream_app.kpi.history import CustomerHistory

STATE_VERSION = 6  # the head record; its days are DAY_VERSION records
DAY_VERSION = 7
WHOLE_VERSION = 5  # one record for everything: read, and kept in memory
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
    pruned_before: int | None = None  # absent from records written before version 6


class _HeadLayout(_Head, array_like=True):
    """Version 6: the head record (append, never reorder)."""

    second_purchase_day: int | None
    first_event_day: int | None
    carried_points: int
    enrolled: list[tuple[int, int, str, str, str]]
    pruned_before: int | None
    has_days: bool


class DayRecord(msgspec.Struct, array_like=True):
    """Version 7: one day of a customer's history (its day is in the key)."""

    version: int
    purchases: dict[str, list[int]]  # channel -> [orders, revenue_minor, points_earned]
    stores: dict[str, list[int]]  # store_id -> [orders, revenue_minor]
    redemption: list[int] | None  # [points, reward_value_minor, points_without_value]


class _Version(msgspec.Struct, array_like=True):
    version: int


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Layout)
_head_decoder = msgspec.msgpack.Decoder(_Head)
_head_layout_decoder = msgspec.msgpack.Decoder(_HeadLayout)
_day_decoder = msgspec.msgpack.Decoder(DayRecord)
_version_decoder = msgspec.msgpack.Decoder(_Version)


class StateDecodeError(ValueError):
    """A stored customer state that no readable version describes."""


def encode_state(state: CustomerState) -> bytes:
    """The whole state as one version-5 record (how a cache keeps it in memory)."""
    h = state.history
    return _encoder.encode(
        _Layout(
            WHOLE_VERSION,
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
            h.pruned_before,
        )
    )


def decode_state(data: bytes) -> CustomerState:
    """A whole record: version 5, or the JSON of versions 1 to 4."""
    if data[:1] == b"{":
        return legacy_state(orjson.loads(data))
    layout = _decode(_decoder, data)
    if layout.version != WHOLE_VERSION:
        raise StateDecodeError(f"unsupported customer state version {layout.version!r}")
    return _state(
        layout,
        CustomerHistory(
            purchases=layout.purchase_days,
            redemptions=layout.redemption_days,
            enrollments=layout.enrolled,
            first_purchase_day=layout.first_purchase_day,
            second_purchase_day=layout.second_purchase_day,
            first_event_day=layout.first_event_day,
            carried_points=layout.carried_points,
            stores=layout.store_days,
            pruned_before=layout.pruned_before,
        ),
    )


def encode_head(state: CustomerState) -> bytes:
    """The version-6 head record (the days go in ``encode_day`` records)."""
    h = state.history
    return _encoder.encode(
        _HeadLayout(
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
            h.enrollments,
            h.pruned_before,
            bool(h.purchases or h.redemptions),
        )
    )


def day_record(history: CustomerHistory, day: int) -> DayRecord | None:
    """The day as its record; None when the history has nothing on it (a tombstone)."""
    purchases = history.purchases.get(day)
    redemption = history.redemptions.get(day)
    if purchases is None and redemption is None:
        return None
    return DayRecord(DAY_VERSION, purchases or {}, history.stores.get(day) or {}, redemption)


def encode_day(record: DayRecord) -> bytes:
    return _encoder.encode(record)


def decode_day(data: bytes) -> DayRecord:
    record = _decode(_day_decoder, data)
    if record.version != DAY_VERSION:
        raise StateDecodeError(f"a day record of version {record.version!r}")
    return record


def decode_stored(head: bytes, days: Callable[[], Iterable[tuple[int, bytes]]]) -> CustomerState:
    """A customer as a table store holds it: its head record and, read only when
    the head says there are any, its day records (``days()``: (day, record)).
    A whole record of an earlier version stands alone (and is written whole next)."""
    if head[:1] == b"{" or _version(head) == WHOLE_VERSION:
        state = decode_state(head)
        state.history.write_all = True
        return state
    state, has_days = _decode_head(head)
    if has_days:
        merge_days(state.history, ((day, decode_day(raw)) for day, raw in days()))
    return state


def decode_head(data: bytes) -> CustomerState:
    """A customer's head record alone, its day records not read (a restore
    indexes their days from their keys). A whole record of an earlier version
    is decoded whole: it has no day records."""
    if data[:1] == b"{" or _version(data) == WHOLE_VERSION:
        state = decode_state(data)
        state.history.write_all = True
        return state
    return _decode_head(data)[0]


def decode_record(data: bytes) -> CustomerState | DayRecord:
    """Any stored customer record as a table's codec reads it: a head (its days
    come as their own records: ``merge_days``), a day, or a whole record."""
    if data[:1] == b"{":
        state = legacy_state(orjson.loads(data))
    else:
        version = _version(data)
        if version == DAY_VERSION:
            return decode_day(data)
        if version != WHOLE_VERSION:
            return _decode_head(data)[0]
        state = decode_state(data)
    state.history.write_all = True
    return state


def merge_days(history: CustomerHistory, records: Iterable[tuple[int, DayRecord]]) -> None:
    """Put day records into a history read from its head. A day before the
    history's ``pruned_before`` is stale: it is not put in, and is marked to
    be deleted at the next write."""
    floor = history.pruned_before
    for day, record in records:
        if floor is not None and day < floor:
            dropped = history.dropped
            if dropped is None:
                dropped = history.dropped = set()
            dropped.add(day)
            continue
        if record.purchases:
            history.purchases[day] = record.purchases
        if record.stores:
            history.stores[day] = record.stores
        if record.redemption is not None:
            history.redemptions[day] = record.redemption


def _decode_head(data: bytes) -> tuple[CustomerState, bool]:
    layout = _decode(_head_layout_decoder, data)
    if layout.version != STATE_VERSION:
        raise StateDecodeError(f"unsupported customer state version {layout.version!r}")
    history = CustomerHistory(
        enrollments=layout.enrolled,
        first_purchase_day=layout.first_purchase_day,
        second_purchase_day=layout.second_purchase_day,
        first_event_day=layout.first_event_day,
        carried_points=layout.carried_points,
        pruned_before=layout.pruned_before,
    )
    return _state(layout, history), layout.has_days


def _state(layout: _Head, history: CustomerHistory) -> CustomerState:
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
        history=history,
    )


def _version(data: bytes) -> int:
    return _decode(_version_decoder, data).version


_T = TypeVar("_T")


def _decode(decoder: msgspec.msgpack.Decoder[_T], data: bytes) -> _T:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise StateDecodeError(f"unreadable customer state ({len(data)} bytes): {exc}") from exc


def first_purchase_day(data: bytes) -> int | None:
    """The customer's first purchase day, read from the start of its head record
    (or whole record: versions 5 and 6 start alike)."""
    if data[:1] == b"{":
        return decode_state(data).history.first_purchase_day
    return _decode(_head_decoder, data).first_purchase_day


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
