"""The correlator's topology refresh: a store that cannot be read keeps the view in use and is counted; once it
answers, the next refresh takes its view."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiops_common.documents import open_document_store
from aiops_common.faust_app import create_app
from aiops_common.topics import Topics, declare
from aiops_common.topology import Dependency, Service, TopologyStore, open_topology_store
from aiops_correlation.agents.incident_builder import IncidentBuilder
from aiops_correlation.policy.topology_view import TopologyView
from aiops_correlation.settings import CorrelationSettings
from prometheus_client import REGISTRY

pytestmark = pytest.mark.functional  # a SQLite document store beside the builder

AT = datetime(2026, 1, 1, tzinfo=UTC)


class Outage:
    """The store's reads fail while ``down`` (as a Bolt store's do once its ``timeout_s`` has passed)."""

    def __init__(self, store: TopologyStore) -> None:
        self.store = store
        self.down = False

    async def services(self) -> list[Service]:
        if self.down:
            raise TimeoutError("topology store 127.0.0.1:7687 did not answer within 10 s")
        return await self.store.services()

    async def dependencies(self) -> list[Dependency]:
        if self.down:
            raise TimeoutError("topology store 127.0.0.1:7687 did not answer within 10 s")
        return await self.store.dependencies()


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def _write(store: TopologyStore, edges: Iterable[tuple[str, str]]) -> None:
    await store.upsert_dependencies(Dependency(a, b, frozenset({"file"}), AT, AT) for a, b in edges)


def test_an_unreadable_store_keeps_the_last_view(tmp_path: Path) -> None:
    settings = CorrelationSettings(broker_url="kafka://127.0.0.1:9", data_dir=tmp_path)
    app = create_app("correlation", settings)
    store = open_topology_store("memory://")
    outage = Outage(store)
    documents = open_document_store(settings.documents_url)
    events = declare(app, Topics.CORRELATION_EVENTS, settings.topic_prefix)
    incidents = declare(app, Topics.INCIDENTS, settings.topic_prefix)
    builder = IncidentBuilder(app, settings, events, incidents, documents, outage)  # type: ignore[arg-type]

    async def run() -> None:
        # Down from the start: the empty view stays, and the failure is counted.
        outage.down = True
        failures = sample("aiops_correlation_topology_unreadable_total")
        await builder.refresh_topology()
        assert builder.view is TopologyView.EMPTY
        assert sample("aiops_correlation_topology_unreadable_total") == failures + 1
        # Back: the view is read.
        outage.down = False
        await _write(store, [("web", "api"), ("api", "db")])
        await builder.refresh_topology()
        assert builder.view.path("web", "db", 2) == ["web", "api", "db"]
        assert sample("aiops_correlation_topology_services") == 3
        # Down again after a change: the view read last stays in use, not an empty one.
        read = builder.view
        await _write(store, [("db", "disk")])
        outage.down = True
        await builder.refresh_topology()
        assert builder.view is read and "disk" not in builder.view
        assert sample("aiops_correlation_topology_services") == 3
        assert sample("aiops_correlation_topology_unreadable_total") == failures + 2
        await documents.close()

    asyncio.run(run())
