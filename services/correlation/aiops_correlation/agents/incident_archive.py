"""Agent: ``incidents`` -> the document store's ``incidents`` collection, the newest revision of each incident.

The builder publishes at least once, so a revision may come again, or an older one after a newer
one (a restarted builder replays from its checkpoint): a revision not above the stored one is
skipped. Records are taken in batches and only the last revision of each incident in a batch is
written, so a storm that revises one incident a hundred times costs one write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import faust
from aiops_common.agent_loop import AgentMeter
from aiops_common.documents import DocumentStore
from aiops_common.schemas import IncidentRecord, SchemaError
from aiops_common.topics import Topics, declare

from aiops_correlation.settings import CorrelationSettings

__all__ = ["install", "newest"]

_BATCH = 1000
_WITHIN_S = 0.05


def newest(records: list[IncidentRecord]) -> list[IncidentRecord]:
    """The highest revision of each incident, in the order incidents first appear."""
    best: dict[str, IncidentRecord] = {}
    for record in records:
        kept = best.get(record.id)
        if kept is None or record.revision > kept.revision:
            best[record.id] = record
    return list(best.values())


def install(app: faust.App, settings: CorrelationSettings, store: DocumentStore) -> None:
    source = declare(app, Topics.INCIDENTS, settings.topic_prefix)
    meter = AgentMeter("incident_archive")

    @app.agent(source, name="incident_archive")
    async def archive(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for batch in stream.take(_BATCH, within=_WITHIN_S):
            meter.took(len(batch))
            with meter.timed():
                records = []
                for value in batch:
                    try:
                        records.append(IncidentRecord.decode(value))
                    except SchemaError as exc:
                        meter.dropped("undecodable", str(exc))
                for record in newest(records):
                    stored = await store.get("incidents", record.id)
                    if stored is not None and int(stored.body.get("revision", 0)) >= record.revision:
                        continue
                    await store.upsert("incidents", record.id, record.document())
            yield None
