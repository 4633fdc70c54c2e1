"""A partition the incident builder reopens (a rebalance took it back) checkpoints only what its restored state took.

The builder's state is restored from its newest checkpoint, and the input after it read again. A checkpoint
claims an input offset: every record up to it is in its state, and a later restore reads from the next one.
One written after a reopen used to claim the offset the state before the reopen had reached, with the restored
state's records: a restore from it passed over the records in between, and their anomalies were in no incident.
A real broker under the builder's topics and table; the builder driven as Faust's agent drives it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_common.broker import Publisher, ensure_topics
from aiops_common.broker.publisher import Message
from aiops_common.documents import open_document_store
from aiops_common.faust_app import create_app
from aiops_common.partition_replay import unpack
from aiops_common.testing.records import service_anomaly
from aiops_common.topics import Topics, declare
from aiops_common.topology import open_topology_store
from aiops_correlation.agents.incident_builder import IncidentBuilder
from aiops_correlation.settings import CorrelationSettings

pytestmark = pytest.mark.functional

AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
# Four services the (empty) topology does not relate: each anomaly opens an incident of its own.
RECORDS = [service_anomaly("red.error_rate:value_10s", f"svc{i}", AT + timedelta(seconds=i)).encode() for i in range(4)]


def _members(builder: IncidentBuilder) -> list[str]:
    return sorted(m.service for i in builder.states[0].clusterer.open_incidents() for m in i.members)


def _checkpointed_offset(builder: IncidentBuilder) -> int:
    return int(unpack(builder.table.data[b"state"])["offset"])


async def test_a_checkpoint_after_a_reopen_claims_no_record_its_state_lacks(
    broker_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = CorrelationSettings(
        broker_url=broker_url,
        topic_prefix=topic_prefix,
        data_dir=tmp_path,
        correlate_checkpoint_every=1000,  # no checkpoint on a take: only the flush timer's, called here
        correlate_checkpoint_interval_s=0,
    )
    await ensure_topics(broker_url, topic_prefix, [Topics.CORRELATION_EVENTS, Topics.INCIDENTS])
    publisher = Publisher(broker_url, topic_prefix)
    try:
        for value in RECORDS:  # the input holds offsets 0..3, for the re-reads
            await publisher.publish([Message(Topics.CORRELATION_EVENTS, value)])
    finally:
        await publisher.stop()

    app = create_app("correlation", settings)
    events = declare(app, Topics.CORRELATION_EVENTS, settings.topic_prefix)
    incidents = declare(app, Topics.INCIDENTS, settings.topic_prefix)
    documents = open_document_store(settings.documents_url)
    builder = IncidentBuilder(app, settings, events, incidents, documents, open_topology_store("memory://"))
    await app.producer.start()
    await builder.table.changelog_topic.maybe_declare()
    try:
        await builder.handle(0, 0, RECORDS[0])
        await builder.flush()
        assert _checkpointed_offset(builder) == 0
        for offset in (1, 2):  # taken, not yet checkpointed
            await builder.handle(0, offset, RECORDS[offset])
        assert _members(builder) == ["svc0", "svc1", "svc2"]

        # A rebalance: the partition is revoked, then assigned again, and Faust delivers from the group's
        # committed offset, here 0, which the restored state (checkpoint: offset 0) already has.
        builder.forget(0)
        await builder.handle(0, 0, RECORDS[0])
        assert _members(builder) == ["svc0"]
        await builder.flush()
        assert _checkpointed_offset(builder) == 0, "the restored state has taken nothing past offset 0"

        # Another reopen, from that checkpoint, delivered offset 3: offsets 1 and 2 are read again.
        builder.forget(0)
        await builder.handle(0, 3, RECORDS[3])
        assert _members(builder) == ["svc0", "svc1", "svc2", "svc3"], "no anomaly left out of the incidents"
        await builder.flush()
        assert _checkpointed_offset(builder) == 3
    finally:
        await app.producer.stop()
        await documents.close()
