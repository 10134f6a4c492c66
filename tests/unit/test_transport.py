"""The rewind rules that keep Faust from skipping fetched records."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass

import faust
import pytest
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


# The Faust internals that stream_app/transport.py, tables/partitioned.py and
# tables/writer.py copy, reach into or (Producer.send, for changelog batches)
# bypass. A faust-streaming upgrade that changes one of them fails here:
# re-read the new code, adapt ours, then update the digest.
PINNED = {
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer:Consumer.ack": "5fcf41cf45153475",
    "faust.transport.consumer:Consumer.track_message": "217d7f1399a4cd8e",
    "faust.stores.rocksdb:Store._set": "4227e561e288d941",
    "faust.stores.memory:Store.apply_changelog_batch": "71863e3cd727aac2",
    "faust.stores.rocksdb:Store.apply_changelog_batch": "ea3344d369fc4ab5",
    "faust.transport.drivers.aiokafka:Producer._ensure_producer": "5592a4bbdf251325",
    "faust.transport.drivers.aiokafka:Producer.send": "0b5bd08f52e5e2a9",
}


@pytest.mark.parametrize("where", sorted(PINNED))
def test_the_faust_code_we_rely_on_is_the_code_we_read(where: str) -> None:
    module, _, name = where.partition(":")
    owner: object = importlib.import_module(module)
    for part in name.split("."):
        owner = getattr(owner, part)
    digest = hashlib.sha256(inspect.getsource(owner).encode()).hexdigest()[:16]
    assert digest == PINNED[where], f"{where} changed upstream (faust {faust.__version__})"
