"""Read a topic from its beginning: until a condition holds (tests, benchmarks, tools) or to its end (agents)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from aiops_common.broker.addresses import bootstrap_servers
from aiops_common.topics import TopicSpec

__all__ = ["read_to_end", "read_values"]


async def read_values(
    broker_url: str,
    spec: TopicSpec,
    prefix: str = "",
    *,
    until: Callable[[list[bytes]], bool],
    timeout_s: float = 30.0,
) -> list[bytes]:
    """Every message value of the topic, read from offset 0 of each partition, once ``until`` is true.

    Returns what was read when ``timeout_s`` passes, so a caller can assert on it.
    """
    name = spec.full_name(prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), group_id=None)
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        parts: set[int] = set()
        while not parts and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()  # metadata is lazy in aiokafka
            parts = consumer.partitions_for_topic(name) or set()
            if not parts:
                await asyncio.sleep(0.1)
        tps = [TopicPartition(name, p) for p in sorted(parts)]
        if not tps:
            return values
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not until(values) and time.monotonic() < deadline:
            batch = await consumer.getmany(*tps, timeout_ms=200)
            values.extend(m.value for msgs in batch.values() for m in msgs if m.value is not None)
        return values
    finally:
        await consumer.stop()


async def read_to_end(
    broker_url: str, spec: TopicSpec, prefix: str, take: Callable[[bytes], None], timeout_s: float = 120.0
) -> None:
    """Hand every value of the topic, from its first offset, to ``take``; returns once the topic's end is read.

    The end is each partition's end offset as of the call, read through the fetch that reaches it: a broker may
    report the end as one past the first record of its last batch (the embedded one does), and a fetch carries
    whole batches, so the rest of that batch comes with it. Records produced meanwhile are not waited for: a topic
    that keeps receiving has no moment when a fetch brings nothing.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    deadline = time.monotonic() + timeout_s
    await consumer.start()
    try:
        name = spec.full_name(prefix)
        tps = [TopicPartition(name, p) for p in range(spec.partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} was not read to its end within {timeout_s} s")
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.value is not None:
                        take(record.value)
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return
    finally:
        await consumer.stop()
