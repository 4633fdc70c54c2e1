"""The correlator: one ordered log of records in, incident changes and held-back signals out (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiops_common.schemas import (
    AlertRecord,
    AnomalyRecord,
    ChangeEvent,
    CorrelationBatch,
    CorrelationTick,
    FeedbackLabel,
    FeedbackRecord,
    IncidentCommand,
    IncidentRecord,
    PredictionRecord,
    SchemaError,
    envelope_schema,
)
from aiops_common.topology import from_millis, millis

from aiops_correlation.policy.clustering import ClusterConfig, Clusterer
from aiops_correlation.policy.dynamic_xy import DxyConfig, DynamicXY, Verdict
from aiops_correlation.policy.signals import Signal, from_alert, from_anomaly, from_prediction
from aiops_correlation.policy.topology_view import TopologyView

__all__ = ["Correlator", "HeldSignal", "Outcome"]

_SIGNALS = {
    AlertRecord.schema_name: lambda data: from_alert(AlertRecord.decode(data)),
    AnomalyRecord.schema_name: lambda data: from_anomaly(AnomalyRecord.decode(data)),
    PredictionRecord.schema_name: lambda data: from_prediction(PredictionRecord.decode(data)),
}


@dataclass(frozen=True, slots=True)
class HeldSignal:
    """A signal Dynamic-X-Y held back: no incident, but kept where people can find it."""

    signal: Signal
    verdict: Verdict

    def document(self) -> dict[str, Any]:
        return {
            "at": from_millis(self.signal.at_ms).isoformat(),
            "fingerprint": self.signal.fingerprint,
            "key": self.signal.key,
            "kind": self.signal.kind.value,
            "name": self.signal.name,
            "services": [self.signal.service] if self.signal.service else [],
            "labels": dict(self.signal.labels),
            "reason": self.verdict.reason,
            "x": self.verdict.x,
            "y_s": self.verdict.y_ms / 1000,
            "count": self.verdict.count,
            "learned": self.verdict.learned,
        }


@dataclass(slots=True)
class Outcome:
    """What one record changed: incidents to publish (latest revision of each) and signals held back."""

    incidents: list[IncidentRecord] = field(default_factory=list)
    held: list[HeldSignal] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    """Why records changed nothing on purpose (feedback about something else, say)."""
    undecodable: list[str] = field(default_factory=list)
    """Why records of a batch could not be read (each skipped, the rest taken)."""
    tick: bool = False
    """The record was a clock tick (not input: the clock's idle time goes on)."""

    def add(self, other: Outcome) -> None:
        """Fold a later outcome into this one: an incident changed twice keeps its later revision."""
        seen = {incident.id: n for n, incident in enumerate(self.incidents)}
        for incident in other.incidents:
            if incident.id in seen:
                self.incidents[seen[incident.id]] = incident
            else:
                seen[incident.id] = len(self.incidents)
                self.incidents.append(incident)
        self.held.extend(other.held)
        self.ignored.extend(other.ignored)
        self.undecodable.extend(other.undecodable)


class Correlator:
    """Dynamic-X-Y then clustering over every record of the correlator's input, in the order given.

    A pure function of the records and the topology view: the same records in the same order give
    the same incidents, which is what makes a restarted worker's replay publish nothing new. Records
    are told apart by their envelope's schema name; an undecodable one raises ``SchemaError``.
    """

    def __init__(self, dxy: DynamicXY, clusterer: Clusterer) -> None:
        self.dxy = dxy
        self.clusterer = clusterer
        self.now_ms = 0
        """The latest event time seen (onsets, ends, changes)."""
        self.clock_ms = 0
        """The clock ticks move: never behind ``now_ms`` at the last tick."""

    @classmethod
    def new(cls, dxy_config: DxyConfig, cluster_config: ClusterConfig, topology: TopologyView) -> Correlator:
        return cls(DynamicXY(dxy_config), Clusterer(cluster_config, topology))

    @property
    def topology(self) -> TopologyView:
        return self.clusterer.topology

    @topology.setter
    def topology(self, view: TopologyView) -> None:
        self.clusterer.topology = view

    def take(self, data: bytes) -> Outcome:
        """One message of the log: a record, or a batch of them (a bad record in a batch is skipped, the rest
        taken; a bad message raises ``SchemaError``)."""
        schema = envelope_schema(data)
        if schema != CorrelationBatch.schema_name:
            return self._take_one(schema, data)
        outcome = Outcome()
        for record in CorrelationBatch.decode(data).records:
            try:
                outcome.add(self._take_one(envelope_schema(record), record))
            except SchemaError as exc:
                outcome.undecodable.append(str(exc))
        return outcome

    def _take_one(self, schema: str, data: bytes) -> Outcome:
        signal = _SIGNALS.get(schema)
        if signal is not None:
            return self.take_signal(signal(data))
        if schema == ChangeEvent.schema_name:
            change = ChangeEvent.decode(data)
            self.now_ms = max(self.now_ms, millis(change.at))
            return Outcome(incidents=self.clusterer.add_change(change))
        if schema == FeedbackRecord.schema_name:
            return self.take_feedback(FeedbackRecord.decode(data))
        if schema == IncidentCommand.schema_name:
            command = IncidentCommand.decode(data)
            return Outcome(
                incidents=self.clusterer.set_status(
                    command.incident_id, command.status, command.by, millis(command.at), command.note
                )
            )
        if schema == CorrelationTick.schema_name:
            return self.tick(CorrelationTick.decode(data).idle_ms)
        raise SchemaError(f"the correlator takes no {schema!r} records")

    def take_signal(self, signal: Signal) -> Outcome:
        self.now_ms = max(self.now_ms, signal.at_ms, signal.end_ms if signal.resolved and signal.end_ms else 0)
        if signal.resolved:
            return Outcome(incidents=self.clusterer.resolve(signal))
        verdict = self.dxy.observe(signal.policy_key or signal.key, signal.at_ms)
        if not verdict.raised:
            return Outcome(held=[HeldSignal(signal, verdict)])
        return Outcome(incidents=self.clusterer.add(signal))

    def take_feedback(self, feedback: FeedbackRecord) -> Outcome:
        at_ms = millis(feedback.at)
        if feedback.label == FeedbackLabel.NOT_IN_INCIDENT:
            changed = self.clusterer.split(feedback.subject_id, feedback.related_id, feedback.by, at_ms, feedback.note)
        elif feedback.label == FeedbackLabel.SAME_INCIDENT:
            changed = self.clusterer.merge(feedback.subject_id, feedback.related_id, feedback.by, at_ms, feedback.note)
        else:
            return Outcome(ignored=[f"{feedback.label.value} feedback is not about incident membership"])
        return Outcome(incidents=changed)

    def tick(self, idle_ms: int) -> Outcome:
        """The clock: the latest event time seen plus ``idle_ms`` of quiet (see ``CorrelationTick``)."""
        if self.now_ms == 0:
            return Outcome(tick=True)  # nothing seen yet: no time to tell
        return self.advance_to(self.now_ms + idle_ms)

    def advance_to(self, clock_ms: int) -> Outcome:
        """Move the clock to ``clock_ms`` (never back) and let the clusterer act on it; for a caller that
        keeps time itself (a simulation), ticks do this with the event time plus quiet."""
        self.clock_ms = max(self.clock_ms, clock_ms)
        return Outcome(incidents=self.clusterer.tick(self.clock_ms), tick=True)

    def snapshot(self) -> dict[str, Any]:
        return {
            "dxy": self.dxy.snapshot(),
            "clusterer": self.clusterer.snapshot(),
            "now_ms": self.now_ms,
            "clock_ms": self.clock_ms,
        }

    @classmethod
    def restore(
        cls, dxy_config: DxyConfig, cluster_config: ClusterConfig, topology: TopologyView, snapshot: Mapping[str, Any]
    ) -> Correlator:
        correlator = cls(
            DynamicXY.restore(dxy_config, snapshot["dxy"]),
            Clusterer.restore(cluster_config, topology, snapshot["clusterer"]),
        )
        correlator.now_ms = int(snapshot["now_ms"])
        correlator.clock_ms = int(snapshot.get("clock_ms", 0))
        return correlator
