"""Agent: ``correlation.events`` -> ``incidents``, through Dynamic-X-Y and the clusterer, restart-safe.

The correlator's state (open incidents, each signal's event history) is a pure function of
the ordered input, so it is checkpointed now and then (the state and the input offset it is
as of, in a changelog-backed table) and a restarted worker restores the checkpoint and reads
the input again from there. It publishes the same incident revisions again for that stretch:
delivery is at-least-once, and a consumer keeps the highest revision of each incident id.
A checkpoint is written only once every incident revision it covers has been acknowledged by
the broker, so nothing a checkpoint claims can be lost.

Revisions are coalesced: an incident that changes on every alert of a storm is published at
most once per ``publish_interval_s`` with its latest state, not once per alert.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import faust
import structlog
from aiops_common.agent_loop import AgentMeter
from aiops_common.documents import DocumentStore
from aiops_common.partition_replay import ReplayingStage, pack, unpack
from aiops_common.schemas import CorrelationTick, IncidentRecord, SchemaError
from aiops_common.topics import Topics, declare
from aiops_common.topology import TopologyStore
from prometheus_client import Counter, Gauge

from aiops_correlation.agents.event_router import KEY
from aiops_correlation.policy.clustering import ClusterConfig
from aiops_correlation.policy.correlator import Correlator, HeldSignal
from aiops_correlation.policy.dynamic_xy import DxyConfig
from aiops_correlation.policy.topology_view import TopologyView
from aiops_correlation.settings import CorrelationSettings

__all__ = ["IncidentBuilder", "install"]

log = structlog.get_logger(__name__)

HELD_BACK = Counter(
    "aiops_correlation_held_back_total", "Signals Dynamic-X-Y held back (kept in the suppressed collection)"
)
OPEN_INCIDENTS = Gauge("aiops_correlation_open_incidents", "Incidents the correlator holds open")
CHECKPOINTS = Counter("aiops_correlation_checkpoints_total", "Checkpoints of the correlator's state written")
TOPOLOGY_SERVICES = Gauge(
    "aiops_correlation_topology_services", "Services in the topology view in use (0 until the store was first read)"
)
TOPOLOGY_UNREADABLE = Counter(
    "aiops_correlation_topology_unreadable_total",
    "Topology refreshes that could not read the store (the last view read stays in use)",
)
IGNORED = Counter(
    "aiops_correlation_ignored_records_total", "Input records that change no incident, by reason", ["reason"]
)

_STATE = b"state"


def cluster_config(settings: CorrelationSettings) -> ClusterConfig:
    return ClusterConfig(
        window_ms=int(settings.correlate_window_s * 1000),
        hops=settings.correlate_hops,
        label_similarity=settings.correlate_label_similarity,
        change_window_ms=int(settings.correlate_change_window_s * 1000),
        quiet_ms=int(settings.correlate_quiet_s * 1000),
    )


def dxy_config(settings: CorrelationSettings) -> DxyConfig:
    overrides = settings.correlate_dxy_overrides
    return DxyConfig(
        relearn_ms=int(settings.correlate_dxy_relearn_s * 1000),
        history_ms=int(settings.correlate_dxy_history_s * 1000),
        overrides=tuple((pattern, x, int(y_s * 1000)) for pattern, (x, y_s) in overrides.items()),
    )


async def read_topology(store: TopologyStore) -> TopologyView:
    return TopologyView.build(await store.services(), await store.dependencies())


class IncidentBuilder(ReplayingStage[Correlator]):
    """The correlator over the one partition of ``correlation.events``; see the module docstring."""

    table_suffix = "checkpoints"
    table_help = "the correlator's state and the input offset it is as of"

    def __init__(
        self,
        app: faust.App,
        settings: CorrelationSettings,
        source: faust.TopicT,
        incidents: faust.TopicT,
        documents: DocumentStore,
        topology: TopologyStore,
        publish_interval_s: float = 0.1,
    ) -> None:
        super().__init__(app, "incident_builder", source, Topics.CORRELATION_EVENTS.partitions, 120.0)
        self.settings = settings
        self.incidents = incidents
        self.documents = documents
        self.topology_store = topology
        self.publish_interval_s = publish_interval_s
        self.dxy_config = dxy_config(settings)
        self.cluster_config = cluster_config(settings)
        self.view = TopologyView.EMPTY
        self.meter = AgentMeter("incident_builder")
        self._lock = asyncio.Lock()
        self._changed: dict[str, IncidentRecord] = {}
        self._held: list[HeldSignal] = []
        self._unacked: list[Awaitable[Any]] = []
        self._since_checkpoint = 0
        self._checkpoint_offset = -1
        self._last_publish = 0.0
        self._last_checkpoint = 0.0
        self.published = 0
        self.last_input = time.monotonic()
        """When the builder last took a record that is not a tick (the clock's idle time counts from it)."""

    # -- ReplayingStage --------------------------------------------------------------------------------

    def create(self, partition: int) -> Correlator:
        entry = self.table.get(_STATE)
        if entry is None:
            return Correlator.new(self.dxy_config, self.cluster_config, self.view)
        snapshot = unpack(entry)
        return Correlator.restore(self.dxy_config, self.cluster_config, self.view, snapshot["correlator"])

    async def restore(self, partition: int, state: Correlator, delivered: int | None) -> int:
        if self.view is TopologyView.EMPTY:
            await self.refresh_topology()
        entry = self.table.get(_STATE)
        # No checkpoint: the whole retained input, so nothing the group committed before a crash is missed.
        start = 0 if entry is None else int(unpack(entry)["offset"]) + 1
        # What the next checkpoint may claim is what this state has taken: nothing past the one it was restored from.
        self._checkpoint_offset = start - 1
        self._since_checkpoint = 0
        log.info("correlator opened", partition=partition, replay_from=start, first_delivered=delivered)
        return start

    async def handle(self, partition: int, offset: int, value: bytes | None) -> None:
        async with self._lock:
            await super().handle(partition, offset, value)

    async def take(self, partition: int, state: Correlator, value: bytes | None, offset: int) -> None:
        self.meter.took()
        with self.meter.timed():
            try:
                outcome = state.take(value or b"")
            except SchemaError as exc:
                self.meter.dropped("undecodable", f"offset {offset}: {exc}")
                outcome = None
        if outcome is None or not outcome.tick:
            self.last_input = time.monotonic()
        if outcome is not None:
            for incident in outcome.incidents:
                self._changed[incident.id] = incident
            self._held.extend(outcome.held)
            if outcome.held:
                HELD_BACK.inc(len(outcome.held))
            for reason in outcome.ignored:
                IGNORED.labels(reason.split(" ", 1)[0]).inc()
            for error in outcome.undecodable:
                self.meter.dropped("undecodable", f"a record of offset {offset}: {error}")
        self._since_checkpoint += 1
        self._checkpoint_offset = offset
        now = time.monotonic()
        if self._changed and now - self._last_publish >= self.publish_interval_s:
            await self._publish()
        interval = self.settings.correlate_checkpoint_interval_s
        if (
            self._since_checkpoint >= self.settings.correlate_checkpoint_every
            and now - self._last_checkpoint >= interval
        ):
            await self._checkpoint(partition, state)

    # -- publishing and checkpoints --------------------------------------------------------------------

    async def _publish(self) -> None:
        changed, self._changed = self._changed, {}
        held, self._held = self._held, []
        self._last_publish = time.monotonic()
        for incident in changed.values():
            future = await self.incidents.send(key=incident.id.encode(), value=incident.encode(), force=True)
            self._unacked.append(future)
        self.meter.sent(len(changed))
        self.published += len(changed)
        if held:
            # Evidence for people, not state: a write that fails is counted and logged, and correlation goes on.
            documents = [(item.signal.fingerprint, item.document()) for item in held]
            try:
                await self.documents.upsert_many("suppressed", documents)
            except Exception as exc:
                self.meter.dropped("suppressed_unwritten", repr(exc), n=len(documents))

    async def _checkpoint(self, partition: int, state: Correlator) -> None:
        await self._publish()
        unacked, self._unacked = self._unacked, []
        if unacked:
            await asyncio.gather(*unacked)
        entry = pack({"offset": self._checkpoint_offset, "correlator": state.snapshot()})
        self.table.data[_STATE] = entry
        await self.table.send_changelog(partition, _STATE, entry)
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        OPEN_INCIDENTS.set(len(state.clusterer.open_incidents()))
        CHECKPOINTS.inc()

    async def flush(self) -> None:
        """Timer: publish what changed since the last publish; checkpoint when events came since the last one."""
        interval = self.settings.correlate_checkpoint_interval_s
        async with self._lock:
            if self._changed or self._held:
                await self._publish()
            for partition, state in self.states.items():
                if self._since_checkpoint and time.monotonic() - self._last_checkpoint >= interval:
                    await self._checkpoint(partition, state)

    async def refresh_topology(self) -> None:
        try:
            view = await read_topology(self.topology_store)
        except Exception as exc:  # a store that is down leaves the last view in use (empty before the first read)
            TOPOLOGY_UNREADABLE.inc()
            log.warning(
                "topology store unreadable; keeping the last view",
                error=f"{type(exc).__name__}: {exc}",
                services_in_view=len(self.view),
            )
            return
        self.view = view
        TOPOLOGY_SERVICES.set(len(view))
        for state in self.states.values():
            state.topology = view


def install(
    app: faust.App,
    settings: CorrelationSettings,
    events: faust.TopicT,
    documents: DocumentStore,
    topology: TopologyStore,
) -> IncidentBuilder:
    incidents = declare(app, Topics.INCIDENTS, settings.topic_prefix)
    builder = IncidentBuilder(app, settings, events, incidents, documents, topology)

    async def tick() -> None:
        # Written to the input, so a replay meets the tick at the same place as the first run did; only by
        # the worker that holds the builder's partition, the one that knows how long its input was quiet.
        if not builder.states:
            return
        idle_ms = int((time.monotonic() - builder.last_input) * 1000)
        await events.send(key=KEY, value=CorrelationTick(at=datetime.now(UTC), idle_ms=idle_ms).encode(), force=True)

    app.timer(settings.correlate_tick_s, name="correlation_clock")(tick)
    app.timer(builder.publish_interval_s, name="incident_publisher")(builder.flush)
    app.timer(settings.correlate_topology_refresh_s, name="topology_refresh")(builder.refresh_topology)
    return builder
