"""A seeded alert storm over a random layered service topology, with the true group of every alert."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiops_common.schemas import AlertRecord, AlertStatus, ChangeEvent
from aiops_common.topology import Dependency, Service

__all__ = ["Episode", "Fault", "Storm", "StormShape", "generate"]

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LAYERS = ("edge", "api", "svc", "core", "data")
_SYMPTOMS = {
    "edge": ("HighErrorRate", "HighLatency"),
    "api": ("HighErrorRate", "HighLatency"),
    "svc": ("HighLatency", "HighErrorRate"),
    "core": ("HighLatency", "HighErrorRate"),
    "data": ("SlowQueries", "HighLatency"),
}
_CAUSES = {
    "edge": ("PodCrashLooping", "HighMemory"),
    "api": ("PodCrashLooping", "HighMemory", "CPUThrottling"),
    "svc": ("PodCrashLooping", "HighMemory", "CPUThrottling"),
    "core": ("PodCrashLooping", "HighMemory", "ThreadPoolExhausted"),
    "data": ("DBConnectionsExhausted", "DiskLatencyHigh", "ReplicationLag"),
}
_FLAPPERS = ("CPUThrottlingHigh", "DiskIOSaturation", "GCPauseLong", "ConnectionResets")


@dataclass(frozen=True, slots=True)
class StormShape:
    """What the storm holds; the defaults give about 10,000 alerts over twelve hours of event time."""

    seed: int = 7
    layers: tuple[int, ...] = (10, 60, 140, 180, 110)
    """Services per layer, callers first; each calls 1-3 services of the next layers."""
    pods: tuple[int, int] = (4, 24)
    hours: float = 12.0
    cascades: int = 140
    """Faults that start at one service and spread to its callers (and theirs) along call edges."""
    deployments: int = 40
    """Faults caused by a deployment of the root a few minutes before onset."""
    shared_stores: int = 15
    """Faults of a datastore outside the topology: unrelated services alert with its ``datastore`` label."""
    flapping: int = 30
    """Pod alerts that fire and resolve all day long, with two days of history before the storm."""
    noise: int = 300
    """Isolated single alerts."""
    start: datetime = T0
    """When the storm begins (its flapping history two days before)."""


@dataclass(frozen=True, slots=True)
class Episode:
    """One firing of one pod's alert: what Alertmanager sends when it fires and when it resolves."""

    alert: AlertRecord
    group: str
    """The true group: ``cascade-N``, ``deploy-N``, ``store-N``, ``noise-N``, or ``flap`` (should open nothing)."""
    ends_at: datetime
    in_storm: bool = True

    @property
    def uid(self) -> str:
        return f"{self.alert.fingerprint}@{self.alert.starts_at.isoformat()}"

    def resolved(self) -> AlertRecord:
        return self.alert.model_copy(update={"status": AlertStatus.RESOLVED, "ends_at": self.ends_at})


@dataclass(frozen=True, slots=True)
class Fault:
    group: str
    kind: str
    root: str
    """The service where it started (empty for an outside datastore)."""
    onset: datetime


@dataclass(slots=True)
class Storm:
    start: datetime
    services: list[Service]
    dependencies: list[Dependency]
    episodes: list[Episode] = field(default_factory=list)
    changes: list[ChangeEvent] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    pods: dict[str, list[str]] = field(default_factory=dict)

    def events(self) -> list[tuple[datetime, int, AlertRecord | ChangeEvent]]:
        """Everything in the order the correlator receives it: by event time (firing at onset, resolved
        at the end, changes when made), then firing before resolved, then by fingerprint."""
        out: list[tuple[datetime, int, AlertRecord | ChangeEvent]] = [(c.at, 0, c) for c in self.changes]
        for e in self.episodes:
            out.append((e.alert.starts_at, 1, e.alert))
            out.append((e.ends_at, 2, e.resolved()))
        out.sort(key=lambda t: (t[0], t[1], t[2].fingerprint if isinstance(t[2], AlertRecord) else t[2].id))
        return out

    @property
    def storm_alerts(self) -> list[Episode]:
        return [e for e in self.episodes if e.in_storm]


def _fingerprint(labels: dict[str, str]) -> str:
    text = "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Builder:
    def __init__(self, shape: StormShape) -> None:
        self.shape = shape
        self.rng = random.Random(shape.seed)
        self.layer_of: dict[str, int] = {}
        self.callers: dict[str, list[str]] = {}
        self.storm: Storm = self._topology()
        self.busy: dict[str, datetime] = {}
        """Until when a pod alert key is taken by a fault (a key fires once per fault, not twice at once)."""

    def _topology(self) -> Storm:
        rng = self.rng
        names: list[list[str]] = []
        services: list[Service] = []
        for depth, size in enumerate(self.shape.layers):
            layer = [f"{LAYERS[depth % len(LAYERS)]}-{i:02d}" for i in range(size)]
            names.append(layer)
            for name in layer:
                self.layer_of[name] = depth
                attributes = {
                    "tier": LAYERS[depth % len(LAYERS)],
                    "zone": rng.choice("abc"),
                    "team": f"t{rng.randrange(12)}",
                }
                services.append(Service(name, attributes))
        edges: set[tuple[str, str]] = set()
        for depth, layer in enumerate(names[:-1]):
            for caller in layer:
                for _ in range(rng.randint(1, 3)):
                    # Mostly the next layer; now and then one further down (an API reading a store directly).
                    target = depth + 1 if rng.random() < 0.8 or depth + 2 >= len(names) else depth + 2
                    edges.add((caller, rng.choice(names[target])))
        # Every service below the top is called by someone.
        for depth, layer in enumerate(names[1:], start=1):
            called = {b for _, b in edges}
            for name in layer:
                if name not in called:
                    edges.add((rng.choice(names[depth - 1]), name))
        for a, b in sorted(edges):
            self.callers.setdefault(b, []).append(a)
        deps = [Dependency(a, b, frozenset({"file"}), T0, T0) for a, b in sorted(edges)]
        storm = Storm(self.shape.start, services, deps)
        for s in services:
            n = rng.randint(*self.shape.pods)
            storm.pods[s.name] = [f"{s.name}-{_fingerprint({'p': s.name, 'i': str(i)})[:5]}" for i in range(n)]
        return storm

    def alert(
        self, name: str, service: str, pod: str, at: datetime, severity: str, extra: dict[str, str]
    ) -> AlertRecord:
        labels = {
            "alertname": name,
            "service": service,
            "pod": pod,
            "instance": pod,
            "namespace": "prod",
            "severity": severity,
            **extra,
        }
        return AlertRecord(
            fingerprint=_fingerprint(labels),
            status=AlertStatus.FIRING,
            name=name,
            service=service,
            severity=severity,
            labels=labels,
            starts_at=at,
        )

    def fire(
        self,
        group: str,
        name: str,
        service: str,
        at: datetime,
        ends: datetime,
        severity: str,
        share: float = 1.0,
        jitter_s: float = 45.0,
        extra: dict[str, str] | None = None,
    ) -> int:
        """One alert per pod of the service (``share`` of them), as a per-pod rule fires."""
        fired = 0
        for pod in self.storm.pods[service]:
            if self.rng.random() > share and fired:
                continue
            start = at + timedelta(seconds=self.rng.uniform(0, jitter_s))
            key = f"{name}/{pod}"
            if self.busy.get(key, self.shape.start - timedelta(days=9)) > start - timedelta(minutes=30):
                continue
            end = ends + timedelta(seconds=self.rng.uniform(0, 120))
            self.busy[key] = end
            record = self.alert(name, service, pod, start, severity, extra or {})
            self.storm.episodes.append(Episode(record, group, end))
            fired += 1
        return fired

    def cascade(self, group: str, root: str, onset: datetime, cause: str) -> None:
        rng = self.rng
        duration = timedelta(minutes=rng.uniform(12, 40))
        self.fire(group, cause, root, onset, onset + duration, "critical", jitter_s=40)
        frontier, seen = [(root, onset)], {root}
        # Each hop reaches fewer callers: retries, caches and timeouts absorb part of a fault on the way up.
        for reach in (0.75, 0.5, 0.35):
            nxt = []
            for service, started in frontier:
                for caller in self.callers.get(service, []):
                    if caller in seen or rng.random() > reach:
                        continue
                    seen.add(caller)
                    at = started + timedelta(seconds=rng.uniform(30, 90))
                    # Both symptom rules fire on a caller now and then (latency and errors together).
                    symptoms = _SYMPTOMS[LAYERS[self.layer_of[caller] % len(LAYERS)]]
                    for symptom in symptoms[: 1 + (rng.random() < 0.4)]:
                        self.fire(group, symptom, caller, at, onset + duration, "warning", share=0.8)
                    nxt.append((caller, at))
            frontier = nxt

    def build(self) -> Storm:
        rng, shape, storm = self.rng, self.shape, self.storm
        span_s = shape.hours * 3600
        by_layer = [[s.name for s in storm.services if self.layer_of[s.name] == d] for d in range(len(shape.layers))]
        recent_roots: dict[str, datetime] = {}

        def pick_root(depths: tuple[int, ...], at: datetime) -> str:
            for _ in range(50):
                name = rng.choice(by_layer[rng.choice(depths)])
                if recent_roots.get(name, shape.start - timedelta(days=1)) < at - timedelta(hours=1):
                    break
            recent_roots[name] = at
            return name

        deep = tuple(range(1, len(shape.layers)))
        for i in range(shape.cascades):
            onset = shape.start + timedelta(seconds=rng.uniform(0, span_s))
            root = pick_root(deep, onset)
            cause = rng.choice(_CAUSES[LAYERS[self.layer_of[root] % len(LAYERS)]])
            storm.faults.append(Fault(f"cascade-{i}", "cascade", root, onset))
            self.cascade(f"cascade-{i}", root, onset, cause)
        for i in range(shape.deployments):
            onset = shape.start + timedelta(seconds=rng.uniform(0, span_s))
            root = pick_root(tuple(range(0, len(shape.layers) - 1)), onset)
            group = f"deploy-{i}"
            version = f"v{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
            changed_at = onset - timedelta(seconds=rng.uniform(120, 720))
            storm.changes.append(ChangeEvent(id=f"chg-{i}", service=root, version=version, at=changed_at))
            storm.faults.append(Fault(group, "deployment", root, onset))
            self.cascade(group, root, onset, "HighErrorRate")
            # The new version's pods go on restarting: more alerts on the root long after the first ones.
            late = onset + timedelta(minutes=rng.uniform(9, 20))
            self.fire(group, "PodRestarting", root, late, late + timedelta(minutes=10), "warning", jitter_s=60)
        for i in range(shape.shared_stores):
            onset = shape.start + timedelta(seconds=rng.uniform(0, span_s))
            group = f"store-{i}"
            users = rng.sample([s.name for s in storm.services if self.layer_of[s.name] >= 2], 3)
            storm.faults.append(Fault(group, "shared_store", "", onset))
            for user in users:
                self.fire(
                    group,
                    "DatastoreErrors",
                    user,
                    onset + timedelta(seconds=rng.uniform(0, 60)),
                    onset + timedelta(minutes=15),
                    "critical",
                    extra={"datastore": f"ext-store-{i}"},
                )
        for i in range(shape.noise):
            at = shape.start + timedelta(seconds=rng.uniform(0, span_s))
            service = rng.choice(storm.services).name
            pod = rng.choice(storm.pods[service])
            record = self.alert(
                rng.choice(("HighLatency", "PodOOMKilled", "CertExpiringSoon")), service, pod, at, "warning", {}
            )
            storm.episodes.append(Episode(record, f"noise-{i}", at + timedelta(minutes=rng.uniform(2, 10))))
        self._flapping(span_s)
        return storm

    def _flapping(self, span_s: float) -> None:
        """Pod alerts firing for a minute or two every few minutes, for two days before the storm and during it."""
        rng, storm, start = self.rng, self.storm, self.shape.start
        for i in range(self.shape.flapping):
            service = rng.choice(storm.services).name
            pod = rng.choice(storm.pods[service])
            record = self.alert(_FLAPPERS[i % len(_FLAPPERS)], service, pod, start, "warning", {})
            period = rng.uniform(4, 15) * 60
            at = start - timedelta(days=2) + timedelta(seconds=rng.uniform(0, period))
            while at < start + timedelta(seconds=span_s):
                end = at + timedelta(seconds=rng.uniform(40, min(150, period / 2)))
                episode = record.model_copy(update={"starts_at": at})
                storm.episodes.append(Episode(episode, "flap", end, in_storm=at >= start))
                at = end + timedelta(seconds=max(60.0, rng.gauss(period, period / 5)))


def generate(shape: StormShape | None = None) -> Storm:
    return _Builder(shape or StormShape()).build()
