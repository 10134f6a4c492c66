"""The results topic's keys and what a refill makes of its records (pure)."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from stream_app.keys import RESULTS_SPIKE_KEY, ResultKey
from stream_app.refill_snapshot import final_day_value, snapshot_of, spike_value
from stream_app.results_log import last_values

DAYS = st.integers(min_value=0, max_value=60_000)


@given(
    st.sampled_from(["partial", "final", "final-day"]),
    DAYS,
    st.integers(min_value=0, max_value=1023),
)
def test_result_keys_round_trip(kind: str, day: int, partition: int) -> None:
    key = ResultKey(kind, day, partition if kind == "partial" else None)
    assert ResultKey.decode(key.encode()) == key


def test_other_keys_are_not_result_keys() -> None:
    assert ResultKey.decode(RESULTS_SPIKE_KEY) is None
    assert ResultKey.decode(b"final/2024-01-01/extra/parts") is None
    assert ResultKey(kind="final", day=19_723).encode() == b"final/2024-01-01"


@given(st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c"]), st.none() | st.binary(max_size=3))))
def test_last_values_keep_what_a_compacted_topic_keeps(
    records: list[tuple[bytes, bytes | None]],
) -> None:
    want = {}
    for key in {k for k, _ in records}:
        last = [v for k, v in records if k == key][-1]
        if last is not None:
            want[key] = last
    assert last_values(records) == want


def test_a_snapshot_restores_merged_days_pending_partials_and_the_final_days() -> None:
    values = {
        ResultKey("final", 100).encode(): b"doc100",
        ResultKey("final", 101).encode(): b"doc101",
        ResultKey("partial", 101, 0).encode(): b"late republish of a merged day",
        ResultKey("partial", 102, 0).encode(): b"p0",
        ResultKey("partial", 102, 1).encode(): b"p1",
        ResultKey("final-day", 101).encode(): final_day_value(90),
        ResultKey("final-day", 103).encode(): final_day_value(90),
        RESULTS_SPIKE_KEY: spike_value({"checked_through": "101"}, ['{"id": "x"}']),
        b"a-key-of-a-later-version": b"ignored",
    }
    snap = snapshot_of(values)
    assert snap.finals == {100: b"doc100", 101: b"doc101"}
    assert snap.partials == {102: {0: b"p0", 1: b"p1"}}
    assert snap.final_days == (103, 90)
    assert snap.spike_state == {"checked_through": "101"}
    assert snap.recent_alerts == ['{"id": "x"}']


def test_final_days_never_below_a_day_with_results() -> None:
    # the final-day record of day 105 was trimmed or never landed; a partial of it did
    snap = snapshot_of(
        {
            ResultKey("final-day", 103).encode(): final_day_value(90),
            ResultKey("partial", 105, 2).encode(): b"p",
        }
    )
    assert snap.final_days == (105, 90)
    assert snapshot_of({}).final_days is None
    only_docs = snapshot_of(
        {ResultKey("final", 7).encode(): b"d", ResultKey("final", 9).encode(): b"d"}
    )
    assert only_docs.final_days == (9, 7)


def test_final_day_values_are_readable() -> None:
    assert orjson.loads(final_day_value(19_723)) == {"first": "2024-01-01"}
