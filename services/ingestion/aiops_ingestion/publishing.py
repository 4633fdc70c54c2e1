"""Turn normalized records into keyed, partitioned batch messages and publish them acknowledged."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from aiops_common.broker import Publisher
from aiops_common.broker.publisher import Message
from aiops_common.schemas import AlertRecord, ChangeEvent, LogBatch, LogRecord, MetricBatchBuilder, Span, SpanBatch
from aiops_common.schemas.metrics import shard_of
from aiops_common.topics import Topics, TopicSpec

from aiops_ingestion import telemetry

__all__ = ["RecordPublisher"]

_SHARD_KEYS = [f"shard-{part}".encode() for part in range(Topics.METRICS_RAW.partitions)]


class RecordPublisher:
    """Publishes each request's records; returns only after the broker acknowledged all of them.

    Metric samples are split by series shard and logs/spans by service shard, so one
    series (or one service's logs) always lands on the same partition and a
    downstream window sees all of it.
    """

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    async def metrics(self, builder: MetricBatchBuilder, source: str) -> int:
        await self._publish(self.metric_messages(builder), Topics.METRICS_RAW, source)
        telemetry.SAMPLES.labels(source).inc(len(builder))
        return len(builder)

    @staticmethod
    def metric_messages(builder: MetricBatchBuilder) -> list[Message]:
        """One encoded batch message per partition that has samples of the builder."""
        return [
            Message(Topics.METRICS_RAW, batch.encode(), key=_SHARD_KEYS[part], partition=part)
            for part, batch in builder.by_partition().items()
        ]

    async def logs(self, records: Sequence[LogRecord], source: str) -> int:
        messages = self._row_messages(Topics.LOGS_RAW, records, LogBatch)
        await self._publish(messages, Topics.LOGS_RAW, source)
        telemetry.RECORDS.labels("logs", source).inc(len(records))
        return len(records)

    async def spans(self, spans: Sequence[Span], source: str) -> int:
        messages = self._row_messages(Topics.TRACES_RAW, spans, SpanBatch)
        await self._publish(messages, Topics.TRACES_RAW, source)
        telemetry.RECORDS.labels("spans", source).inc(len(spans))
        return len(spans)

    async def alerts(self, alerts: Sequence[AlertRecord], source: str) -> int:
        messages = [Message(Topics.ALERTS_RECEIVED, a.encode(), key=a.fingerprint.encode()) for a in alerts]
        await self._publish(messages, Topics.ALERTS_RECEIVED, source)
        telemetry.RECORDS.labels("alerts", source).inc(len(alerts))
        return len(alerts)

    async def change(self, event: ChangeEvent, source: str) -> None:
        await self._publish(
            [Message(Topics.CHANGES, event.encode(), key=event.service.encode())], Topics.CHANGES, source
        )
        telemetry.RECORDS.labels("changes", source).inc()

    @staticmethod
    def _row_messages(
        topic: TopicSpec, rows: Sequence[LogRecord] | Sequence[Span], batch_type: type[LogBatch] | type[SpanBatch]
    ) -> list[Message]:
        by_part: dict[int, list[LogRecord | Span]] = defaultdict(list)
        for row in rows:
            by_part[shard_of(row.service, topic.partitions)].append(row)
        return [
            Message(topic, batch_type(part_rows).encode(), key=f"shard-{part}".encode(), partition=part)  # type: ignore[arg-type]  # rows match batch_type by construction
            for part, part_rows in by_part.items()
        ]

    async def _publish(self, messages: list[Message], topic: TopicSpec, source: str) -> None:
        with telemetry.PUBLISH_SECONDS.labels(topic.name).time():
            await self.publisher.publish(messages)
        telemetry.MESSAGES.labels(topic.name).inc(len(messages))
