"""``aiops tail``: print a topic's records as JSON lines, decoded with the topic's schema."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from typing import IO, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_common.broker import bootstrap_servers
from aiops_common.schemas import LogBatch, MetricBatch, SpanBatch
from aiops_common.schemas._model import VersionedRecord
from aiops_common.schemas.features import FeatureBatch
from aiops_common.topics import TopicSpec

__all__ = ["records_of", "tail_topic"]


def records_of(spec: TopicSpec, value: bytes) -> Iterator[dict[str, Any]]:
    """The JSON-ready records in one message (a batch yields one per sample or row)."""
    vtype = spec.value_type
    if vtype is MetricBatch:
        batch = MetricBatch.decode(value)
        for meta, ts, val in batch.samples():
            yield {
                "name": meta.name,
                "labels": dict(meta.labels),
                "kind": meta.kind.value,
                "ts_ms": ts,
                "value": val if math.isfinite(val) else str(val),
            }
    elif vtype is FeatureBatch:
        for row in FeatureBatch.decode(value).rows():
            yield {
                "name": row.series.name,
                "labels": dict(row.series.labels),
                "start_ms": row.start_ms,
                "length_ms": row.length_ms,
                **{k: v if math.isfinite(v) else None for k, v in row.values.items()},
            }
    elif vtype in (LogBatch, SpanBatch):
        for row in vtype.decode(value).rows:
            yield asdict(row)
    elif isinstance(vtype, type) and issubclass(vtype, VersionedRecord):
        yield vtype.decode(value).model_dump(mode="json")
    else:
        yield {"value_hex": value.hex()}


async def _records(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], spec: TopicSpec, idle_timeout_s: float | None
) -> AsyncIterator[dict[str, Any]]:
    while True:
        batch = await consumer.getmany(*tps, timeout_ms=int((idle_timeout_s or 1.0) * 1000))
        if not batch and idle_timeout_s is not None:
            return
        for msgs in batch.values():
            for msg in msgs:
                if msg.value is not None:
                    for record in records_of(spec, msg.value):
                        yield record


async def tail_topic(
    broker_url: str,
    spec: TopicSpec,
    prefix: str,
    max_records: int | None,
    from_beginning: bool,
    idle_timeout_s: float | None = None,
    out: IO[str] = sys.stdout,
) -> int:
    """Print records until ``max_records`` were printed (or, with ``idle_timeout_s``, nothing new came)."""
    topic = spec.full_name(prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    printed = 0
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # metadata is lazy in aiokafka
            partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise LookupError(f"topic {topic!r} does not exist on {broker_url}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        async for record in _records(consumer, tps, spec, idle_timeout_s):
            out.write(json.dumps(record, default=str) + "\n")
            out.flush()
            printed += 1
            if max_records is not None and printed >= max_records:
                break
    finally:
        await consumer.stop()
    return printed
