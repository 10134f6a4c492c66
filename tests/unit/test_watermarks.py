"""Spec §2 watermarks: minimum over live sources, idle ones left out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream_app.kpi.watermarks import PartitionTime, SourceWatermarks, stream_watermark

IDLE = 30_000


def test_unknown_until_every_live_source_has_data() -> None:
    w = SourceWatermarks(["a", "b"], IDLE, now_ms=0)
    w.observe("a", 500, now_ms=10)
    assert w.low(now_ms=10) is None
    w.observe("b", 300, now_ms=20)
    assert w.low(now_ms=20) == 300
    assert w.high() == 500


def test_idle_source_is_left_out_and_rejoins_when_it_speaks() -> None:
    w = SourceWatermarks(["a", "b"], IDLE, now_ms=0)
    w.observe("a", 100, now_ms=0)
    w.observe("b", 900, now_ms=0)
    w.observe("b", 1000, now_ms=IDLE + 1)
    assert w.low(now_ms=IDLE + 1) == 1000  # "a" idle for longer than the timeout
    w.observe("a", 200, now_ms=IDLE + 2)
    assert w.low(now_ms=IDLE + 2) == 200


def test_a_source_with_records_not_read_yet_is_not_idle() -> None:
    w = SourceWatermarks(["a", "b"], IDLE, now_ms=0)
    w.observe("a", 100, now_ms=0)
    w.observe("b", 900, now_ms=0)
    w.pending(["a", "unknown"], now_ms=IDLE + 1)  # "a" has a backlog: the reader was away
    assert w.low(now_ms=IDLE + 1) == 100
    assert w.low(now_ms=2 * IDLE + 2) == 900  # then read to its end and quiet: idle


def test_all_idle_is_the_newest_data_so_a_finished_replay_closes_its_days() -> None:
    w = SourceWatermarks(["a", "b", "c"], IDLE, now_ms=0)
    w.observe("a", 100, now_ms=0)
    w.observe("b", 50, now_ms=0)
    assert w.report(now_ms=1) == PartitionTime(None, holds_back=True)  # "c" may still speak
    assert w.low(now_ms=10 * IDLE) == 100
    assert w.report(now_ms=10 * IDLE) == PartitionTime(100)


def test_nothing_ever_read_leaves_the_partition_out() -> None:
    w = SourceWatermarks(["a"], IDLE, now_ms=0)
    assert w.report(now_ms=10 * IDLE) == PartitionTime(None, holds_back=False)


def test_the_stream_watermark_waits_for_every_partition_and_skips_empty_ones() -> None:
    assert stream_watermark({0: PartitionTime(5)}, partitions=2) is None
    assert stream_watermark({0: PartitionTime(5), 1: PartitionTime(None, True)}, 2) is None
    assert stream_watermark({0: PartitionTime(5), 1: PartitionTime(3)}, 2) == 3
    assert stream_watermark({0: PartitionTime(5), 1: PartitionTime(None)}, 2) == 5
    assert stream_watermark({0: PartitionTime(None), 1: PartitionTime(None)}, 2) is None


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 10**6)), max_size=50))
def test_low_is_the_minimum_of_per_source_maxima_when_none_idle(obs: list[tuple[str, int]]) -> None:
    w = SourceWatermarks("abc", IDLE, now_ms=0)
    for source, t in obs:
        w.observe(source, t, now_ms=0)
    maxima = {
        s: max(t for src, t in obs if src == s) for s in "abc" if any(src == s for src, _ in obs)
    }
    assert w.low(now_ms=0) == (min(maxima.values()) if len(maxima) == 3 else None)
