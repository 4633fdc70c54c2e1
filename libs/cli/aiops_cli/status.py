"""``aiops status``: is the platform up, what does each topic hold, are the receivers ready."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiops_common.broker import bootstrap_servers
from aiops_common.topics import ALL_TOPICS

__all__ = ["TopicStatus", "http_status", "topic_status"]


@dataclass(frozen=True, slots=True)
class TopicStatus:
    name: str
    partitions: int
    messages: int  # sum over partitions of (end offset - beginning offset)


async def topic_status(broker_url: str, prefix: str) -> list[TopicStatus]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # metadata is lazy in aiokafka
        out = []
        for spec in ALL_TOPICS:
            name = spec.full_name(prefix)
            parts = consumer.partitions_for_topic(name)
            if not parts:
                out.append(TopicStatus(name, 0, 0))
                continue
            tps = [TopicPartition(name, p) for p in parts]
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            out.append(TopicStatus(name, len(tps), sum(ends[tp] - begins[tp] for tp in tps)))
        return out
    except KafkaError as exc:
        raise ConnectionError(f"broker {broker_url} did not answer: {exc}") from exc
    finally:
        await consumer.stop()


def http_status(base_url: str) -> dict[str, str]:
    out = {}
    for path in ("/health", "/ready"):
        try:
            response = httpx.get(base_url + path, timeout=2.0)
            out[path] = f"{response.status_code} {response.json().get('status', '')}"
        except (httpx.HTTPError, ValueError) as exc:
            out[path] = f"unreachable ({type(exc).__name__})"
    return out
