"""The broker adapter: the rewind rules that keep Faust from skipping fetched
records, and pins of every Faust/aiokafka/mode internal it touches."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import importlib
import inspect
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import faust
import pytest
from faust.types import TP

from stream_app.faust_adapter import (
    BatchConsumer,
    ChangelogRecord,
    restore_directly,
    split_inactive,
    uncommitted,
)
from stream_app.settings import Settings
from stream_app.worker import build


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


async def test_a_table_recovery_overtaken_by_a_rebalance_loads_nothing(tmp_path: Path) -> None:
    """Faust completes a recovery overtaken by a new assignment and sends
    on_rebalance_complete before it gives up for the next one: the worker must not
    load (the chaos test saw ~1,100 events lost) until the current one completes."""
    worker = build(Settings(store="memory", data_dir=tmp_path, app_id="overtaken"))
    readiness = worker.views.worker.readiness
    recovery = worker.app.tables.recovery  # type: ignore[attr-defined]
    recovery.signal_recovery_start.set()  # Recovery.on_rebalance: a newer assignment
    await worker.app.on_rebalance_complete.send()
    assert not readiness.recovered
    recovery.signal_recovery_start.clear()  # the recovery loop took the new one
    await worker.app.on_rebalance_complete.send()
    assert readiness.recovered


async def test_a_batch_being_handled_when_the_worker_stops_is_handled_whole() -> None:
    """Stopping, Faust cancels the drain loop, maybe while a batch settles: the batch
    still completes (all its writes reach the broker), is not acked (the next owner
    reads it again, as repeats), and the cancellation goes on."""
    handled: list[object] = []
    acked: list[object] = []

    class Handler:
        topics = frozenset({"purchases"})

        async def handle(self, messages: list[object]) -> None:
            await asyncio.sleep(0.05)  # settle: waiting for the broker's acks
            handled.extend(messages)

    consumer = SimpleNamespace(
        assignment=lambda: {P0}, ack=acked.append, _commit_every=None, _n_acked=0
    )
    batch = [SimpleNamespace(tp=P0, offset=7)]
    handing = asyncio.ensure_future(BatchConsumer._hand_over(consumer, Handler(), batch))
    await asyncio.sleep(0.01)
    handing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handing
    assert handled == batch and acked == []


def test_the_livelock_check_leaves_changelog_partitions_alone() -> None:
    """A paused changelog partition moved on by the worker's own writes is no
    stalled stream (Faust logged an ERROR every ~7 s for each, from 5 minutes on);
    input partitions are still checked."""
    checked: list[TP] = []
    thread = SimpleNamespace(verify_event_path=lambda now, tp: checked.append(tp))
    app = SimpleNamespace(tables=SimpleNamespace(changelog_topics={CHANGELOG.topic}))
    consumer = SimpleNamespace(app=app, _thread=thread)
    BatchConsumer.verify_event_path(consumer, 1.0, CHANGELOG)  # type: ignore[arg-type]
    BatchConsumer.verify_event_path(consumer, 1.0, P0)  # type: ignore[arg-type]
    assert checked == [P0]


class FakeTable:
    recovery_buffer_size = 2

    def __init__(self) -> None:
        self.applied: list[list[int]] = []

    def apply_changelog_batch(self, batch: list[ChangelogRecord]) -> None:
        self.applied.append([r.message.offset for r in batch])


class FakeRecovery:
    """The attributes of faust's Recovery that restore_directly reads and writes."""

    def __init__(self, table: FakeTable, highwater: int) -> None:
        self.in_recovery = True
        self.active_offsets: dict[TP, int | None] = {CHANGELOG: 1}
        self.active_highwaters = {CHANGELOG: highwater}
        self.tp_to_table = {CHANGELOG: table}
        self.buffers: defaultdict[FakeTable, list[ChangelogRecord]] = defaultdict(list)
        self.buffer_sizes: dict[TP, int] = {}
        self.signal_recovery_end = asyncio.Event()

    def need_recovery(self) -> bool:
        offset = self.active_offsets[CHANGELOG]
        return offset is None or self.active_highwaters[CHANGELOG] - offset > 0

    def flush_buffers(self) -> None:
        for table, buffer in self.buffers.items():
            table.apply_changelog_batch(buffer)
            buffer.clear()

    def _set_recovery_ended(self) -> None:
        self.in_recovery = False


async def test_changelog_records_restored_directly_skip_what_was_applied_and_end_the_recovery() -> (
    None
):
    """Offsets up to the last applied are skipped; records are written a buffer at a
    time; the recovery ends (buffers flushed, its end signalled) with the record at
    the highwater, not before."""
    table = FakeTable()
    recovery = FakeRecovery(table, highwater=6)
    app = SimpleNamespace(tables=SimpleNamespace(recovery=recovery))

    def messages(*offsets: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(tp=CHANGELOG, offset=o) for o in offsets]

    restore_directly(app, messages(0, 1, 2, 3, 4))  # type: ignore[arg-type]
    assert table.applied == [[2, 3]] and len(recovery.buffers[table]) == 1
    assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()
    assert recovery.active_offsets[CHANGELOG] == 4
    restore_directly(app, messages(4, 5, 6))  # type: ignore[arg-type]
    assert table.applied == [[2, 3], [4, 5], [6]]
    assert not recovery.in_recovery and recovery.signal_recovery_end.is_set()


# The upstream code that stream_app/faust_adapter.py copies, overrides, calls
# past the public API or bypasses, and the constructors that define the private
# attributes it reads. An upgrade that changes one of them fails here: re-read
# the new code, adapt the adapter, then update the digest.
PINNED = {
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer:Consumer.__init__": "302410d59e6972d1",
    "faust.transport.consumer:Consumer.ack": "5fcf41cf45153475",
    "faust.transport.consumer:Consumer.track_message": "217d7f1399a4cd8e",
    "faust.transport.consumer:Consumer._add_gap": "4df2573ded7c1c2c",
    "faust.transport.consumer:Consumer.getmany": "4b168d84882a70d6",
    "faust.transport.consumer:Consumer._get_active_partitions": "b24897f3c7afdb5d",
    "faust.transport.consumer:Consumer.commit": "a354437baaa08bf8",
    "faust.transport.consumer:ThreadDelegateConsumer.__init__": "7072ae80eac1ff62",
    "faust.transport.consumer:ThreadDelegateConsumer._getmany": "f9d47aa9010b5ff2",
    "faust.transport.consumer:ThreadDelegateConsumer.seek_to_committed": "f1d483b861b0328b",
    "faust.transport.consumer:ThreadDelegateConsumer.highwater": "f52cb0d26a713c3a",
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": "0870ec53dea75083",
    "faust.transport.drivers.aiokafka:Consumer.verify_event_path": "a17e8f0610e1abcb",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer": (
        "c2701bfc3e6f6cad"
    ),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._ensure_consumer": (
        "ff4a4c693b7ec63f"
    ),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.getmany": "26fc5fc9f3b667e1",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.seek_to_beginning": (
        "bd4250b8d1e76d33"
    ),
    "faust.transport.drivers.aiokafka:Producer._ensure_producer": "5592a4bbdf251325",
    "faust.transport.drivers.aiokafka:Producer.send": "0b5bd08f52e5e2a9",
    "faust.stores.rocksdb:Store.__init__": "c7c0fa2989e8ab4a",
    "faust.stores.rocksdb:Store._set": "4227e561e288d941",
    "faust.stores.rocksdb:Store._db_for_partition": "cb7e67d5f9efc4bc",
    "faust.stores.rocksdb:Store._visible_items": "545dc16a2b25e4a4",
    "faust.stores.rocksdb:Store.set_persisted_offset": "b4c811926678346e",
    "faust.stores.rocksdb:Store.apply_changelog_batch": "ea3344d369fc4ab5",
    "faust.stores.memory:Store.__init__": "d1705e3cfe39e787",
    "faust.stores.memory:Store.apply_changelog_batch": "71863e3cd727aac2",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.__init__": "01506f316191f7c9",
    "aiokafka.producer.producer:AIOKafkaProducer.create_batch": "c4efda4bb7a09741",
    "aiokafka.producer.producer:AIOKafkaProducer.send_batch": "bf42b0f0c5c0646d",
    "mode.threads:QueueServiceThread.call_thread": "479edda75b54734b",
    # on_rebalance_complete is sent before the generation check; on_rebalance sets
    # signal_recovery_start, the recovery loop (a service task) clears it, _wait
    # reads it as "rebalance again"
    "faust.tables.recovery:Recovery.on_recovery_completed": "6ef567acf072e46d",
    "faust.tables.recovery:Recovery.on_rebalance": "aa4d997a1795ceae",
    "faust.tables.recovery:Recovery._restart_recovery": "6bd8a8558a2dffe4",
    "faust.tables.recovery:Recovery._wait": "ec7429b70176f8c6",
    # restore_directly does with a poll batch's changelog records what the slurp
    # loop does with each (offsets, buffers, the recovery's end), on the
    # attributes its constructor defines; the consumer stops flow on a rebalance
    "faust.tables.recovery:Recovery._slurp_changelogs": "7825c7e50f766d5a",
    "faust.tables.recovery:Recovery.__init__": "acec96bd78fac09b",
    "faust.tables.recovery:Recovery._set_recovery_ended": "84badf3f2cfe0d02",
    "faust.tables.recovery:Recovery.flush_buffers": "6fa9c17f1071018c",
    "faust.tables.recovery:Recovery.need_recovery": "fd1dc345b5d5e121",
    "faust.transport.consumer:Consumer.stop_flow": "cf7e875a2b0d40e8",
}

# Every private member of an upstream object the adapter uses: where it is defined.
PRIVATE_MEMBERS = {
    "_drain_messages": "faust.transport.consumer:Consumer._drain_messages",
    "_read_offset": "faust.transport.consumer:Consumer.__init__",
    "_committed_offset": "faust.transport.consumer:Consumer.__init__",
    "_buffered_partitions": "faust.transport.consumer:Consumer.__init__",
    "_n_acked": "faust.transport.consumer:Consumer.__init__",
    "_commit_every": "faust.transport.consumer:Consumer.__init__",
    "_add_gap": "faust.transport.consumer:Consumer._add_gap",
    "_get_active_partitions": "faust.transport.consumer:Consumer._get_active_partitions",
    "_getmany": "faust.transport.consumer:ThreadDelegateConsumer._getmany",
    "_thread": "faust.transport.consumer:ThreadDelegateConsumer.__init__",
    "_new_consumer_thread": "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread",
    "_create_worker_consumer": (
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer"
    ),
    "_ensure_consumer": "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._ensure_consumer",
    "_fetch_max_wait_ms": "aiokafka.consumer.consumer:AIOKafkaConsumer.__init__",
    "_ensure_producer": "faust.transport.drivers.aiokafka:Producer._ensure_producer",
    "_key_index": "faust.stores.rocksdb:Store.__init__",
    "_db_for_partition": "faust.stores.rocksdb:Store._db_for_partition",
    "_visible_items": "faust.stores.rocksdb:Store._visible_items",
    "_key_partition": "faust.stores.memory:Store.__init__",
    "_set_recovery_ended": "faust.tables.recovery:Recovery._set_recovery_ended",
}
ADAPTER = Path(__file__).parents[2] / "stream_app" / "faust_adapter.py"


@pytest.mark.parametrize("where", sorted(PINNED))
def test_the_faust_code_we_rely_on_is_the_code_we_read(where: str) -> None:
    module, _, name = where.partition(":")
    owner: object = importlib.import_module(module)
    for part in name.split("."):
        owner = getattr(owner, part)
    owner = getattr(owner, "fun", owner)  # a mode service task: the function it runs
    digest = hashlib.sha256(inspect.getsource(owner).encode()).hexdigest()[:16]
    assert digest == PINNED[where], f"{where} changed upstream (faust {faust.__version__})"


def _private_attributes(path: Path) -> set[str]:
    """Names of ``x._name`` uses and ``def _name`` overrides in a module, dunders aside."""
    tree = ast.parse(path.read_text())
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    defined = {
        n.name for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)
    }
    own = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    names = {a for a in used | defined if a.startswith("_") and not a.startswith("__")}
    return names - own - {"_stopped"}  # mode's Service._stopped: a public-facing event


def test_every_private_member_the_adapter_touches_is_pinned() -> None:
    ours = {"_seek", "_hand_over", "_submit", "_send_batches", "_send_end_marker", "_producer"}
    ours |= {"_restoring", "_stored_in_rocksdb"}
    ours |= {"_batches", "_stores", "_changes", "_sent", "_store", "_partition"}
    touched = _private_attributes(ADAPTER) - ours
    assert touched <= PRIVATE_MEMBERS.keys(), touched - PRIVATE_MEMBERS.keys()
    assert set(PRIVATE_MEMBERS.values()) <= PINNED.keys()


def test_no_other_module_touches_those_internals() -> None:
    root = ADAPTER.parents[1]
    for package in ("stream_app", "agents", "tables", "loyalty_pulse_dev", "benchmarks"):
        for path in (root / package).rglob("*.py"):
            if path != ADAPTER:
                leaked = _private_attributes(path) & PRIVATE_MEMBERS.keys()
                assert not leaked, f"{path.relative_to(root)} touches {sorted(leaked)}"
