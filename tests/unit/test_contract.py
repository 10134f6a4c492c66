"""Unit tests for stream_app.contract (KPI spec section 1, "Events")."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.contract import (
    REASON_CODES,
    ContractConfig,
    Enrollment,
    EventType,
    Purchase,
    Redemption,
    Rejected,
    _decode_fast,
    dead_letter_record,
    decode,
    decode_checked,
    decode_object,
)

NOW = 1_714_557_600_000  # 2024-05-01T10:00:00Z
CFG = ContractConfig()
P, E, R = EventType.PURCHASE, EventType.ENROLLMENT, EventType.REDEMPTION
EVENT_CLASSES = (Purchase, Enrollment, Redemption)
FUZZ = settings(max_examples=300, deadline=None, database=None)

BASE: dict[EventType, dict[str, Any]] = {
    P: {
        "event_id": "e-1",
        "customer_id": "c-1",
        "occurred_at": "2024-05-01T09:00:00Z",
        "amount": 19.99,
    },
    E: {"event_id": "e-2", "customer_id": "c-1", "occurred_at": "2024-05-01T09:00:00Z"},
    R: {
        "event_id": "e-3",
        "customer_id": "c-1",
        "occurred_at": "2024-05-01T09:00:00Z",
        "points": 100,
    },
}


def event(event_type: EventType, **changes: Any) -> dict[str, Any]:
    """A valid event of the type with fields changed (None value = drop it)."""
    obj = dict(BASE[event_type])
    for name, value in changes.items():
        if value is None:
            obj.pop(name, None)
        else:
            obj[name] = value
    return obj


def raw(event_type: EventType, **changes: Any) -> bytes:
    return orjson.dumps(event(event_type, **changes))


def run(event_type: EventType, payload: Any, now: int = NOW, config: ContractConfig = CFG) -> Any:
    """decode() for bytes/None, decode_object() for anything else."""
    if payload is None or isinstance(payload, bytes):
        return decode(event_type, payload, now, config)
    return decode_object(event_type, payload, now, config)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
MIN_MS, MAX_MS = -62_135_596_800_000, 253_402_300_799_999  # years 1..9999 UTC


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return (datetime(year, month, day, hour, minute, tzinfo=UTC) - EPOCH) // ONE_MS


def family(reason: str) -> str:
    head, sep, _ = reason.partition(":")
    return f"{head}:<field>" if sep else head


# --------------------------------------------------------------------------
# happy paths


def test_purchase_minimal_gets_defaults() -> None:
    result = decode(P, raw(P), NOW, CFG)
    assert result == Purchase(
        event_id="e-1",
        customer_id="c-1",
        occurred_ms=NOW - 3_600_000,
        amount_minor=1999,
        order_id="e-1",
        channel="unknown",
        store_id=None,
        points_earned=0,
    )
    assert result.type is EventType.PURCHASE


def test_purchase_full() -> None:
    payload = raw(
        P,
        order_id="o-9",
        currency="USD",
        channel="web_2-b",
        store_id="s-42",
        points_earned=20,
        amount=120,
    )
    result = decode(P, payload, NOW, CFG)
    assert result == Purchase("e-1", "c-1", NOW - 3_600_000, 12000, "o-9", "web_2-b", "s-42", 20)


def test_enrollment_minimal_and_full() -> None:
    assert decode(E, raw(E), NOW, CFG) == Enrollment(
        "e-2", "c-1", NOW - 3_600_000, "member", None, None
    )
    full = decode(E, raw(E, cohort="control", tier="gold", program="p1"), NOW, CFG)
    assert full == Enrollment("e-2", "c-1", NOW - 3_600_000, "control", "gold", "p1")
    assert full.type is EventType.ENROLLMENT


def test_redemption_minimal_and_full() -> None:
    assert decode(R, raw(R), NOW, CFG) == Redemption("e-3", "c-1", NOW - 3_600_000, 100, None, None)
    full = decode(R, raw(R, reward_value=2.5, reward_id="r-1"), NOW, CFG)
    assert full == Redemption("e-3", "c-1", NOW - 3_600_000, 100, 250, "r-1")
    assert full.type is EventType.REDEMPTION


def test_optional_nulls_are_absent_and_extras_ignored() -> None:
    obj = event(P) | {
        "order_id": None,
        "currency": None,
        "channel": None,
        "store_id": None,
        "points_earned": None,
        "extra": [[[{"deep": 1e308}]]],
        "big": "x" * 10_000,
    }
    result = decode(P, orjson.dumps(obj), NOW, CFG)
    assert isinstance(result, Purchase)
    assert (result.order_id, result.channel, result.points_earned) == ("e-1", "unknown", 0)


def test_deep_extra_field_within_orjson_limit_is_ignored() -> None:
    deep = b"[" * 1000 + b"]" * 1000
    payload = raw(E)[:-1] + b',"x":' + deep + b"}"
    assert isinstance(decode(E, payload, NOW, CFG), Enrollment)


def test_strings_count_characters_and_allow_control_chars() -> None:
    emoji = "\U0001f600" * 128  # 512 bytes, 128 characters
    assert isinstance(decode(E, raw(E, event_id=emoji), NOW, CFG), Enrollment)
    too_long = decode(E, raw(E, event_id=emoji + "x"), NOW, CFG)
    assert too_long.reason == "out_of_range:event_id"
    assert isinstance(decode(E, raw(E, customer_id="a\x00\n\tb"), NOW, CFG), Enrollment)


def test_empty_optional_short_strings_are_kept() -> None:
    result = decode(P, raw(P, store_id=""), NOW, CFG)
    assert isinstance(result, Purchase)
    assert result.store_id == ""


def test_other_currency_config() -> None:
    jpy = ContractConfig(currency="JPY", minor_digits=0)
    assert decode(P, raw(P, currency="JPY", amount=1500), NOW, jpy).amount_minor == 1500
    assert decode(P, raw(P, currency="USD"), NOW, jpy).reason == "currency_mismatch"


def test_events_are_frozen() -> None:
    result = decode(E, raw(E), NOW, CFG)
    with pytest.raises(AttributeError):
        result.cohort = "control"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"currency": ""},
        {"minor_digits": -1},
        {"minor_digits": 9},
        {"max_message_bytes": 0},
        {"future_skew_ms": -1},
    ],
)
def test_config_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        ContractConfig(**kwargs)


# --------------------------------------------------------------------------
# one case (at least) per reason code

DEEP = b"[" * 2000 + b"]" * 2000
SURROGATE = "\ud800"

REASON_CASES = [
    pytest.param(P, None, "null_value", id="tombstone"),
    pytest.param(P, b'{"a":"' + b"x" * 70_000 + b'"}', "too_large", id="too_large"),
    pytest.param(P, b"\xff" * 70_000, "too_large", id="too_large_before_utf8"),
    pytest.param(P, b'{"event_id":"\xff"}', "invalid_utf8", id="bad_utf8"),
    pytest.param(P, b'{"event_id":"\xed\xa0\x80"}', "invalid_utf8", id="utf8_encoded_surrogate"),
    pytest.param(P, b"{", "not_json", id="truncated"),
    pytest.param(P, b"", "not_json", id="empty"),
    pytest.param(P, b'{"amount": NaN}', "not_json", id="nan_literal"),
    pytest.param(P, b'{"amount": Infinity}', "not_json", id="infinity_literal"),
    pytest.param(P, raw(P) + b" x", "not_json", id="trailing_garbage"),
    pytest.param(P, b"\xef\xbb\xbf" + raw(P), "not_json", id="bom"),
    pytest.param(P, raw(P)[:-1] + b',"x":"\\ud800"}', "not_json", id="lone_surrogate_escape"),
    pytest.param(P, b'{"a":"x\x01"}', "not_json", id="raw_control_char"),
    pytest.param(P, DEEP, "too_deep", id="deep_array"),
    pytest.param(P, raw(P)[:-1] + b',"x":' + DEEP + b"}", "too_deep", id="deep_extra_field"),
    pytest.param(P, b"[]", "not_object", id="array"),
    pytest.param(P, b'"x"', "not_object", id="string"),
    pytest.param(P, b"null", "not_object", id="json_null"),
    pytest.param(P, b"true", "not_object", id="json_true"),
    pytest.param(P, ["not", "a", "dict"], "not_object", id="object_api_list"),
    pytest.param(P, raw(P, event_id=None), "missing_field:event_id", id="m_eid"),
    pytest.param(E, raw(E, customer_id=None), "missing_field:customer_id", id="m_cid"),
    pytest.param(R, raw(R, occurred_at=None), "missing_field:occurred_at", id="m_occ"),
    pytest.param(P, raw(P, amount=None), "missing_field:amount", id="m_amount"),
    pytest.param(R, raw(R, points=None), "missing_field:points", id="m_points"),
    pytest.param(P, b'{"event_id":null}', "null_value:event_id", id="n_eid"),
    pytest.param(P, raw(P)[:-1] + b',"customer_id":null}', "null_value:customer_id", id="n_cid"),
    pytest.param(P, raw(P)[:-1] + b',"occurred_at":null}', "null_value:occurred_at", id="n_occ"),
    pytest.param(P, raw(P)[:-1] + b',"amount":null}', "null_value:amount", id="n_amount"),
    pytest.param(R, raw(R)[:-1] + b',"points":null}', "null_value:points", id="n_points"),
    pytest.param(P, raw(P, event_id=5), "invalid_type:event_id", id="t_eid"),
    pytest.param(P, raw(P, customer_id=["c"]), "invalid_type:customer_id", id="t_cid"),
    pytest.param(P, raw(P, occurred_at=NOW + 0.5), "invalid_type:occurred_at", id="t_occ_float"),
    pytest.param(
        P,
        raw(P, occurred_at=1714557600000.0),
        "invalid_type:occurred_at",
        id="t_occ_integral_float",
    ),
    pytest.param(P, raw(P, occurred_at=True), "invalid_type:occurred_at", id="t_occ_bool"),
    pytest.param(P, raw(P, occurred_at={"ms": 1}), "invalid_type:occurred_at", id="t_occ_object"),
    pytest.param(P, raw(P, amount="19.99"), "invalid_type:amount", id="t_amount"),
    pytest.param(P, raw(P, amount=True), "invalid_type:amount", id="t_amount_bool"),
    pytest.param(P, raw(P, order_id=7), "invalid_type:order_id", id="t_order"),
    pytest.param(P, raw(P, currency=840), "invalid_type:currency", id="t_cur"),
    pytest.param(P, raw(P, channel=["pos"]), "invalid_type:channel", id="t_chan"),
    pytest.param(P, raw(P, store_id=42), "invalid_type:store_id", id="t_store"),
    pytest.param(P, raw(P, points_earned=1.0), "invalid_type:points_earned", id="t_pe_float"),
    pytest.param(P, raw(P, points_earned=False), "invalid_type:points_earned", id="t_pe_bool"),
    pytest.param(E, raw(E, cohort=1), "invalid_type:cohort", id="t_cohort"),
    pytest.param(E, raw(E, tier=1), "invalid_type:tier", id="t_tier"),
    pytest.param(E, raw(E, program=[]), "invalid_type:program", id="t_program"),
    pytest.param(R, raw(R, points=True), "invalid_type:points", id="t_points_bool"),
    pytest.param(R, raw(R, points=100.0), "invalid_type:points", id="t_points_flt"),
    pytest.param(R, raw(R, points="100"), "invalid_type:points", id="t_points_str"),
    pytest.param(R, raw(R, reward_value="2"), "invalid_type:reward_value", id="t_rv"),
    pytest.param(R, raw(R, reward_id=9), "invalid_type:reward_id", id="t_rid"),
    pytest.param(P, raw(P, event_id=""), "out_of_range:event_id", id="r_eid_empty"),
    pytest.param(P, raw(P, customer_id="c" * 129), "out_of_range:customer_id", id="r_cid_long"),
    pytest.param(P, raw(P, amount=-0.01), "out_of_range:amount", id="r_amount_neg"),
    pytest.param(P, raw(P, amount=1_000_000_000.01), "out_of_range:amount", id="r_amount_big"),
    pytest.param(P, raw(P, amount=10**10), "out_of_range:amount", id="r_amount_int"),
    pytest.param(P, raw(P)[:-1] + b',"amount":1e400}', "out_of_range:amount", id="r_amount_inf"),
    pytest.param(
        P, raw(P)[:-1] + b',"amount":-1E999}', "out_of_range:amount", id="r_amount_neg_inf"
    ),
    pytest.param(
        P, event(P, amount=float("nan")), "out_of_range:amount", id="r_amount_nan_object_api"
    ),
    pytest.param(P, raw(P, order_id=""), "out_of_range:order_id", id="r_order"),
    pytest.param(P, raw(P, channel=""), "out_of_range:channel", id="r_chan_empty"),
    pytest.param(P, raw(P, channel="a" * 33), "out_of_range:channel", id="r_chan_long"),
    pytest.param(P, raw(P, store_id="s" * 65), "out_of_range:store_id", id="r_store"),
    pytest.param(P, raw(P, points_earned=-1), "out_of_range:points_earned", id="r_pe_neg"),
    pytest.param(P, raw(P, points_earned=2**53 + 1), "out_of_range:points_earned", id="r_pe_big"),
    pytest.param(E, raw(E, tier="t" * 65), "out_of_range:tier", id="r_tier"),
    pytest.param(E, raw(E, program="p" * 65), "out_of_range:program", id="r_prog"),
    pytest.param(R, raw(R, points=0), "out_of_range:points", id="r_points_0"),
    pytest.param(
        R,
        raw(R)[:-1] + b',"points":18446744073709551615}',
        "out_of_range:points",
        id="r_points_u64_max",
    ),
    pytest.param(
        R,
        raw(R)[:-1] + b',"points":18446744073709551616}',
        "out_of_range:points",
        id="r_points_over_64_bits",
    ),
    pytest.param(
        R,
        raw(R)[:-1] + b',"points":-9223372036854775809}',
        "out_of_range:points",
        id="r_points_under_64_bits",
    ),
    pytest.param(
        R,
        raw(R)[:-1] + b',"points":' + b"9" * 400 + b"}",
        "out_of_range:points",
        id="r_points_400_digits",
    ),
    pytest.param(R, raw(R)[:-1] + b',"points":1e400}', "out_of_range:points", id="r_points_inf"),
    pytest.param(
        R, event(R, points=10**5000), "out_of_range:points", id="r_points_huge_object_api"
    ),
    pytest.param(R, raw(R, reward_value=-1), "out_of_range:reward_value", id="r_rv_neg"),
    pytest.param(R, raw(R, reward_value=1e9 + 1), "out_of_range:reward_value", id="r_rv_big"),
    pytest.param(R, raw(R, reward_id="r" * 65), "out_of_range:reward_id", id="r_rid"),
    pytest.param(P, raw(P, channel="POS"), "invalid_format:channel", id="f_upper"),
    pytest.param(P, raw(P, channel="web shop"), "invalid_format:channel", id="f_space"),
    pytest.param(P, raw(P, channel="caf\u00e9"), "invalid_format:channel", id="f_non_ascii"),
    pytest.param(E, raw(E, cohort="vip"), "invalid_format:cohort", id="f_cohort"),
    pytest.param(E, raw(E, cohort="Member"), "invalid_format:cohort", id="f_cohort_case"),
    pytest.param(
        E,
        event(E, event_id="a" + SURROGATE),
        "invalid_format:event_id",
        id="f_surrogate_object_api",
    ),
    pytest.param(P, raw(P, occurred_at="yesterday"), "invalid_timestamp", id="ts_garbage"),
    pytest.param(P, raw(P, occurred_at="2024-05-01"), "invalid_timestamp", id="ts_date_only"),
    pytest.param(
        P, raw(P, occurred_at="2024-02-30T10:00:00Z"), "invalid_timestamp", id="ts_feb_30"
    ),
    pytest.param(
        P, raw(P, occurred_at=-62_135_596_800_001), "invalid_timestamp", id="ts_epoch_before_year_1"
    ),
    pytest.param(
        P,
        raw(P)[:-1] + b',"occurred_at":18446744073709551616}',
        "invalid_timestamp",
        id="ts_epoch_over_64_bits",
    ),
    pytest.param(
        P, raw(P, occurred_at="2024-05-01T10:00:00"), "timestamp_without_offset", id="ts_no_offset"
    ),
    pytest.param(
        P,
        raw(P, occurred_at="2024-05-01 10:00:00.123456"),
        "timestamp_without_offset",
        id="ts_no_offset_fraction",
    ),
    pytest.param(P, raw(P, occurred_at=NOW + 300_001), "future_timestamp", id="future_int"),
    pytest.param(
        P, raw(P, occurred_at="2024-05-01T10:05:00.001Z"), "future_timestamp", id="future_string"
    ),
    pytest.param(P, raw(P, currency="EUR"), "currency_mismatch", id="cur_eur"),
    pytest.param(P, raw(P, currency="usd"), "currency_mismatch", id="cur_case"),
    pytest.param(P, raw(P, currency=""), "currency_mismatch", id="cur_empty"),
]


@pytest.mark.parametrize(("event_type", "payload", "reason"), REASON_CASES)
def test_reason(event_type: EventType, payload: Any, reason: str) -> None:
    result = run(event_type, payload)
    assert isinstance(result, Rejected)
    assert result.reason == reason
    assert family(result.reason) in REASON_CODES
    assert result.detail.endswith(".") and "\n" not in result.detail
    assert len(result.detail) < 250  # no raw payload echo


def test_every_reason_code_is_exercised() -> None:
    produced = {family(run(*case.values[:2]).reason) for case in REASON_CASES}
    assert produced == set(REASON_CODES)


def test_reason_codes_are_documented() -> None:
    for code, doc in REASON_CODES.items():
        assert re.fullmatch(r"[a-z0-9_]+(:<field>)?", code)
        assert doc and "\n" not in doc


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"event_id": 5, "amount": "x"}, "invalid_type:event_id"),
        ({"event_id": "e", "occurred_at": "bad"}, "missing_field:customer_id"),
        ({"event_id": "e", "customer_id": "", "occurred_at": "bad"}, "out_of_range:customer_id"),
        (
            {"event_id": "e", "customer_id": "c", "occurred_at": "bad", "amount": -1},
            "invalid_timestamp",
        ),
        (event(P, amount=-1, order_id="", currency="EUR"), "out_of_range:amount"),
        (event(P, order_id="", currency="EUR", channel="X"), "out_of_range:order_id"),
        (event(P, currency="EUR", channel="X"), "currency_mismatch"),
        (event(P, channel="X", store_id=1, points_earned=-1), "invalid_format:channel"),
        (event(P, store_id=1, points_earned=-1), "invalid_type:store_id"),
    ],
)
def test_fields_are_checked_in_a_fixed_order(obj: dict[str, Any], reason: str) -> None:
    assert decode(P, orjson.dumps(obj), NOW, CFG).reason == reason


def test_type_specific_order_enrollment_and_redemption() -> None:
    assert decode(E, raw(E, cohort="x", tier=1), NOW, CFG).reason == "invalid_format:cohort"
    broken = raw(R, points=0, reward_value=-1, reward_id=1)
    assert decode(R, broken, NOW, CFG).reason == "out_of_range:points"
    broken = raw(R, reward_value=-1, reward_id=1)
    assert decode(R, broken, NOW, CFG).reason == "out_of_range:reward_value"


def test_detail_does_not_echo_long_values() -> None:
    result = decode(E, raw(E, event_id="x" * 60_000), NOW, CFG)
    assert result.reason == "out_of_range:event_id"
    assert "x" * 81 not in result.detail
    result = decode(P, raw(P, channel="Q" * 32), NOW, CFG)
    assert result.reason == "invalid_format:channel"
    assert "Q" * 33 not in result.detail
    result = decode(P, raw(P, occurred_at="\x00" * 5000), NOW, CFG)
    assert result.reason == "invalid_timestamp"
    assert len(result.detail) < 200


def test_orjson_behaviour_the_module_relies_on() -> None:
    # If an orjson upgrade changes these, revisit the module docstring.
    assert isinstance(orjson.loads(b"18446744073709551616"), float)
    assert orjson.loads(b"18446744073709551615") == 2**64 - 1
    with pytest.raises(orjson.JSONDecodeError, match="infinity"):
        orjson.loads(b"1e400")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (raw(E)[:-1] + b',"x":1e400}', None),  # inf in an ignored field
        (raw(E)[:-1] + b',"x":1e400,"y":NaN}', "not_json"),
        (raw(E)[:-1] + b',"x":1e400,"y":"\\ud800"}', "not_json"),
        (raw(E)[:-1] + b',"x":1e400,"y":"\\ud83d\\ude00"}', None),  # valid pair
        (raw(E)[:-1] + b',"x":1e400} x', "not_json"),
        (raw(E)[:-1] + b',"x":1e400,"y":' + DEEP + b"}", "too_deep"),
        (raw(E)[:-1] + b',"x":' + b"1" * 5000 + b"}", "not_json"),
        (raw(E)[:-1] + b',"occurred_at":1e400}', "invalid_timestamp"),
    ],
)
def test_double_overflow_fallback(payload: bytes, reason: str | None) -> None:
    result = decode(E, payload, NOW, CFG)
    if reason is None:
        assert isinstance(result, Enrollment)
    else:
        assert result.reason == reason


# --------------------------------------------------------------------------
# money


@pytest.mark.parametrize(
    ("amount", "minor"),
    [
        (19.99, 1999),
        (0.125, 12),
        (0.135, 14),
        (0, 0),
        (0.0, 0),
        (-0.0, 0),
        (1e9, 100_000_000_000),
        (1_000_000_000, 100_000_000_000),
        (7, 700),
        (2.675, 268),
        (0.005, 0),
        (0.015, 2),
        (0.1, 10),
        (1e-300, 0),
    ],
)
def test_amount_to_minor_units(amount: float, minor: int) -> None:
    assert decode(P, raw(P, amount=amount), NOW, CFG).amount_minor == minor


@given(
    amount=st.floats(min_value=0, max_value=1e9) | st.integers(0, 10**11).map(lambda c: c / 100),
    digits=st.integers(0, 4),
)
def test_amount_to_minor_units_is_the_written_decimal_rounded_half_even(
    amount: float, digits: int
) -> None:
    written = Decimal(repr(amount)).scaleb(digits)
    expected = int(written.to_integral_value(ROUND_HALF_EVEN))
    decoded = decode(P, raw(P, amount=amount), NOW, ContractConfig(minor_digits=digits))
    assert decoded.amount_minor == expected


@pytest.mark.parametrize("amount", [1_000_000_000.01, -0.01, -1, 10**9 + 1])
def test_amount_out_of_range(amount: float) -> None:
    assert decode(P, raw(P, amount=amount), NOW, CFG).reason == "out_of_range:amount"


@pytest.mark.parametrize(
    ("digits", "amount", "minor"),
    [
        (0, 2.5, 2),
        (0, 3.5, 4),
        (0, 7, 7),
        (3, 1.0005, 1000),
        (3, 1.0015, 1002),
        (3, 2, 2000),
    ],
)
def test_minor_digits(digits: int, amount: float, minor: int) -> None:
    config = ContractConfig(minor_digits=digits)
    assert decode(P, raw(P, amount=amount), NOW, config).amount_minor == minor
    value = decode(R, raw(R, reward_value=amount), NOW, config)
    assert value.reward_value_minor == minor


@FUZZ
@given(st.decimals(min_value=0, max_value=10**9, places=2))
def test_two_decimal_amounts_are_exact(amount: Any) -> None:
    result = decode(P, raw(P, amount=float(amount)), NOW, CFG)
    assert result.amount_minor == int(amount * 100)


# --------------------------------------------------------------------------
# timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T09:00:00Z", ms(2024, 5, 1, 9)),
        ("2024-05-01t09:00:00z", ms(2024, 5, 1, 9)),
        ("2024-05-01 09:00:00Z", ms(2024, 5, 1, 9)),
        ("2024-05-01T11:00:00+02:00", ms(2024, 5, 1, 9)),
        ("2024-05-01T04:30:00-04:30", ms(2024, 5, 1, 9)),
        ("2024-05-01T09:00:00-00:00", ms(2024, 5, 1, 9)),
        ("2024-05-01T00:30:00+01:00", ms(2024, 4, 30, 23, 30)),
        ("2024-05-01T09:00:00.5Z", ms(2024, 5, 1, 9) + 500),
        ("2024-05-01T09:00:00.12Z", ms(2024, 5, 1, 9) + 120),
        ("2024-05-01T09:00:00.123Z", ms(2024, 5, 1, 9) + 123),
        ("2024-05-01T09:00:00.123999999Z", ms(2024, 5, 1, 9) + 123),
        ("2024-05-01T09:00:00." + "9" * 1000 + "+00:00", ms(2024, 5, 1, 9) + 999),
        ("2024-02-29T09:00:00Z", ms(2024, 2, 29, 9)),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999Z", -1),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000),
    ],
)
def test_rfc3339_accepted(text: str, expected: int) -> None:
    assert decode(E, raw(E, occurred_at=text), NOW, CFG).occurred_ms == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01",
        "2024-05-01T09:00Z",
        "2024-05-01T09:00:00.Z",
        "garbage",
        "2023-02-29T09:00:00Z",
        "2024-02-30T09:00:00Z",
        "2024-04-31T09:00:00Z",
        "2024-13-01T09:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T09:60:00Z",
        "2024-05-01T09:00:60Z",
        "0000-01-01T00:00:00Z",
        "2024-05-01T09:00:00+2:00",
        "2024-05-01T09:00:00+0200",
        "2024-05-01T09:00:00+24:00",
        "2024-05-01T09:00:00+02:60",
        "2024-05-01T09:00:00 Z",
        "2024-05-01X09:00:00Z",
        "2024-05-01T09:00:00ZZ",
        "+2024-05-01T09:00:00Z",
        "2024-5-01T09:00:00Z",
        "２０２４-05-01T09:00:00Z",
        "2024-05-01T0٩:00:00Z",
        "2024-05-01T09:00:00,5Z",
        "2024-W18-3T09:00:00Z",
        "0001-01-01T00:00:00+00:01",
        "",
        "2024-02-30T09:00:00",  # impossible AND no offset: impossible wins
    ],
)
def test_rfc3339_rejected(text: str) -> None:
    result = decode(E, raw(E, occurred_at=text), NOW, CFG)
    assert result.reason == "invalid_timestamp"


def test_epoch_ms_integers() -> None:
    assert decode(E, raw(E, occurred_at=NOW), NOW, CFG).occurred_ms == NOW
    assert decode(E, raw(E, occurred_at=0), NOW, CFG).occurred_ms == 0
    assert decode(E, raw(E, occurred_at=-1), NOW, CFG).occurred_ms == -1
    far = ContractConfig(future_skew_ms=10**18)
    for edge in (MIN_MS, MAX_MS):  # 0001-01-01T00:00Z, 9999-12-31T23:59:59.999Z
        assert decode(E, raw(E, occurred_at=edge), NOW, far).occurred_ms == edge
    assert decode(E, raw(E, occurred_at=MAX_MS + 1), NOW, far).reason == "invalid_timestamp"


@pytest.mark.parametrize("value", [True, False, 1.5, 1714557600000.0, [], {}])
def test_occurred_at_wrong_types(value: Any) -> None:
    result = decode(E, raw(E, occurred_at=value), NOW, CFG)
    assert result.reason == "invalid_type:occurred_at"


@pytest.mark.parametrize(
    "occurred", [NOW + 300_000, "2024-05-01T10:05:00Z", "2024-05-01T12:05:00.000999+02:00"]
)
def test_future_skew_boundary_is_inclusive(occurred: Any) -> None:
    result = decode(E, raw(E, occurred_at=occurred), NOW, CFG)
    assert result.occurred_ms == NOW + 300_000


def test_future_skew_boundary_plus_one_ms_and_config() -> None:
    assert decode(E, raw(E, occurred_at=NOW + 300_001), NOW, CFG).reason == "future_timestamp"
    strict = ContractConfig(future_skew_ms=0)
    assert decode(E, raw(E, occurred_at=NOW), NOW, strict).occurred_ms == NOW
    assert decode(E, raw(E, occurred_at=NOW + 1), NOW, strict).reason == "future_timestamp"


@FUZZ
@given(
    st.datetimes(
        min_value=datetime(2, 1, 1, tzinfo=UTC).replace(tzinfo=None),
        max_value=datetime(9998, 1, 1, tzinfo=UTC).replace(tzinfo=None),
    ),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    st.sampled_from(["T", "t", " "]),
)
def test_offsets_convert_like_datetime(local: datetime, offset: int, sep: str) -> None:
    aware = local.replace(tzinfo=timezone(timedelta(minutes=offset)))
    text = aware.isoformat(sep=sep, timespec="microseconds")
    expected = (aware - EPOCH) // ONE_MS
    far = ContractConfig(future_skew_ms=10**18)
    assert decode(E, raw(E, occurred_at=text), NOW, far).occurred_ms == expected


REFERENCE_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
    r"([Zz]|[+-]\d\d:\d\d)?",
    re.ASCII,
)


def reference_parse(text: str) -> int | str:
    """Slow, obviously-correct reference for occurred_at strings."""
    match = REFERENCE_RFC3339.fullmatch(text)
    if not match:
        return "invalid_timestamp"
    zone = match[8]
    offset_ms = 0
    if zone is not None and zone not in ("Z", "z"):
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return "invalid_timestamp"
        offset_ms = (hours * 60 + minutes) * 60_000 * (-1 if zone[0] == "-" else 1)
    try:
        local = datetime(*map(int, match.groups()[:6]), tzinfo=UTC)
    except ValueError:
        return "invalid_timestamp"
    if zone is None:
        return "timestamp_without_offset"
    fraction_ms = int(((match[7] or "") + "000")[:3])
    result = (local - EPOCH) // ONE_MS - offset_ms + fraction_ms
    return result if MIN_MS <= result <= MAX_MS else "invalid_timestamp"


@st.composite
def near_rfc3339(draw: st.DrawFn) -> str:
    """A valid-looking date-time string, then 0..2 random one-character edits."""
    local = draw(st.datetimes())
    fraction = draw(st.sampled_from(["", "."]))
    if fraction:
        fraction += draw(st.text("0123456789", min_size=1, max_size=9))
    zone = draw(st.sampled_from(["Z", "z", "", "+02:00", "-00:30", "+23:59", "-13:07"]))
    text = (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
        f"{draw(st.sampled_from('Tt '))}"
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}{fraction}{zone}"
    )
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text) - 1))
        char = draw(st.sampled_from("0123456789-:TtZz+. x\u0663"))
        edit = draw(st.sampled_from(["replace", "insert", "delete"]))
        tail = text[at + 1 :] if edit != "insert" else text[at:]
        text = text[:at] + (char if edit != "delete" else "") + tail
    return text


@FUZZ
@given(near_rfc3339())
def test_rfc3339_matches_reference(text: str) -> None:
    far = ContractConfig(future_skew_ms=10**18)
    result = decode(E, raw(E, occurred_at=text), NOW, far)
    expected = reference_parse(text)
    if isinstance(expected, int):
        assert result.occurred_ms == expected
    else:
        assert result.reason == expected


# --------------------------------------------------------------------------
# fuzz: decode never raises


def check_result(result: Any, now: int = NOW, config: ContractConfig = CFG) -> None:
    assert isinstance(result, (*EVENT_CLASSES, Rejected))
    if isinstance(result, Rejected):
        assert family(result.reason) in REASON_CODES
        return
    assert 1 <= len(result.event_id) <= 128 and 1 <= len(result.customer_id) <= 128
    assert result.occurred_ms <= now + config.future_skew_ms
    orjson.dumps(msgspec.structs.asdict(result))  # every string is valid text
    if isinstance(result, Purchase):
        assert 0 <= result.amount_minor <= 10**9 * 10**config.minor_digits
        assert result.points_earned >= 0
    if isinstance(result, Redemption):
        assert result.points >= 1


@FUZZ
@given(st.binary(max_size=512), st.integers(min_value=-(2**70), max_value=2**70))
def test_fuzz_arbitrary_bytes(value: bytes, now: int) -> None:
    for event_type in EventType:
        check_result(decode(event_type, value, now, CFG), now)


ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)  # + surrogates
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(JSON_VALUES)
def test_fuzz_arbitrary_json(value: Any) -> None:
    payload = json.dumps(value).encode()  # may hold NaN, huge ints, \ud800
    for event_type in EventType:
        check_result(decode(event_type, payload, NOW, CFG))
        direct = decode_object(event_type, value, NOW, CFG)
        check_result(direct)
        if not isinstance(value, dict):
            assert direct.reason == "not_object"


WRONG = (
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers()
    | st.text(max_size=3)
    | st.lists(st.integers(), max_size=2)
    | st.just({"a": 1})
)
MONEY = st.floats(min_value=0, max_value=1e9) | st.integers(0, 10**9)
SHORT = st.text(max_size=64)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.text(min_size=1, max_size=128),
    "customer_id": st.text(min_size=1, max_size=128),
    "occurred_at": st.integers(NOW - 10**12, NOW + 300_000)
    | st.sampled_from(
        [
            "2024-05-01T09:00:00Z",
            "2024-05-01 11:00:00.25+02:00",
            "1999-12-31t23:59Z",
            "2024-05-01T09:00:00",
            "2024-02-30T09:00:00Z",
            "2099-01-01T00:00:00Z",
        ]
    ),
    "amount": MONEY,
    "order_id": st.text(min_size=1, max_size=128),
    "currency": st.sampled_from(["USD", "EUR"]),
    "channel": st.text("abcz09_-", min_size=1, max_size=32) | st.just("POS"),
    "store_id": SHORT,
    "points_earned": st.integers(0, 2**53),
    "cohort": st.sampled_from(["member", "control", "vip"]),
    "tier": SHORT,
    "program": SHORT,
    "points": st.integers(1, 2**53),
    "reward_value": MONEY,
    "reward_id": SHORT,
}
REQUIRED = ("event_id", "customer_id", "occurred_at")
# Mostly valid values (3 branches of 4), so that events get accepted too.
MIXED = {
    name: st.integers(0, 3).flatmap(lambda i, v=valid: v if i else WRONG)
    for name, valid in VALID.items()
}
VALID_ISH_OBJECTS = st.fixed_dictionaries(
    {name: MIXED[name] for name in REQUIRED},
    optional={name: MIXED[name] for name in VALID if name not in REQUIRED},
)


def outcome(result: Any) -> Any:
    return result.reason if isinstance(result, Rejected) else result


@FUZZ
@given(VALID_ISH_OBJECTS)
def test_fuzz_valid_ish_objects(obj: dict[str, Any]) -> None:
    try:
        payload: bytes | None = json.dumps(obj, allow_nan=False).encode()
    except ValueError:  # NaN / inf can only reach decode_object
        payload = None
    for event_type in EventType:
        direct = decode_object(event_type, obj, NOW, CFG)
        check_result(direct)
        if payload is not None:  # the bytes route must agree with the dict route
            via_bytes = decode(event_type, payload, NOW, CFG)
            check_result(via_bytes)
            assert outcome(via_bytes) == outcome(direct)


# --------------------------------------------------------------------------
# the fast route (msgspec) agrees with the checked route


def both_routes(value: bytes | None, now: int = NOW) -> None:
    """decode (fast route first) and decode_checked give the same result."""
    for event_type in EventType:
        assert decode(event_type, value, now, CFG) == decode_checked(event_type, value, now, CFG)


def test_the_fast_route_takes_typical_events() -> None:
    full = {
        P: raw(P, order_id="o-1", currency="USD", channel="web", store_id="s-1", points_earned=5),
        E: raw(E, cohort="control", tier="gold", program="p"),
        R: raw(R, reward_value=2.5, reward_id="r-1"),
    }
    for event_type in EventType:
        for value in (raw(event_type), full[event_type]):
            fast = _decode_fast(event_type, value, NOW, CFG)
            assert fast is not None and fast == decode_checked(event_type, value, NOW, CFG)


@pytest.mark.parametrize(
    "value",
    [
        raw(P, amount=-0.0),
        raw(P, amount=10**9),
        raw(P, amount=2.675),
        raw(P, amount=True),
        raw(P, points_earned=5.0),
        raw(P, points_earned=2**53 + 1),
        raw(P, channel="web\n"),
        raw(P, channel=""),
        raw(P, currency="usd"),
        raw(P, store_id=""),
        raw(P, store_id="s" * 65),
        raw(P, order_id=""),
        raw(E, cohort="vip"),
        raw(E, tier="t" * 65),
        raw(R, points=0),
        raw(R, reward_value=1e10),
        raw(P, event_id="e" * 129),
        raw(P, event_id="\u00e9" * 128),
        raw(P, occurred_at=NOW + 300_001),
        raw(P, occurred_at="2024-05-01T09:00:00"),
        json.dumps(event(P, occurred_at=2**64)).encode(),
        b'{"event_id":"e","event_id":"f","customer_id":"c","occurred_at":1,"amount":1}',
        b'{"event\\u005fid":"e","customer_id":"c","occurred_at":1,"amount":1}',
        b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1,"x":"\\ud800"}',
        b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1,"x":"\\udc00"}',
        b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1,"x":1e400}',
        b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1e400}',
        b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1,"x":' + b"9" * 4000 + b"}",
        b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1,"x":' + b"9" * 4400 + b"}",
        b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1,"x":"\xff"}',
        b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1} \n',
        b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1}x',
        b'\xef\xbb\xbf{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1}',
    ],
)
def test_the_fast_route_agrees_on_edge_cases(value: bytes) -> None:
    both_routes(value)


@pytest.mark.parametrize("depth", [900, 990, 1000, 1023, 1024, 1025, 1500])
def test_the_fast_route_agrees_on_deep_nesting(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    both_routes(b'{"event_id":"e","customer_id":"c","occurred_at":1,"amount":1,"x":%s}' % nested)


@FUZZ
@given(JSON_VALUES)
def test_fuzz_the_fast_route_agrees_on_arbitrary_json(value: Any) -> None:
    both_routes(json.dumps(value).encode())  # ASCII, may hold NaN, huge ints, \ud800


@FUZZ
@given(VALID_ISH_OBJECTS, st.booleans())
def test_fuzz_the_fast_route_agrees_on_valid_ish_objects(obj: dict[str, Any], ascii: bool) -> None:
    try:
        both_routes(json.dumps(obj, allow_nan=False, ensure_ascii=ascii).encode("utf-8", "replace"))
    except ValueError:  # NaN / inf
        return


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_the_fast_route_agrees_on_mutated_events(noise: bytes) -> None:
    """A valid purchase with bytes spliced in at a drawn place."""
    value = raw(P, channel="web", store_id="s-1", points_earned=3)
    at = noise[0] % len(value) if noise else 0
    both_routes(value[:at] + noise[1:] + value[at:])


# --------------------------------------------------------------------------
# dead letters


def test_dead_letter_record_shape() -> None:
    rejected = Rejected("missing_field:amount", "Required field 'amount' is missing.")
    out = dead_letter_record(
        rejected,
        topic="loyalty.purchases",
        partition=3,
        offset=42,
        key=b"c-1",
        value=b'{"a":1}',
        rejected_at_ms=NOW + 7,
    )
    assert orjson.loads(out) == {
        "reason": "missing_field:amount",
        "detail": "Required field 'amount' is missing.",
        "topic": "loyalty.purchases",
        "partition": 3,
        "offset": 42,
        "key": "c-1",
        "key_encoding": "utf-8",
        "payload": '{"a":1}',
        "payload_encoding": "utf-8",
        "payload_truncated": False,
        "payload_bytes": 7,
        "rejected_at": "2024-05-01T10:00:00.007Z",
    }


def dead_letter(key: bytes | None, value: bytes | None, at_ms: int = 0, limit: int = 4096) -> Any:
    out = dead_letter_record(
        Rejected("not_json", "Bad."),
        topic="t",
        partition=0,
        offset=0,
        key=key,
        value=value,
        rejected_at_ms=at_ms,
        max_payload_bytes=limit,
    )
    return orjson.loads(out)


def test_dead_letter_tombstone_with_binary_key() -> None:
    record = dead_letter(b"\xff\x00", None)
    assert (record["key"], record["key_encoding"]) == ("/wA=", "base64")
    assert record["payload"] is None and record["payload_encoding"] is None
    assert record["payload_bytes"] == 0 and record["payload_truncated"] is False
    assert record["rejected_at"] == "1970-01-01T00:00:00.000Z"


def test_dead_letter_cuts_utf8_on_a_character_boundary() -> None:
    record = dead_letter(None, "ab\u00e9\u20ac".encode(), at_ms=-1, limit=3)
    assert record["key"] is None and record["key_encoding"] is None
    assert record["payload"] == "ab" and record["payload_truncated"] is True
    assert record["payload_bytes"] == 7
    assert record["rejected_at"] == "1969-12-31T23:59:59.999Z"
    assert dead_letter(None, "ab\u00e9\u20ac".encode(), limit=4)["payload"] == "ab\u00e9"


def test_dead_letter_base64_for_non_utf8_value() -> None:
    record = dead_letter(None, b"\xff" * 10, limit=4)
    assert record["payload"] == "/////w==" and record["payload_encoding"] == "base64"
    assert record["payload_truncated"] is True and record["payload_bytes"] == 10


def test_dead_letter_rejects_absurd_clock() -> None:
    with pytest.raises(ValueError, match="outside"):
        dead_letter_record(
            Rejected("null_value", "x."),
            topic="t",
            partition=0,
            offset=0,
            key=None,
            value=None,
            rejected_at_ms=10**18,
        )


@FUZZ
@given(
    st.none() | st.binary(max_size=300) | st.text(max_size=100).map(str.encode),
    st.none() | st.binary(max_size=20),
    st.integers(min_value=0, max_value=64),
)
def test_fuzz_dead_letter_payload_is_a_prefix(
    value: bytes | None, key: bytes | None, limit: int
) -> None:
    out = dead_letter_record(
        Rejected("not_json", "Bad."),
        topic="t",
        partition=1,
        offset=2,
        key=key,
        value=value,
        rejected_at_ms=NOW,
        max_payload_bytes=limit,
    )
    record = orjson.loads(out)
    if key is not None:
        decoded_key = (
            record["key"].encode()
            if record["key_encoding"] == "utf-8"
            else base64.b64decode(record["key"])
        )
        assert decoded_key == key
    if value is None:
        assert record["payload"] is None and record["payload_bytes"] == 0
        return
    if record["payload_encoding"] == "utf-8":
        prefix = record["payload"].encode()
        assert not record["payload_truncated"] or len(prefix) > limit - 4
    else:
        assert record["payload_encoding"] == "base64"
        prefix = base64.b64decode(record["payload"], validate=True)
        assert prefix == value[:limit]
    assert value.startswith(prefix) and len(prefix) <= limit
    assert record["payload_truncated"] == (len(value) > limit)
    assert record["payload_bytes"] == len(value)
