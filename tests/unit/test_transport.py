"""The rewind rules that keep Faust from skipping fetched records."""

from __future__ import annotations

from dataclasses import dataclass

from faust.types import TP

from stream_app.transport import split_inactive, uncommitted


@dataclass
class Rec:
    offset: int


P0, P1 = TP("purchases", 0), TP("purchases", 1)
CHANGELOG = TP("lp-customers-changelog", 0)


def test_partitions_without_a_committed_offset_are_rewound_changelogs_are_not() -> None:
    committed = {P0: None, P1: 0, TP("purchases", 2): 17, CHANGELOG: None}
    assert uncommitted(committed, {"lp-customers-changelog"}) == [P0, P1]


def test_every_partition_with_a_committed_offset_is_left_to_the_seek() -> None:
    assert uncommitted({P0: 5, P1: 1}, set()) == []


def test_records_of_partitions_gone_inactive_are_refetched_from_their_first_offset() -> None:
    records = {P0: [Rec(10), Rec(11)], P1: [Rec(40), Rec(41), Rec(42)]}
    kept, rewind = split_inactive(records, {P0})
    assert kept == {P0: records[P0]}
    assert rewind == {P1: 40}


def test_an_empty_batch_needs_no_rewind() -> None:
    kept, rewind = split_inactive({P0: [], P1: [Rec(3)]}, {P1})
    assert kept == {P1: [Rec(3)]}
    assert rewind == {}
