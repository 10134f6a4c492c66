"""Create the project's topics and check their partition counts."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_app.kafka_security import admin_client
from stream_app.settings import Settings

TOPIC_EXISTS = 36
# The cluster id the embedded broker runs with (loyalty_pulse_dev/broker.py); a
# worker that sees it ends changelog writes with end markers (faust_adapter.py).
EMBEDDED_CLUSTER_ID = "loyalty-pulse-embedded"


class TopicLayoutError(RuntimeError):
    """An existing topic does not match what loyalty-pulse needs."""


def co_partitioned_topics(settings: Settings) -> list[str]:
    """Topics whose partition p must map to state partition p."""
    return [*settings.topics.values(), settings.topic_rerouted]


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> str | None:
    """Create missing topics; refuse co-partitioned topics with another count.

    Every command creates topics first: some brokers (Tansu among them)
    auto-create a topic on first use with their own partition count.
    Returns the broker's cluster id.
    """
    async with admin_client(settings, timeout_s) as admin:
        await _create(admin, settings)
        await _check_partitions(admin, settings)
        cluster = await admin.describe_cluster()
        return str(cluster["cluster_id"]) if cluster.get("cluster_id") else None


async def _create(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    wanted = [NewTopic(t, settings.partitions, 1) for t in co_partitioned_topics(settings)]
    wanted.append(NewTopic(settings.topic_dead_letter, settings.partitions, 1))
    # One partition: raises and resolves stay in order.
    wanted.append(NewTopic(settings.topic_alerts, 1, 1))
    # One partition read whole by a refill; compacted: the last value per key counts.
    compact = {"cleanup.policy": "compact"}
    wanted.append(NewTopic(settings.topic_results, 1, 1, topic_configs=compact))
    existing = set(await admin.list_topics())
    missing = [t for t in wanted if t.name not in existing]
    if not missing:
        return
    response = await admin.create_topics(missing)
    for name, code, message in _topic_errors(response):
        if code not in (0, TOPIC_EXISTS):
            raise TopicLayoutError(f"cannot create topic {name!r}: {message} (code {code})")


def _topic_errors(response: object) -> list[tuple[str, int, str]]:
    return [(e[0], e[1], e[2] if len(e) > 2 else "") for e in response.topic_errors]  # type: ignore[attr-defined]


async def _check_partitions(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    names = co_partitioned_topics(settings)
    for desc in await admin.describe_topics(names):
        count = len(desc["partitions"])
        if count != settings.partitions:
            raise TopicLayoutError(
                f"topic {desc['topic']!r} has {count} partitions but "
                f"LOYALTY_PULSE_PARTITIONS={settings.partitions}; the input topics must be "
                "co-partitioned: recreate the topic or set the partition count to match"
            )
