"""Create the topics before the worker starts, and refuse to run on mismatched partitions.

Faust raises PartitionsMismatch late and obscurely when a source topic and a table disagree;
checking here turns it into a clear start-up error.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config.errors import ConfigError
from config.settings import Settings
from streams.kafka.clients import aiokafka_kwargs
from streams.kafka.topics import topic_specs


def replication_config(settings: Settings) -> dict[str, str]:
    """Topic config for the cluster's durability: min.insync.replicas when replicated."""
    if settings.topic_replication < 2:
        return {}
    return {"min.insync.replicas": str(settings.topic_min_insync_replicas)}


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; return the names created. Existing ones are checked, not changed."""
    specs = topic_specs(settings)
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), request_timeout_ms=30000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs.values() if s.name not in existing]
        if wanted:
            await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        num_partitions=s.partitions,
                        replication_factor=settings.topic_replication,
                        topic_configs={**s.config, **replication_config(settings)},
                    )
                    for s in wanted
                ]
            )
        present = [s for s in specs.values() if s.name in existing]
        if present:
            described = await admin.describe_topics([s.name for s in present])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            for s in present:
                if counts.get(s.name) not in (None, s.partitions):
                    raise ConfigError(
                        f"topic {s.name} has {counts[s.name]} partitions but "
                        f"MISSING_ALERTS_TOPIC_PARTITIONS expects {s.partitions}"
                    )
        return [s.name for s in wanted]
    finally:
        await admin.close()
