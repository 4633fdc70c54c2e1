"""Create the platform's topics with the partitions and retention from the topic table."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from aiops_common.broker.addresses import bootstrap_servers
from aiops_common.topics import ALL_TOPICS, TopicSpec

__all__ = ["ensure_topics"]


async def ensure_topics(broker_url: str, prefix: str = "", specs: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
    """Create any missing topic; returns the names that were created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker_url))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=s.full_name(prefix),
                num_partitions=s.partitions,
                replication_factor=1,
                topic_configs={"retention.ms": str(int(s.retention.total_seconds() * 1000))},
            )
            for s in specs
            if s.full_name(prefix) not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
