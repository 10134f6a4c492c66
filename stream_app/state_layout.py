"""Refuse to start on state kept for another partition count.

A customer's state lives in the changelog partition of the input partition
its customer_id hashes to, modulo ``LOYALTY_PULSE_PARTITIONS``. topics.py
refuses input topics whose partition count differs from the setting; but an
operator who adds partitions to the input topics *and* raises the setting to
match passes that check, and the worker would then recover state written
under the old count: customers' states in partitions their events no longer
reach, two states for one customer, partition metas of partitions that meant
other customers. So at start, before Faust declares its topics, every
existing internal topic of the app id that holds state or records keyed by
partition must have the setting's count. The way forward is a new app id and
a replay of the input (docs/operations.md, "Changing the partition count").
"""

from __future__ import annotations

from stream_app.kafka_security import admin_client
from stream_app.settings import Settings
from tables.state import TABLE_NAMES


class StateLayoutError(RuntimeError):
    """The app id's state was written for another partition count."""


def state_topics(settings: Settings) -> list[str]:
    """Internal topics partitioned like the input: the tables' changelogs and
    the rerouted records (misrouted keys sent on to their owning partition)."""
    changelogs = [f"{settings.app_id}-{table}-changelog" for table in TABLE_NAMES]
    return [*changelogs, settings.topic_rerouted]


def mismatch_message(settings: Settings, counts: dict[str, int]) -> str:
    listed = ", ".join(f"{name!r} has {n}" for name, n in sorted(counts.items()))
    return (
        f"the state of LOYALTY_PULSE_APP_ID={settings.app_id!r} was kept for another "
        f"partition count: {listed} partitions but LOYALTY_PULSE_PARTITIONS="
        f"{settings.partitions}. Starting on it would mix customers' states. To change the "
        "partition count, start the workers under a new LOYALTY_PULSE_APP_ID and replay the "
        "input from the beginning (docs/operations.md, 'Changing the partition count'); "
        "otherwise set LOYALTY_PULSE_PARTITIONS back"
    )


async def partition_counts(settings: Settings, timeout_s: float = 30.0) -> dict[str, int]:
    """The partition count of each existing state topic of the app id."""
    async with admin_client(settings, timeout_s) as admin:
        existing = set(await admin.list_topics())
        names = [t for t in state_topics(settings) if t in existing]
        if not names:
            return {}
        return {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(names)}


async def check_state_layout(settings: Settings, timeout_s: float = 30.0) -> None:
    """Raise ``StateLayoutError`` when an existing state topic of the app id has
    a partition count other than ``LOYALTY_PULSE_PARTITIONS``; a new app id (no
    state topics yet) passes."""
    counts = await partition_counts(settings, timeout_s)
    wrong = {name: n for name, n in counts.items() if n != settings.partitions}
    if wrong:
        raise StateLayoutError(mismatch_message(settings, wrong))
