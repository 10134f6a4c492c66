"""Typed KPI terms: merge with a sign, the JSON form, the flat form they replaced."""

from __future__ import annotations

import orjson
import pytest

from stream_app.kpi.meta import terms_from_json, terms_to_json
from stream_app.kpi.params import CLV_WINDOW
from stream_app.kpi.terms import ChurnTerms, KpiTerms, Stats, WindowTerms, merge


def one_customer() -> KpiTerms:
    window = WindowTerms(purchases=Stats(2, 1999, 1, 1), points_issued=20, reward_minor=150)
    window.channels["pos"] = Stats(2, 1999, 1)
    window.segments["member"] = Stats(2, 1999, 1, 1)
    terms = KpiTerms(churn=ChurnTerms(customers_at_start=1, value_at_start=1999))
    terms.windows[30] = window
    return terms


def test_adding_then_subtracting_gives_nothing_and_keeps_no_zero_in_json() -> None:
    total = merge([one_customer(), one_customer()])
    assert total.windows[30].purchases == Stats(4, 3998, 2, 2)
    assert total.windows[30].channels["pos"].orders == 4
    total.add(one_customer(), -1)
    total.add(one_customer(), -1)
    assert total.to_json() == {}


def test_the_json_form_round_trips_through_bytes_with_integer_window_keys() -> None:
    terms = one_customer()
    raw = orjson.dumps(terms_to_json(terms))
    back = terms_from_json(orjson.loads(raw))
    assert back == terms and list(back.windows) == [30]


def test_a_copy_shares_nothing() -> None:
    terms = one_customer()
    copy = terms.copy()
    copy.windows[30].channels["pos"].orders += 1
    assert terms.windows[30].channels["pos"].orders == 2


def test_the_flat_rows_of_state_version_3_read_as_typed_terms() -> None:
    rows = [
        [["w", 30, "orders"], 2],
        [["w", 30, "revenue"], 1999],
        [["w", 30, "active"], 1],
        [["w", 30, "repeat"], 1],
        [["w", 30, "points_issued"], 20],
        [["seg", 30, "member", "orders"], 2],
        [["seg", 30, "member", "revenue"], 1999],
        [["seg", 30, "member", "active"], 1],
        [["seg", 30, "member", "repeat"], 1],
        [["ch", 30, "pos", "orders"], 2],
        [["ch", 30, "pos", "revenue"], 1999],
        [["ch", 30, "pos", "active"], 1],
        [["churn", "customers_at_start"], 1],
        [["churn", "value_at_start"], 1999],
        [["program", "cost_reward_minor"], 150],
    ]
    terms = terms_from_json(rows)
    want = one_customer()
    want.windows[30].reward_minor = 0
    want.windows[CLV_WINDOW] = WindowTerms(reward_minor=150)
    assert terms == want


def test_a_misspelt_term_is_an_error_not_a_zero() -> None:
    with pytest.raises(AttributeError):
        one_customer().churn.chruned  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(KeyError):
        KpiTerms.from_json({"chrun": {}})


def test_a_partition_meta_of_version_1_still_reads() -> None:
    from stream_app.kpi.meta import PartitionMeta

    old = {"meta": 1, "closed_day": 20_000, "unpublished": {"20000": [[["w", 30, "orders"], 2]]}}
    meta = PartitionMeta.from_dict(old)
    assert meta.unpublished[20_000].windows[30].purchases.orders == 2
    assert PartitionMeta.from_dict(meta.to_dict()) == meta
    assert meta.to_dict()["meta"] == 2
