"""Seeded, realistic incident documents as correlation and RCA leave them in the document store.

Each incident holds 3-30 members (alerts and anomalies, the lead first), 1-6 of ~50 services, onsets spread over
the last 30 days; most carry the ``rca`` summary the RCA service writes onto an analysed incident, with its full
result in ``rca_results``, and each anomaly member is in ``anomalies`` as detection keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from aiops_common.schemas import (
    AnomalyRecord,
    AnomalySeverity,
    CauseKind,
    Evidence,
    EvidenceKind,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    LinkedChange,
    MemberKind,
    RankedCause,
    RcaResult,
    RcaStatus,
    StatusChange,
    anomaly_id,
    rca_result_id,
)

__all__ = ["SERVICES", "Batch", "generate"]

_TIERS = ("frontend", "gateway", "checkout", "payment", "cart", "catalog", "search", "user", "auth", "inventory")
_KINDS = ("api", "worker", "db", "cache", "queue")
SERVICES = [f"{tier}-{kind}" for tier in _TIERS for kind in _KINDS]
"""50 service names."""

_ALERTS = ("HighLatency", "HighErrorRate", "PodCrashLooping", "CPUThrottling", "SLOBurnRate", "TargetDown")
_SERIES = ("red.latency_s", "red.error_rate", "red.request_rate", "process.cpu.utilization")
_SEVERITIES = list(IncidentSeverity)
_SEVERITY_P = (0.05, 0.35, 0.25, 0.25, 0.10)
_CAUSE_KINDS = (CauseKind.LATENCY, CauseKind.ERRORS, CauseKind.SATURATION, CauseKind.DEPLOYMENT, CauseKind.CRASH)
_RULES = ("topology", "same_service", "labels", "change")


@dataclass
class Batch:
    """One incident's documents: the incident, its RCA result (if analysed) and its anomaly members."""

    incident: tuple[str, dict[str, Any]]
    rca: tuple[str, dict[str, Any]] | None
    anomalies: list[tuple[str, dict[str, Any]]]


def generate(count: int, now: datetime, seed: int = 12, rca_share: float = 0.85) -> Iterator[Batch]:
    """``count`` incidents with onsets over the 30 days before ``now``, newest last."""
    rng = np.random.default_rng(seed)
    onsets = sorted(now - timedelta(seconds=float(s)) for s in rng.uniform(600, 30 * 86_400, count))
    for n, onset in enumerate(onsets):
        yield _one(rng, n, onset, now, rca_share)


def _one(rng: np.random.Generator, n: int, onset: datetime, now: datetime, rca_share: float) -> Batch:
    size = int(rng.integers(1, 7))
    services = [SERVICES[int(i)] for i in rng.choice(len(SERVICES), size=size, replace=False)]
    severity = _SEVERITIES[int(rng.choice(len(_SEVERITIES), p=_SEVERITY_P))]
    age_h = (now - onset).total_seconds() / 3600
    if age_h > 24:
        status = IncidentStatus.RESOLVED
    else:
        status = [IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED, IncidentStatus.RESOLVED][
            int(rng.integers(0, 4))
        ]
    incident_id = f"inc-{n:06d}-{int(rng.integers(0, 1 << 32)):08x}"
    members: list[IncidentMember] = []
    anomalies: list[tuple[str, dict[str, Any]]] = []
    for i in range(int(rng.integers(3, 31))):
        service = services[0] if i == 0 else services[int(rng.integers(0, len(services)))]
        started = onset + timedelta(seconds=float(rng.uniform(0, 600)) if i else 0.0)
        is_anomaly = i > 0 and rng.random() < 0.5
        if is_anomaly:
            series = _SERIES[int(rng.integers(0, len(_SERIES)))]
            key = f'{series}{{service="{service}"}}'
            record = AnomalyRecord(
                id=anomaly_id(key, int(started.timestamp() * 1000), 60_000),
                series_name=series,
                labels={"service": service},
                series_key=key,
                service=service,
                window_start=started,
                window_end=started + timedelta(minutes=1),
                value=float(rng.uniform(0.5, 5.0)),
                score=float(rng.uniform(0.9, 1.0)),
                lower=0.05,
                upper=0.4,
                severity=AnomalySeverity.MAJOR,
                detector="cascade",
                evidence={"basic": 0.97, "robust": 0.93},
                detected_at=started + timedelta(minutes=1),
            )
            anomalies.append((record.id, {**record.model_dump(mode="json"), "services": [service]}))
            fingerprint, kind, name = record.id, MemberKind.ANOMALY, series
        else:
            fingerprint = f"{int(rng.integers(0, 1 << 63)):016x}"
            kind, name = MemberKind.ALERT, _ALERTS[int(rng.integers(0, len(_ALERTS)))]
        first = members[0].fingerprint if members else ""
        rule = "seed" if i == 0 else _RULES[int(rng.integers(0, len(_RULES)))]
        members.append(
            IncidentMember(
                fingerprint=fingerprint,
                kind=kind,
                name=name,
                service=service,
                severity=severity,
                labels={"service": service, "namespace": "prod", "cluster": "eu-1"},
                started_at=started,
                ended_at=started + timedelta(minutes=20) if status is IncidentStatus.RESOLVED else None,
                lead=i == 0,
                reason=JoinReason(
                    rule=rule,
                    related_to=first,
                    gap_s=(started - onset).total_seconds() if i else None,
                    path=[services[0], service] if rule == "topology" else [],
                    score=float(rng.uniform(0.5, 1.0)),
                    text="" if i == 0 else f"{service} within 1 hop of {services[0]}",
                ),
                joined_at=started,
            )
        )
    changes = []
    if rng.random() < 0.3:
        at = onset - timedelta(minutes=float(rng.uniform(1, 30)))
        changes.append(
            LinkedChange(
                id=f"deploy-{incident_id}",
                service=services[0],
                version=f"v1.{int(rng.integers(0, 40))}.{int(rng.integers(0, 10))}",
                at=at,
                before_onset_s=(onset - at).total_seconds(),
                text=f"{services[0]} deployed before onset",
            )
        )
    updated = max(m.started_at for m in members)
    history = [StatusChange(status=IncidentStatus.OPEN, at=onset)]
    if status is not IncidentStatus.OPEN:
        history.append(StatusChange(status=status, at=updated + timedelta(minutes=5), by="oncall", note="on it"))
    incident = IncidentRecord(
        id=incident_id,
        revision=len(members),
        title=f"{services[0]}: {members[0].name}" + (f" and {len(services) - 1} more" if len(services) > 1 else ""),
        summary=f"{len(members)} signals on {', '.join(services)}",
        status=status,
        severity=severity,
        services=services,
        started_at=onset,
        updated_at=updated,
        resolved_at=updated + timedelta(minutes=30) if status is IncidentStatus.RESOLVED else None,
        members=members,
        changes=changes,
        history=history,
    )
    body = incident.document()
    rca_doc: tuple[str, dict[str, Any]] | None = None
    if rng.random() < rca_share:
        result = _rca(rng, incident)
        rca_doc = (result.id, result.document())
        body["rca"] = {  # aiops_rca.agents.root_cause.incident_summary
            "id": result.id,
            "revision": result.incident_revision,
            "status": result.status.value,
            "analyzed_at": result.analyzed_at.isoformat(),
            "summary": result.summary,
            "missing": [],
            "causes": [
                {"service": c.service, "probability": c.probability, "kind": c.kind.value, "rule": c.rule}
                for c in result.causes[:3]
            ],
        }
    return Batch((incident_id, body), rca_doc, anomalies)


def _rca(rng: np.random.Generator, incident: IncidentRecord) -> RcaResult:
    at = incident.updated_at + timedelta(seconds=30)
    weights = rng.dirichlet(np.ones(len(incident.services)) * 0.5)
    order = np.argsort(-weights)
    causes = []
    for rank, i in enumerate(order[:5]):
        service = incident.services[int(i)]
        kind = _CAUSE_KINDS[int(rng.integers(0, len(_CAUSE_KINDS)))]
        evidence = [
            Evidence(
                kind=EvidenceKind.SERIES,
                text=f"{service} latency 4.2x its baseline from onset",
                weight=0.4,
                series=f'red.latency_s{{service="{service}"}}',
                onset=incident.started_at,
                magnitude=float(rng.uniform(3, 12)),
            ),
            Evidence(kind=EvidenceKind.TOPOLOGY, text=f"{service} reaches the other affected services", weight=0.2),
        ]
        if rank == 0 and incident.changes:
            change = incident.changes[0]
            evidence.append(
                Evidence(
                    kind=EvidenceKind.CHANGE,
                    text=change.text,
                    weight=0.3,
                    change_id=change.id,
                    version=change.version,
                    before_onset_s=change.before_onset_s,
                )
            )
        causes.append(
            RankedCause(service=service, probability=round(float(weights[int(i)]), 4), kind=kind, evidence=evidence)
        )
    return RcaResult(
        id=rca_result_id(incident.id, incident.revision),
        incident_id=incident.id,
        incident_revision=incident.revision,
        at=at,
        analyzed_at=at,
        status=RcaStatus.OK,
        onset=incident.started_at,
        services=incident.services,
        causes=causes,
        summary=f"{causes[0].service} ({causes[0].kind.value}), p={causes[0].probability:.2f}",
        elapsed_ms=float(rng.uniform(80, 400)),
    )
