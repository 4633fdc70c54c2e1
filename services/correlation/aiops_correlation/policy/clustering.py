"""Incident clustering: signals that pass suppression grouped into explained incidents, in event time, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiops_common.schemas import (
    ChangeEvent,
    IncidentMember,
    IncidentMerge,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    LinkedChange,
    MemberKind,
    StatusChange,
    incident_id,
)
from aiops_common.topology import from_millis, millis

from aiops_correlation.policy.signals import Signal
from aiops_correlation.policy.similarity import (
    IGNORED_LABELS,
    attribute_pairs,
    discriminating_pairs,
    label_similarity,
    time_factor,
    topology_text,
    topology_weight,
)
from aiops_correlation.policy.topology_view import TopologyView

__all__ = ["ClusterConfig", "Clusterer"]

SNAPSHOT_VERSION = 1
_SEVERITIES = list(IncidentSeverity)
_RANK = {severity: rank for rank, severity in enumerate(_SEVERITIES)}
_CHANGE_VERBS = {
    "deployment": "deployed",
    "config": "config changed",
    "feature_flag": "feature flag changed",
    "scale": "scaled",
    "rollback": "rolled back",
}


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """How signals group; every duration in milliseconds of event time."""

    window_ms: int = 300_000
    """Time proximity: a signal relates to a member only if their onsets are at most this far apart."""
    hops: int = 2
    """Topology distance: services within this many call edges (either way) are related."""
    label_similarity: float = 0.6
    """Label/attribute similarity (Jaccard) from which signals of unrelated services still group."""
    change_window_ms: int = 1_800_000
    """A change this long before a signal's onset is linked to its incident and groups its service's signals."""
    quiet_ms: int = 600_000
    """An incident whose members have all ended resolves after this long with nothing new."""
    join_score: float = 0.5
    """A signal joins an incident when its best link scores at least this (weight x time factor x learned)."""
    merge_score: float = 0.6
    """Two incidents merge when one signal links to both, each link scoring at least this, and the link to
    the one merged in says shared cause (the signal is a probable cause of its member: a callee that started
    no later than the tolerance, or shared labels, a shared change, a learned link). A signal that is only
    an effect of both (a caller both cascades reached) joins the better one and merges nothing."""
    late_cause_weight: float = 0.45
    """Weight of a callee link when the callee started more than ``lead_tolerance_ms`` after the member
    (too late to be its cause, and effects travel to callers): below ``join_score`` on its own."""
    time_decay: float = 0.5
    """How much a link loses from a gap of 0 to a gap of a whole window."""
    label_weight: float = 0.9
    change_weight: float = 0.8
    lead_tolerance_ms: int = 60_000
    """A callee explains its caller (so cannot be led by it) if its onset is at most this much later."""
    keep_resolved_ms: int = 3_600_000
    """Resolved incidents stay in state this long (a late resolve or a reopen still finds them), then go."""
    blast_radius: tuple[int, int] = (3, 8)
    """Severity rises one level from this many affected services, two from the second."""
    ignored_labels: tuple[str, ...] = IGNORED_LABELS
    attribute_keys: tuple[str, ...] = ("tier", "zone", "team")
    """Topology attributes compared alongside labels (they add to similarity, never alone start a link)."""
    split_factor: float = 0.5
    """An operator's split multiplies the weight of the pair that joined the member by this."""
    merge_factor: float = 1.5
    """An operator's merge multiplies the weight of the two leads' service pair by this."""
    weight_bounds: tuple[float, float] = (0.05, 2.0)
    max_weights: int = 10_000
    """Learned weights kept at most (those closest to neutral are forgotten first)."""


@dataclass(frozen=True, slots=True)
class _Link:
    incident: str
    related: str
    rule: str
    score: float
    gap_ms: int
    path: tuple[str, ...] = ()
    similarity: float | None = None
    text: str = ""
    causal: bool = False
    """The link says shared cause (see ``ClusterConfig.merge_score``)."""


@dataclass(slots=True)
class _Member:
    fingerprint: str
    kind: MemberKind
    key: str
    name: str
    service: str
    severity: IncidentSeverity
    labels: dict[str, str]
    started_ms: int
    ended_ms: int | None
    occurrences: int
    last_seen_ms: int | None
    reason: JoinReason
    joined_ms: int
    lead: bool = False
    model: IncidentMember | None = None
    pairs: tuple[tuple[str, str], ...] | None = None
    """Its discriminating label pairs, worked out once."""

    @property
    def active_ms(self) -> int:
        return self.last_seen_ms if self.last_seen_ms is not None else self.started_ms

    def render(self) -> IncidentMember:
        if self.model is None:
            self.model = IncidentMember(
                fingerprint=self.fingerprint,
                kind=self.kind,
                name=self.name,
                service=self.service,
                severity=self.severity,
                labels=self.labels,
                started_at=from_millis(self.started_ms),
                ended_at=_at(self.ended_ms),
                occurrences=self.occurrences,
                last_seen_at=_at(self.last_seen_ms),
                lead=self.lead,
                reason=self.reason,
                joined_at=from_millis(self.joined_ms),
            )
        return self.model

    def state(self) -> list[Any]:
        return [
            self.fingerprint,
            self.kind.value,
            self.key,
            self.name,
            self.service,
            self.severity.value,
            self.labels,
            self.started_ms,
            self.ended_ms,
            self.occurrences,
            self.last_seen_ms,
            self.reason.model_dump(mode="json"),
            self.joined_ms,
        ]

    @classmethod
    def from_state(cls, s: list[Any]) -> _Member:
        return cls(
            s[0],
            MemberKind(s[1]),
            s[2],
            s[3],
            s[4],
            IncidentSeverity(s[5]),
            dict(s[6]),
            s[7],
            s[8],
            s[9],
            s[10],
            JoinReason.model_validate(s[11]),
            s[12],
        )


@dataclass(slots=True)
class _Seen:
    """Where an incident touches one service (or one label pair): its earliest and latest member there."""

    first_ms: int
    first_fp: str
    last_ms: int
    last_fp: str

    def note(self, at_ms: int, fp: str) -> None:
        if (at_ms, fp) < (self.first_ms, self.first_fp):
            self.first_ms, self.first_fp = at_ms, fp
        if (at_ms, fp) >= (self.last_ms, self.last_fp):
            self.last_ms, self.last_fp = at_ms, fp


@dataclass(slots=True)
class _Change:
    id: str
    service: str
    kind: str
    version: str
    at_ms: int

    def state(self) -> list[Any]:
        return [self.id, self.service, self.kind, self.version, self.at_ms]


@dataclass(slots=True)
class _Incident:
    id: str
    started_ms: int
    updated_ms: int
    activity_ms: int
    """Event time of the latest member change: the quiet period counts from it."""
    revision: int = 0
    status: IncidentStatus = IncidentStatus.OPEN
    resolved_ms: int | None = None
    merged_into: str | None = None
    members: dict[str, _Member] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    seen: dict[str, _Seen] = field(default_factory=dict)
    labels: dict[tuple[str, str], _Seen] = field(default_factory=dict)
    changes: dict[str, _Change] = field(default_factory=dict)
    merged: list[IncidentMerge] = field(default_factory=list)
    history: list[StatusChange] = field(default_factory=list)
    lead: str = ""
    firing: int = 0
    title: str = ""
    services: list[str] = field(default_factory=list)
    top_rank: int = 0
    """Highest member severity (as its rank)."""
    not_alerts: int = 0
    """Members that are anomalies or predictions."""
    rendered: list[IncidentMember] | None = None
    """The members as published, lead first; None when it must be rebuilt (a lead change, a member gone)."""
    positions: dict[str, int] = field(default_factory=dict)
    """Where each member is in ``rendered``."""
    lead_view: TopologyView | None = None
    """The topology the lead was chosen with (a refreshed view chooses again)."""
    text: tuple[tuple[Any, ...], str, str] | None = None
    """Title and summary, with what they were made from."""

    def aggregate(self) -> None:
        self.top_rank = max((_RANK[m.severity] for m in self.members.values()), default=0)
        self.not_alerts = sum(m.kind != MemberKind.ALERT for m in self.members.values())
        self.rendered = None

    @property
    def is_open(self) -> bool:
        return self.status != IncidentStatus.RESOLVED


class Clusterer:
    """Groups signals into incidents and says why each member is in its incident.

    Feed it in event order: :meth:`add` for a firing signal, :meth:`resolve` when it ends, :meth:`add_change`
    for deployments, :meth:`tick` for the event-time clock, and the operator's split/merge/status feedback.
    Each call returns every incident it changed, as records to publish (one revision more each).

    A signal links to an open incident through one of its members by a rule (``same_service``,
    ``topology``, ``labels``, ``change``, ``feedback``) with a score; it joins the best link scoring at least
    ``join_score``, and every other incident it links to at ``merge_score`` or more is merged into the
    oldest of them. Candidates come from indexes (open incidents by service, label pair, change, learned
    link), so a signal costs what its neighbourhood holds, not what the whole state holds.
    """

    def __init__(self, config: ClusterConfig, topology: TopologyView) -> None:
        self.config = config
        self.topology = topology
        self._incidents: dict[str, _Incident] = {}
        self._by_service: dict[str, dict[str, None]] = {}
        self._by_label: dict[tuple[str, str], dict[str, None]] = {}
        self._by_change: dict[str, dict[str, None]] = {}
        self._by_key: dict[str, str] = {}
        self._by_fp: dict[str, str] = {}
        self._quiet: dict[str, None] = {}
        """Open incidents with no firing member: the ones a tick may resolve."""
        self._changes: dict[str, list[_Change]] = {}
        self._weights: dict[str, float] = {}
        self._links: dict[str, dict[str, None]] = {}
        self._resolved: dict[str, None] = {}
        """Resolved incidents still kept, until ``keep_resolved_ms`` has passed."""
        self._clock_ms = 0

    # ----------------------------------------------------------------- queries

    def incident(self, incident_id: str) -> IncidentRecord | None:
        found = self._incidents.get(incident_id)
        return self._render(found) if found is not None else None

    def open_incidents(self) -> list[IncidentRecord]:
        found = [i for i in self._incidents.values() if i.is_open]
        return [self._render(i) for i in sorted(found, key=lambda i: (i.started_ms, i.id))]

    def has_key(self, key: str) -> bool:
        """Whether an open incident holds this signal key (its next episodes fold in even if held back)."""
        return key in self._by_key

    def weight(self, service_a: str, service_b: str) -> float:
        """The learned weight of a service pair (1.0 until feedback moved it)."""
        return self._weights.get(_pair("svc", service_a, service_b), 1.0)

    # ----------------------------------------------------------------- signals

    def add(self, signal: Signal, suppression: str = "") -> list[IncidentRecord]:
        """A firing signal: fold it into its key's incident, join the best related incident (merging the
        others it connects), or open a new incident. ``suppression`` non-empty: Dynamic-X-Y held it back,
        so it may join or fold (the text is kept in its reason) but never opens an incident."""
        if signal.resolved:
            return self.resolve(signal)
        at = signal.at_ms
        self._clock_ms = max(self._clock_ms, at)
        held = f" (held back: {suppression})" if suppression else ""
        earlier: list[IncidentRecord] = []
        home = self._by_key.get(signal.key, self._by_fp.get(signal.fingerprint))
        if home is not None and self._went_quiet(self._incidents[home], at):
            # Its incident was over before this episode began: resolve what a tick at its onset would
            # have, so grouping does not depend on how often the clock ticked in between.
            earlier = self.tick(at)
        home = self._by_key.get(signal.key)
        if home is not None:
            return earlier + self._fold(self._incidents[home], signal, at)
        if signal.fingerprint in self._by_fp:
            # Same fingerprint under another key (a relabelled series): one member, one more episode.
            return earlier + self._fold(self._incidents[self._by_fp[signal.fingerprint]], signal, at)
        links = self._links_for(signal)
        if not links:
            if suppression:
                return earlier
            return [*earlier, self._open(signal, held)]
        best = links[0]
        connected = [best] + [link for link in links[1:] if link.causal and link.score >= self.config.merge_score]
        if best.score < self.config.merge_score:
            connected = [best]
        survivor = min((self._incidents[link.incident] for link in connected), key=lambda i: (i.started_ms, i.id))
        absorbed = sorted((link for link in connected if link.incident != survivor.id), key=lambda k: k.incident)
        changed = [survivor]
        for link in absorbed:
            victim = self._incidents[link.incident]
            self._absorb(survivor, victim, at, f"connected by {signal.service}/{signal.name}: {link.text}", signal)
            changed.append(victim)
        reason = JoinReason(
            rule=best.rule,
            related_to=best.related,
            gap_s=best.gap_ms / 1000,
            path=list(best.path),
            similarity=best.similarity,
            score=round(best.score, 4),
            text=best.text + held,
        )
        self._join(survivor, _member(signal, reason, at))
        survivor.updated_ms = max(survivor.updated_ms, at)
        return [*earlier, *(self._publish(i) for i in changed)]

    def _went_quiet(self, incident: _Incident, at_ms: int) -> bool:
        """Every member ended and nothing happened for ``quiet_ms`` before ``at_ms``: a tick would resolve it."""
        return incident.id in self._quiet and incident.activity_ms + self.config.quiet_ms <= at_ms

    def resolve(self, signal: Signal) -> list[IncidentRecord]:
        """The end of a signal's episode: its member gets ``ended_at`` (a signal in no open incident: nothing)."""
        home = self._by_key.get(signal.key) or self._by_fp.get(signal.fingerprint)
        if home is None:
            return []
        incident = self._incidents[home]
        fp = incident.keys.get(signal.key, signal.fingerprint)
        member = incident.members.get(fp)
        if member is None or member.ended_ms is not None or signal.at_ms < member.active_ms:
            # Already ended, or the end of an episode older than the one it now fires for.
            return []
        end = signal.end_ms if signal.end_ms is not None else signal.at_ms
        end = max(end, member.active_ms)
        self._clock_ms = max(self._clock_ms, end)
        member.ended_ms = end
        self._refresh(incident, member)
        incident.firing -= 1
        if incident.firing == 0:
            self._quiet[incident.id] = None
        incident.activity_ms = max(incident.activity_ms, end)
        incident.updated_ms = max(incident.updated_ms, end)
        return [self._publish(incident)]

    def add_change(self, change: ChangeEvent) -> list[IncidentRecord]:
        """Remember a change; link it to the open incidents whose service it changed shortly before onset."""
        at = millis(change.at)
        found = _Change(change.id, change.service, change.kind, change.version, at)
        known = self._changes.setdefault(change.service, [])
        if any(c.id == change.id for c in known):
            return []
        known.append(found)
        known.sort(key=lambda c: (c.at_ms, c.id))
        changed = []
        for inc_id in sorted(self._by_service.get(change.service, ())):
            incident = self._incidents[inc_id]
            seen = incident.seen[change.service]
            if seen.first_ms - self.config.change_window_ms <= at <= seen.last_ms:
                self._link_change(incident, found)
                incident.updated_ms = max(incident.updated_ms, at)
                changed.append(incident)
        return [self._publish(i) for i in changed]

    # ----------------------------------------------------------------- clock

    def tick(self, now_ms: int) -> list[IncidentRecord]:
        """Advance the event-time clock: resolve quiet incidents, forget long-resolved ones and old changes."""
        self._clock_ms = max(self._clock_ms, now_ms)
        changed = []
        for inc_id in list(self._quiet):
            incident = self._incidents[inc_id]
            if incident.activity_ms + self.config.quiet_ms <= now_ms:
                quiet_min = self.config.quiet_ms / 60_000
                note = f"every member ended and nothing new for {quiet_min:g} min"
                self._close(incident, IncidentStatus.RESOLVED, now_ms, "correlation", note)
                changed.append(incident)
        changed.sort(key=lambda i: (i.started_ms, i.id))
        horizon = now_ms - self.config.keep_resolved_ms
        for inc_id in [i for i in self._resolved if (self._incidents[i].resolved_ms or 0) <= horizon]:
            del self._incidents[inc_id]
            del self._resolved[inc_id]
        keep_from = now_ms - self.config.change_window_ms - self.config.window_ms
        for service in list(self._changes):
            kept = [c for c in self._changes[service] if c.at_ms >= keep_from]
            if kept:
                self._changes[service] = kept
            else:
                del self._changes[service]
        return [self._publish(i) for i in changed]

    # ----------------------------------------------------------------- feedback

    def split(self, incident_id: str, fingerprint: str, by: str, at_ms: int, note: str = "") -> list[IncidentRecord]:
        """An operator says a member does not belong: it leaves for an incident of its own, and the pairs
        that put it there (its service with the related member's, and the two signals) weigh less."""
        incident = self._incidents.get(incident_id)
        if incident is None or incident.merged_into is not None or fingerprint not in incident.members:
            return []
        if len(incident.members) == 1:
            return []
        member = incident.members[fingerprint]
        related = incident.members.get(member.reason.related_to)
        if related is not None:
            self._learn(member, related, self.config.split_factor)
        lead = incident.members.get(incident.lead)
        if lead is not None and lead is not member and lead is not related:
            self._learn(member, lead, self.config.split_factor)
        self._remove_member(incident, member)
        self._rebuild(incident)
        self._clock_ms = max(self._clock_ms, at_ms)
        text = f"split out of {incident.id} by {by}" + (f": {note}" if note else "")
        new = _Incident(
            id=incident_id_for(f"{member.fingerprint}@{member.started_ms}@split@{at_ms}"),
            started_ms=member.started_ms,
            updated_ms=at_ms,
            activity_ms=max(member.active_ms, member.ended_ms or 0),
        )
        member.reason = JoinReason(rule="feedback", text=text)
        member.joined_ms = at_ms
        member.model = None
        self._incidents[new.id] = new
        new.history.append(StatusChange(status=IncidentStatus.OPEN, at=from_millis(at_ms), by=by, note=text))
        self._join(new, member)
        incident.updated_ms = max(incident.updated_ms, at_ms)
        incident.history.append(
            StatusChange(status=incident.status, at=from_millis(at_ms), by=by, note=f"{member.fingerprint} {text}")
        )
        return [self._publish(incident), self._publish(new)]

    def merge(self, incident_id: str, other_id: str, by: str, at_ms: int, note: str = "") -> list[IncidentRecord]:
        """An operator says two incidents are one: the younger folds into the older, and the pair of their
        leads' services weighs more (and links from now on, even beyond the topology's hops)."""
        a, b = self._incidents.get(incident_id), self._incidents.get(other_id)
        if a is None or b is None or a is b or a.merged_into is not None or b.merged_into is not None:
            return []
        survivor, victim = sorted((a, b), key=lambda i: (i.started_ms, i.id))
        lead_a, lead_b = survivor.members.get(survivor.lead), victim.members.get(victim.lead)
        if lead_a is not None and lead_b is not None:
            self._learn(lead_a, lead_b, self.config.merge_factor)
        self._clock_ms = max(self._clock_ms, at_ms)
        if not survivor.is_open:
            self._close(survivor, IncidentStatus.OPEN, at_ms, by, f"reopened to merge {victim.id}")
        text = f"merged by {by}" + (f": {note}" if note else "")
        self._absorb(survivor, victim, at_ms, text, None, by=by)
        survivor.updated_ms = max(survivor.updated_ms, at_ms)
        return [self._publish(survivor), self._publish(victim)]

    def set_status(
        self, incident_id: str, status: IncidentStatus, by: str, at_ms: int, note: str = ""
    ) -> list[IncidentRecord]:
        """Acknowledge, mitigate, resolve or reopen (``open``); recorded in the history. Nothing for an
        unknown or merged incident, or a status it already has."""
        incident = self._incidents.get(incident_id)
        if incident is None or incident.merged_into is not None or incident.status == status:
            return []
        self._clock_ms = max(self._clock_ms, at_ms)
        self._close(incident, status, at_ms, by, note)
        return [self._publish(incident)]

    # ----------------------------------------------------------------- state

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain values (msgpack-able); resolved incidents leave it once evicted."""
        return {
            "version": SNAPSHOT_VERSION,
            "clock_ms": self._clock_ms,
            "incidents": [_incident_state(i) for i in self._incidents.values()],
            "changes": [c.state() for changes in self._changes.values() for c in changes],
            "weights": [[k, v] for k, v in self._weights.items()],
        }

    @classmethod
    def restore(cls, config: ClusterConfig, topology: TopologyView, snapshot: Mapping[str, Any]) -> Clusterer:
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"clusterer snapshot version {snapshot.get('version')!r}, expected {SNAPSHOT_VERSION}")
        self = cls(config, topology)
        self._clock_ms = int(snapshot["clock_ms"])
        for s in snapshot["changes"]:
            self._changes.setdefault(s[1], []).append(_Change(s[0], s[1], s[2], s[3], s[4]))
        for k, v in snapshot["weights"]:
            self._set_weight(k, float(v))
        for s in snapshot["incidents"]:
            incident = _incident_from_state(s, self._changes)
            self._incidents[incident.id] = incident
            for member in incident.members.values():
                self._note_member(incident, member)
            for change_id in incident.changes:
                if incident.is_open:
                    self._by_change.setdefault(change_id, {})[incident.id] = None
            if incident.is_open and incident.firing == 0:
                self._quiet[incident.id] = None
            if not incident.is_open:
                self._resolved[incident.id] = None
        return self

    # ----------------------------------------------------------------- linking

    def _links_for(self, signal: Signal) -> list[_Link]:
        """Every open incident the signal relates to, with its best link, best first."""
        cfg = self.config
        at, service = signal.at_ms, signal.service
        best: dict[str, _Link] = {}

        def offer(link: _Link) -> None:
            if link.score < cfg.join_score:
                return
            held = best.get(link.incident)
            if held is None or (-link.score, link.related) < (-held.score, held.related):
                best[link.incident] = link

        view = self.topology
        near = view.within(service, cfg.hops) if service in view else {service: 0}
        for other, distance in near.items():
            found = self._by_service.get(other)
            if not found:
                continue
            weight, kind, path = topology_weight(view, other, service, distance)
            for inc_id in found:
                seen = self._incidents[inc_id].seen[other]
                gap = _gap(at, seen)
                if abs(gap) > cfg.window_ms:
                    continue
                related = self._incidents[inc_id].members[seen.last_fp if gap >= 0 else seen.first_fp]
                learned = self._learned(related, signal)
                # A callee can be the cause of its callers' alerts only if it started about as early.
                # Only a direct callee counts as a shared cause for merging: two hops down from a busy caller
                # reach too many services for one alert there to tie two incidents together.
                causal = kind == "calls" and at - seen.first_ms <= cfg.lead_tolerance_ms
                late = kind in ("calls", "chain_down") and at - seen.first_ms > cfg.lead_tolerance_ms
                base = min(weight, cfg.late_cause_weight) if late else weight
                score = base * time_factor(gap, cfg.window_ms, cfg.time_decay) * learned
                if score < cfg.join_score:
                    continue
                gap = at - related.active_ms
                offer(
                    _Link(
                        inc_id,
                        related.fingerprint,
                        "same_service" if distance == 0 else "topology",
                        score,
                        gap,
                        tuple(path),
                        None,
                        f"{topology_text(kind, path)}, {_gap_text(gap)} {related.service}/{related.name}",
                        causal,
                    )
                )
        self._label_links(signal, offer)
        self._change_links(signal, offer)
        self._learned_links(signal, offer, near)
        return sorted(best.values(), key=lambda k: (-k.score, self._incidents[k.incident].started_ms, k.incident))

    def _label_links(self, signal: Signal, offer: Callable[[_Link], None]) -> None:
        cfg = self.config
        pairs = discriminating_pairs(signal.labels, cfg.ignored_labels)
        if not pairs:
            return
        mine = frozenset(pairs)
        my_attributes = attribute_pairs(self.topology.attributes(signal.service), cfg.attribute_keys)
        tried: set[tuple[str, str]] = set()
        for pair in pairs:
            for inc_id in sorted(self._by_label.get(pair, ())):
                seen = self._incidents[inc_id].labels[pair]
                gap = _gap(signal.at_ms, seen)
                if abs(gap) > cfg.window_ms:
                    continue
                related = self._incidents[inc_id].members[seen.last_fp if gap >= 0 else seen.first_fp]
                if (inc_id, related.fingerprint) in tried:
                    continue
                tried.add((inc_id, related.fingerprint))
                theirs = frozenset(self._pairs(related))
                similarity = label_similarity(
                    (mine, theirs),
                    (my_attributes, attribute_pairs(self.topology.attributes(related.service), cfg.attribute_keys)),
                )
                if similarity < cfg.label_similarity:
                    continue
                gap = signal.at_ms - related.active_ms
                score = (
                    cfg.label_weight
                    * similarity
                    * time_factor(gap, cfg.window_ms, cfg.time_decay)
                    * self._learned(related, signal)
                )
                shared = ", ".join(f"{k}={v}" for k, v in sorted(mine & theirs))
                offer(
                    _Link(
                        inc_id,
                        related.fingerprint,
                        "labels",
                        score,
                        gap,
                        (),
                        round(similarity, 4),
                        f"shares {shared} with {related.service}/{related.name} (similarity {similarity:.2f}), "
                        f"{_gap_text(gap)} it",
                        True,
                    )
                )

    def _change_links(self, signal: Signal, offer: Callable[[_Link], None]) -> None:
        cfg = self.config
        for change in self._recent_changes(signal.service, signal.at_ms):
            for inc_id in sorted(self._by_change.get(change.id, ())):
                incident = self._incidents[inc_id]
                seen = incident.seen.get(change.service)
                if seen is None:
                    continue
                related = incident.members[seen.first_fp]
                gap = signal.at_ms - related.active_ms
                before_min = (signal.at_ms - change.at_ms) / 60_000
                offer(
                    _Link(
                        inc_id,
                        related.fingerprint,
                        "change",
                        cfg.change_weight * self._learned(related, signal),
                        gap,
                        (),
                        None,
                        f"{_change_phrase(change)} {before_min:.0f} min before, "
                        f"as for {related.service}/{related.name}",
                        True,
                    )
                )

    def _learned_links(self, signal: Signal, offer: Callable[[_Link], None], near: Mapping[str, int]) -> None:
        cfg = self.config
        for other in self._links.get(signal.service, ()):
            if other in near:
                continue
            for inc_id in sorted(self._by_service.get(other, ())):
                seen = self._incidents[inc_id].seen[other]
                gap = _gap(signal.at_ms, seen)
                if abs(gap) > cfg.window_ms:
                    continue
                related = self._incidents[inc_id].members[seen.last_fp if gap >= 0 else seen.first_fp]
                gap = signal.at_ms - related.active_ms
                learned = self._learned(related, signal)
                score = 0.5 * learned * time_factor(gap, cfg.window_ms, cfg.time_decay)
                offer(
                    _Link(
                        inc_id,
                        related.fingerprint,
                        "feedback",
                        score,
                        gap,
                        (other, signal.service),
                        None,
                        f"operators merged incidents of {other} and {signal.service} before (weight {learned:.2f}), "
                        f"{_gap_text(gap)} {related.service}/{related.name}",
                        True,
                    )
                )

    def _recent_changes(self, service: str, at_ms: int) -> list[_Change]:
        return [c for c in self._changes.get(service, ()) if at_ms - self.config.change_window_ms <= c.at_ms <= at_ms]

    # ----------------------------------------------------------------- learning

    def _learned(self, a: _Member, b: _Member | Signal) -> float:
        if not self._weights:
            return 1.0
        return self._weights.get(_pair("svc", a.service, b.service), 1.0) * self._weights.get(
            _pair("sig", f"{a.service}/{a.name}", f"{b.service}/{b.name}"), 1.0
        )

    def _learn(self, a: _Member, b: _Member, factor: float) -> None:
        for key in (_pair("svc", a.service, b.service), _pair("sig", f"{a.service}/{a.name}", f"{b.service}/{b.name}")):
            self._set_weight(key, self._weights.get(key, 1.0) * factor)
        if len(self._weights) > self.config.max_weights:
            order = sorted(self._weights.items(), key=lambda kv: (abs(kv[1] - 1.0), kv[0]))
            for key, _ in order[: len(self._weights) - self.config.max_weights]:
                self._set_weight(key, 1.0)

    def _set_weight(self, key: str, value: float) -> None:
        low, high = self.config.weight_bounds
        value = min(high, max(low, value))
        kind, a, b = key.split("\x00")
        if kind == "svc":
            if value > 1.0:
                self._links.setdefault(a, {})[b] = None
                self._links.setdefault(b, {})[a] = None
            else:
                self._links.get(a, {}).pop(b, None)
                self._links.get(b, {}).pop(a, None)
        if value == 1.0:
            self._weights.pop(key, None)
        else:
            self._weights[key] = value

    # ----------------------------------------------------------------- incident state

    def _open(self, signal: Signal, held: str) -> IncidentRecord:
        at = signal.at_ms
        incident = _Incident(
            id=incident_id_for(f"{signal.fingerprint}@{at}"), started_ms=at, updated_ms=at, activity_ms=at
        )
        existing = self._incidents.get(incident.id)
        if existing is not None:
            # The same episode opened an incident before and it has been resolved since (a replay after
            # the resolve): it opens again under its own id, one revision on.
            incident.revision = existing.revision
            incident.history = list(existing.history)
            self._drop_indexes(existing)
            self._resolved.pop(existing.id, None)
        self._incidents[incident.id] = incident
        incident.history.append(StatusChange(status=IncidentStatus.OPEN, at=from_millis(at), note="opened"))
        reason = JoinReason(rule="seed", text=f"first signal of the incident: {signal.service}/{signal.name}{held}")
        self._join(incident, _member(signal, reason, at))
        return self._publish(incident)

    def _fold(self, incident: _Incident, signal: Signal, at: int) -> list[IncidentRecord]:
        fp = incident.keys.get(signal.key) or signal.fingerprint
        member = incident.members[fp]
        if at <= member.active_ms:
            # This episode (or an older one) delivered again, as Alertmanager re-sends firing alerts with
            # every notification and replays deliver twice: nothing changed, nothing to publish.
            return []
        member.occurrences += 1
        member.last_seen_ms = max(at, member.last_seen_ms or at)
        if member.ended_ms is not None:
            member.ended_ms = None
            incident.firing += 1
            self._quiet.pop(incident.id, None)
        if _RANK[signal.severity] > _RANK[member.severity]:
            member.severity = signal.severity
            incident.top_rank = max(incident.top_rank, _RANK[member.severity])
        self._refresh(incident, member)
        self._note_seen(incident, member)
        incident.activity_ms = max(incident.activity_ms, at)
        incident.updated_ms = max(incident.updated_ms, at)
        return [self._publish(incident)]

    def _join(self, incident: _Incident, member: _Member) -> None:
        incident.members[member.fingerprint] = member
        incident.top_rank = max(incident.top_rank, _RANK[member.severity])
        incident.not_alerts += member.kind != MemberKind.ALERT
        if incident.rendered is not None:
            incident.positions[member.fingerprint] = len(incident.rendered)
            incident.rendered.append(member.render())
        if member.ended_ms is None:
            incident.firing += 1
            self._quiet.pop(incident.id, None)
        elif incident.firing == 0 and incident.is_open:
            self._quiet[incident.id] = None
        incident.started_ms = min(incident.started_ms, member.started_ms)
        incident.activity_ms = max(incident.activity_ms, member.active_ms, member.ended_ms or 0)
        incident.updated_ms = max(incident.updated_ms, member.joined_ms)
        before = incident.seen.get(member.service)
        first = (before.first_ms, before.first_fp) if before is not None else None
        self._note_member(incident, member)
        if before is None:
            for change in self._recent_changes(member.service, member.started_ms):
                self._link_change(incident, change)
        # The lead depends on the services, their first onsets and the topology: choose again when one moved.
        if before is None or first != (before.first_ms, before.first_fp) or incident.lead_view is not self.topology:
            self._choose_lead(incident)

    def _note_member(self, incident: _Incident, member: _Member) -> None:
        """Index a member: its key, fingerprint, service and label pairs point at the incident while open."""
        incident.keys[member.key] = member.fingerprint
        self._note_seen(incident, member)
        if incident.is_open:
            self._by_key[member.key] = incident.id
            self._by_fp[member.fingerprint] = incident.id
            self._by_service.setdefault(member.service, {})[incident.id] = None
            for pair in self._pairs(member):
                self._by_label.setdefault(pair, {})[incident.id] = None

    def _note_seen(self, incident: _Incident, member: _Member) -> None:
        pairs = self._pairs(member)
        for at in (member.started_ms, member.active_ms) if member.last_seen_ms is not None else (member.started_ms,):
            seen = incident.seen.get(member.service)
            if seen is None:
                incident.seen[member.service] = _Seen(at, member.fingerprint, at, member.fingerprint)
            else:
                seen.note(at, member.fingerprint)
            for pair in pairs:
                found = incident.labels.get(pair)
                if found is None:
                    incident.labels[pair] = _Seen(at, member.fingerprint, at, member.fingerprint)
                else:
                    found.note(at, member.fingerprint)

    def _pairs(self, member: _Member) -> tuple[tuple[str, str], ...]:
        if member.pairs is None:
            member.pairs = tuple(discriminating_pairs(member.labels, self.config.ignored_labels))
        return member.pairs

    def _refresh(self, incident: _Incident, member: _Member) -> None:
        """A member changed: its published form is rebuilt, in place in the incident's list when it is there."""
        member.model = None
        rendered = incident.rendered
        if rendered is not None:
            at = incident.positions.get(member.fingerprint)
            if at is None or at >= len(rendered) or rendered[at].fingerprint != member.fingerprint:
                incident.rendered = None
            else:
                rendered[at] = member.render()

    def _link_change(self, incident: _Incident, change: _Change) -> None:
        if change.id in incident.changes:
            return
        incident.changes[change.id] = change
        if incident.is_open:
            self._by_change.setdefault(change.id, {})[incident.id] = None

    def _choose_lead(self, incident: _Incident) -> None:
        """The probable origin: among services no callee in the incident explains (a callee whose onset is
        not later than theirs by more than the tolerance), the earliest onset, then the deepest; its earliest
        member leads."""
        view = incident.lead_view = self.topology
        tolerance = self.config.lead_tolerance_ms
        seen = incident.seen
        origins = [
            s
            for s, here in seen.items()
            if not any(c in seen and seen[c].first_ms <= here.first_ms + tolerance for c in view.callees(s))
        ] or list(seen)
        service = min(origins, key=lambda s: (seen[s].first_ms, -view.depth(s), s))
        lead = seen[service].first_fp
        if lead != incident.lead:
            old = incident.members.get(incident.lead)
            incident.rendered = None
            if old is not None:
                old.lead = False
                old.model = None
            new = incident.members[lead]
            new.lead = True
            new.model = None
            incident.lead = lead

    def _absorb(
        self, survivor: _Incident, victim: _Incident, at: int, why: str, via: Signal | None, by: str = "correlation"
    ) -> None:
        """Fold ``victim`` into ``survivor``: members (its seed now says ``merge``), changes and merges move;
        the victim is resolved with ``merged_into`` and no members."""
        self._drop_indexes(victim)
        survivor.merged.append(IncidentMerge(incident_id=victim.id, at=from_millis(at), reason=why))
        survivor.merged.extend(victim.merged)
        for member in victim.members.values():
            if member.reason.rule == "seed":
                member.reason = JoinReason(
                    rule="merge",
                    related_to=via.fingerprint if via is not None else "",
                    text=f"opened {victim.id}, merged into this incident: {why}",
                )
            member.lead = False
            member.model = None
            if member.fingerprint in survivor.members:
                continue
            self._join(survivor, member)
        for change in victim.changes.values():
            self._link_change(survivor, change)
        self._choose_lead(survivor)
        victim.members = {}
        victim.keys = {}
        victim.firing = 0
        victim.aggregate()
        victim.merged_into = survivor.id
        victim.lead = ""
        self._close(victim, IncidentStatus.RESOLVED, at, by, f"merged into {survivor.id}")

    def _close(self, incident: _Incident, status: IncidentStatus, at: int, by: str, note: str) -> None:
        """Move to ``status`` (indexes follow: a resolved incident is found by no signal, a reopened one is)."""
        was_open = incident.is_open
        incident.status = status
        incident.history.append(StatusChange(status=status, at=from_millis(at), by=by, note=note))
        incident.updated_ms = max(incident.updated_ms, at)
        if status == IncidentStatus.RESOLVED:
            incident.resolved_ms = at
            self._resolved[incident.id] = None
            if was_open:
                self._drop_indexes(incident)
        else:
            incident.resolved_ms = None
            self._resolved.pop(incident.id, None)
            if not was_open:
                for member in incident.members.values():
                    self._note_member(incident, member)
                for change_id in incident.changes:
                    self._by_change.setdefault(change_id, {})[incident.id] = None
                if incident.firing == 0:
                    self._quiet[incident.id] = None
                incident.activity_ms = max(incident.activity_ms, at)

    def _drop_indexes(self, incident: _Incident) -> None:
        for member in incident.members.values():
            if self._by_key.get(member.key) == incident.id:
                del self._by_key[member.key]
            if self._by_fp.get(member.fingerprint) == incident.id:
                del self._by_fp[member.fingerprint]
        for service in incident.seen:
            _discard(self._by_service, service, incident.id)
        for pair in incident.labels:
            _discard(self._by_label, pair, incident.id)
        for change_id in incident.changes:
            _discard(self._by_change, change_id, incident.id)
        self._quiet.pop(incident.id, None)

    def _remove_member(self, incident: _Incident, member: _Member) -> None:
        self._drop_indexes(incident)
        del incident.members[member.fingerprint]
        incident.aggregate()
        if member.ended_ms is None:
            incident.firing -= 1
        member.lead = False
        if incident.lead == member.fingerprint:
            incident.lead = ""

    def _rebuild(self, incident: _Incident) -> None:
        """Recompute what members imply (onset, where it touches, indexes, lead) after one left."""
        incident.seen = {}
        incident.labels = {}
        incident.keys = {}
        incident.started_ms = min(m.started_ms for m in incident.members.values())
        for member in incident.members.values():
            self._note_member(incident, member)
        if incident.is_open:
            for change_id in incident.changes:
                self._by_change.setdefault(change_id, {})[incident.id] = None
            if incident.firing == 0:
                self._quiet[incident.id] = None
        self._choose_lead(incident)

    # ----------------------------------------------------------------- records

    def _publish(self, incident: _Incident) -> IncidentRecord:
        incident.revision += 1
        return self._render(incident)

    def _render(self, incident: _Incident) -> IncidentRecord:
        members = incident.members
        lead = members.get(incident.lead)
        services = sorted(incident.seen, key=lambda s: (lead is None or s != lead.service, s))
        if incident.merged_into is not None:
            services = incident.services
        incident.services = services
        rendered = incident.rendered
        if rendered is None:
            order = ([lead] if lead is not None else []) + [m for m in members.values() if m is not lead]
            rendered = incident.rendered = [m.render() for m in order]
            incident.positions = {m.fingerprint: i for i, m in enumerate(order)}
        low, high = self.config.blast_radius
        bump = (len(services) >= low) + (len(services) >= high)
        top = min(len(_SEVERITIES) - 1, incident.top_rank + bump)
        severity = _SEVERITIES[top] if members else IncidentSeverity.INFO
        linked = [_linked(c, incident.started_ms) for c in incident.changes.values()]
        made_from = (
            incident.lead,
            len(members),
            tuple(services),
            tuple(c.text for c in linked),
            incident.not_alerts > 0,
        )
        if incident.text is None or incident.text[0] != made_from:
            incident.text = (made_from, *_describe(incident, lead, len(members), services, linked))
        _, title, summary = incident.text
        incident.title = title
        fields: dict[str, Any] = {
            "id": incident.id,
            "revision": incident.revision,
            "title": title,
            "summary": summary,
            "status": incident.status,
            "severity": severity,
            "services": services,
            "started_at": from_millis(incident.started_ms),
            "updated_at": from_millis(incident.updated_ms),
            "resolved_at": _at(incident.resolved_ms),
            "members": list(rendered),
            "changes": linked,
            "merged": list(incident.merged),
            "merged_into": incident.merged_into,
            "history": list(incident.history),
        }
        return IncidentRecord(**fields)


def incident_id_for(seed: str) -> str:
    """The incident id of a seed: ``incident_id`` of the opening signal's fingerprint and onset.

    The onset is part of it because Alertmanager gives every episode of an alert the same fingerprint:
    an alert that fires again next week opens a new incident, while a replay of this episode finds this one.
    """
    return incident_id(seed)


def _member(signal: Signal, reason: JoinReason, at: int) -> _Member:
    # An anomaly covers its window and a prediction is a point in time: both end as they arrive.
    if signal.kind == MemberKind.ALERT:
        ended = None
    elif signal.end_ms is not None:
        ended = max(signal.end_ms, signal.at_ms)
    else:
        ended = signal.at_ms
    return _Member(
        fingerprint=signal.fingerprint,
        kind=signal.kind,
        key=signal.key,
        name=signal.name,
        service=signal.service,
        severity=signal.severity,
        labels=dict(signal.labels),
        started_ms=signal.at_ms,
        ended_ms=ended,
        occurrences=1,
        last_seen_ms=None,
        reason=reason,
        joined_ms=at,
    )


def _describe(
    incident: _Incident, lead: _Member | None, n: int, services: list[str], linked: list[LinkedChange]
) -> tuple[str, str]:
    if lead is None:
        if incident.merged_into is not None:
            return incident.title or f"merged into {incident.merged_into}", f"Merged into {incident.merged_into}."
        return "empty incident", ""
    where = lead.service or lead.name
    noun = "signals" if incident.not_alerts else "alerts"
    title = f"{where}: {lead.name}"
    if n > 1:
        title += (
            f" and {n - 1} more {noun[:-1] if n == 2 else noun} on {len(services)} service{'s' * (len(services) != 1)}"
        )
    shown = ", ".join(services[:6]) + (f" and {len(services) - 6} more" if len(services) > 6 else "")
    parts = [
        f"Probable origin: {where}/{lead.name}, firing since {from_millis(lead.started_ms):%Y-%m-%d %H:%M:%S} UTC.",
        f"Affected: {shown}.",
    ]
    parts.extend(f"{c.text}." for c in linked[:3])
    if len(linked) > 3:
        parts.append(f"{len(linked) - 3} more changes linked.")
    return title, " ".join(parts)


def _linked(change: _Change, onset_ms: int) -> LinkedChange:
    before = (onset_ms - change.at_ms) / 1000
    return LinkedChange(
        id=change.id,
        service=change.service,
        kind=change.kind,
        version=change.version,
        at=from_millis(change.at_ms),
        before_onset_s=before,
        text=f"{_change_phrase(change)} {_duration(before)} {'before' if before >= 0 else 'after'} onset",
    )


def _change_phrase(change: _Change) -> str:
    what = f"{change.service} {change.version}".strip() if change.version else change.service
    return f"{what} {_CHANGE_VERBS.get(change.kind, change.kind.replace('_', ' '))}"


def _duration(seconds: float) -> str:
    s = abs(seconds)
    if s < 90:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min"


def _gap(at: int, seen: _Seen) -> int:
    """Signed distance from the span where an incident touches a service to ``at`` (0 inside it)."""
    if at >= seen.last_ms:
        return at - seen.last_ms
    if at <= seen.first_ms:
        return at - seen.first_ms
    return 0


def _gap_text(gap_ms: int) -> str:
    s = gap_ms / 1000
    if s == 0:
        return "at the same time as"
    return f"{_duration(s)} {'after' if s > 0 else 'before'}"


def _pair(kind: str, a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return f"{kind}\x00{lo}\x00{hi}"


def _discard(index: dict[Any, dict[str, None]], key: Any, inc_id: str) -> None:
    found = index.get(key)
    if found is not None:
        found.pop(inc_id, None)
        if not found:
            del index[key]


def _at(ms: int | None) -> datetime | None:
    return from_millis(ms) if ms is not None else None


def _incident_state(incident: _Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "revision": incident.revision,
        "status": incident.status.value,
        "started_ms": incident.started_ms,
        "updated_ms": incident.updated_ms,
        "activity_ms": incident.activity_ms,
        "resolved_ms": incident.resolved_ms,
        "merged_into": incident.merged_into,
        "members": [m.state() for m in incident.members.values()],
        "changes": [c.state() for c in incident.changes.values()],
        "merged": [m.model_dump(mode="json") for m in incident.merged],
        "history": [h.model_dump(mode="json") for h in incident.history],
        "lead": incident.lead,
        "title": incident.title,
        "services": list(incident.services),
    }


def _incident_from_state(s: Mapping[str, Any], changes: Mapping[str, list[_Change]]) -> _Incident:
    incident = _Incident(
        id=s["id"],
        started_ms=s["started_ms"],
        updated_ms=s["updated_ms"],
        activity_ms=s["activity_ms"],
        revision=s["revision"],
        status=IncidentStatus(s["status"]),
        resolved_ms=s["resolved_ms"],
        merged_into=s["merged_into"],
        merged=[IncidentMerge.model_validate(m) for m in s["merged"]],
        history=[StatusChange.model_validate(h) for h in s["history"]],
        lead=s["lead"],
        title=s["title"],
        services=list(s["services"]),
    )
    for m in s["members"]:
        member = _Member.from_state(m)
        member.lead = member.fingerprint == incident.lead
        incident.members[member.fingerprint] = member
        if member.ended_ms is None:
            incident.firing += 1
    incident.aggregate()
    for c in s["changes"]:
        incident.changes[c[0]] = _Change(c[0], c[1], c[2], c[3], c[4])
    return incident
