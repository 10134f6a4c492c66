"""End to end on a real broker: events in, totals and dead letters out."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson

from loyalty_pulse_dev.simulator import SimulationConfig, generate, to_json_line
from tests.e2e.conftest import Cluster
from tests.e2e.kafka_io import produce, read_all
from tests.malformed import line, malformed_event, missing_customer
from tests.oracle import expected_totals, observed

START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=200)


def simulated(customers: int, days: float, seed: int = 7) -> list[bytes]:
    config = SimulationConfig(customers=customers, seed=seed, start=START, days=days)
    return [to_json_line(e).rstrip() for e in generate(config)]


def to_records(cluster: Cluster, lines: list[bytes], misroute_share: float = 0.0, seed: int = 1):
    rng = random.Random(seed)
    topics = cluster.settings.topics
    for raw in lines:
        event = orjson.loads(raw)
        key = event["customer_id"].encode()
        if rng.random() < misroute_share:
            key = f"pos-terminal-{rng.randrange(1000)}".encode()
        yield topics[event["type"]], key, raw


def test_totals_match_oracle_with_misrouted_keys(cluster: Cluster) -> None:
    lines = simulated(customers=300, days=120)
    worker = cluster.start_worker()
    asyncio.run(produce(cluster.settings, to_records(cluster, lines, misroute_share=0.3)))
    want = expected_totals(lines)
    totals = cluster.wait_until(worker, lambda t: observed(t) == want)
    assert totals["rejected_total"] == 0
    assert sorted(totals["partitions"]) == [0, 1, 2, 3]
    assert worker.get("/readyz") == {
        "status": "ready",
        "partitions": [0, 1, 2, 3],
        "redis": {"ok": True},
    }


def with_redeliveries(lines: list[bytes], copies: int, seed: int) -> list[bytes]:
    """``copies`` distinct lines sent twice, the copy a few dozen events after its original
    (within the dedup horizon, as producer retries and consumer replays do)."""
    rng = random.Random(seed)
    due: dict[int, list[bytes]] = {}
    for n in rng.sample(range(len(lines)), copies):
        due.setdefault(min(n + rng.randint(1, 50), len(lines) - 1), []).append(lines[n])
    out: list[bytes] = []
    for n, raw in enumerate(lines):
        out.append(raw)
        out.extend(due.get(n, []))
    return out


def test_redeliveries_count_once_even_on_another_partition(cluster: Cluster) -> None:
    lines = simulated(customers=150, days=60, seed=11)
    copies = len(lines) // 5
    records = list(to_records(cluster, with_redeliveries(lines, copies, 2), misroute_share=0.3))
    worker = cluster.start_worker()
    asyncio.run(produce(cluster.settings, records))
    want = expected_totals(lines)
    totals = cluster.wait_until(
        worker, lambda t: observed(t) == want and t["duplicates_since_start"] == copies
    )
    assert totals["rejected_total"] == 0


HOSTILE: list[tuple[bytes | None, str]] = [
    (b"not json at all", "not_json"),
    (b"[1, 2, 3]", "not_object"),
    (None, "null_value"),
    (b"\xff\xfe{}", "invalid_utf8"),
    (b"[" * 5000 + b"]" * 5000, "too_deep"),
    (b'{"x": "' + b"a" * 70_000 + b'"}', "too_large"),
    (
        b'{"event_id": "e", "customer_id": "c", "occurred_at": 1, "amount": 1e999}',
        "out_of_range:amount",
    ),
]


def test_malformed_go_to_dead_letter_and_good_events_are_unaffected(cluster: Cluster) -> None:
    good = simulated(customers=80, days=30, seed=3)
    bad = [malformed_event(n) for n in range(24)] + [missing_customer(0)]
    topic = cluster.settings.topic_purchases
    records = list(to_records(cluster, good))
    records += [(cluster.settings.topics[e["type"]], b"k", line(e)) for e, _ in bad]
    records += [(topic, b"k", value) for value, _ in HOSTILE]
    random.Random(5).shuffle(records)
    worker = cluster.start_worker()
    asyncio.run(produce(cluster.settings, records))
    want_reasons = Counter(r for _, r in bad) + Counter(r for _, r in HOSTILE)
    totals = cluster.wait_until(
        worker,
        lambda t: (
            observed(t) == expected_totals(good)
            and t["rejected_total"] == sum(want_reasons.values())
        ),
    )
    assert totals["rejected"] == dict(want_reasons)
    letters = asyncio.run(read_all(cluster.settings, cluster.settings.topic_dead_letter))
    assert Counter(str(d["reason"]) for d in letters) == want_reasons
    assert all(d["topic"] in cluster.settings.topics.values() for d in letters)
    assert all(isinstance(d["offset"], int) and isinstance(d["partition"], int) for d in letters)
    by_reason = {d["reason"]: d for d in letters}
    assert by_reason["null_value"]["payload"] is None
    assert by_reason["invalid_utf8"]["payload_encoding"] == "base64"
    assert by_reason["too_large"]["payload_truncated"] is True


def crash_a_quarter_in_then_restart(cluster: Cluster, seed: int, **first: str) -> None:
    """A worker SIGKILLed a quarter into the backlog (``first``: its extra settings);
    the restarted worker must end with the totals of every event exactly once."""
    lines = simulated(customers=3000, days=150, seed=seed)
    assert len(lines) > 20_000
    want = expected_totals(lines)
    asyncio.run(produce(cluster.settings, to_records(cluster, lines, misroute_share=0.2)))
    worker = cluster.start_worker(**first)
    cluster.wait_until(worker, lambda t: sum(t["events"].values()) > len(lines) // 4, timeout_s=120)
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    second = cluster.start_worker()
    totals = cluster.wait_until(second, lambda t: observed(t) == want, timeout_s=180)
    assert totals["rejected_total"] == 0


def test_sigkill_mid_stream_then_restart_gives_uninterrupted_totals(cluster: Cluster) -> None:
    crash_a_quarter_in_then_restart(cluster, seed=21)


def test_restart_of_a_group_that_never_committed_processes_every_event(
    cluster: Cluster,
) -> None:
    """A crash before the first offset commit: the restarted worker has no committed
    offsets to seek to. Faust drops records it fetched while recovering, and without
    the rewind in stream_app.faust_adapter they were skipped or applied out of order."""
    crash_a_quarter_in_then_restart(cluster, seed=22, commit_interval="3600")


def test_state_rebuilt_from_the_changelog_alone_is_exact(cluster: Cluster) -> None:
    """A graceful stop, then a worker with an empty data dir (a new machine):
    every table is rebuilt from its changelog. On the embedded broker this needs
    single-record batches (Tansu under-reports a changelog's end otherwise)."""
    lines = simulated(customers=1500, days=120, seed=5)
    want = expected_totals(lines)
    asyncio.run(produce(cluster.settings, to_records(cluster, lines, misroute_share=0.2)))
    first = cluster.start_worker("first")
    cluster.wait_until(first, lambda t: observed(t) == want, timeout_s=120)
    first.proc.terminate()
    assert first.proc.wait(timeout=60) == 0
    fresh = cluster.start_worker("fresh-machine")
    totals = cluster.wait_until(fresh, lambda t: observed(t) == want, timeout_s=120)
    assert totals["rejected_total"] == 0
    fresh.proc.terminate()
    assert fresh.proc.wait(timeout=60) == 0
    again = cluster.start_worker("fresh-machine")  # same data dir: local state reused
    cluster.wait_until(again, lambda t: observed(t) == want, timeout_s=120)


def test_replay_cli_acceptance_10k_with_redeliveries_and_malformed(
    cluster: Cluster, tmp_path
) -> None:
    good = simulated(customers=1000, days=190, seed=99)[:9_800]
    delivered = with_redeliveries(good, 100, seed=4)
    bad = [malformed_event(n) for n in range(100)]
    rng = random.Random(4)
    lines = list(delivered)
    for event, _ in bad:
        lines.insert(rng.randrange(len(lines) + 1), line(event))
    assert len(lines) == 10_000
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, **cluster.env(6066, "replay")}
    done = subprocess.run(
        [sys.executable, "-m", "stream_app.cli", "replay", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "sent 10,000 events" in done.stderr
    worker = cluster.start_worker()
    want = expected_totals(good)
    totals = cluster.wait_until(
        worker, lambda t: observed(t) == want and t["rejected_total"] == 100
    )
    assert totals["duplicates_since_start"] == 100
    letters = asyncio.run(read_all(cluster.settings, cluster.settings.topic_dead_letter))
    got = sorted((orjson.loads(str(d["payload"]))["event_id"], d["reason"]) for d in letters)
    assert got == sorted((e["event_id"], reason) for e, reason in bad)
