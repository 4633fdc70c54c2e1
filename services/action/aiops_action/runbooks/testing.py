"""Incidents and root-cause analyses for tests of runbook matching and resolution (and of what calls them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from aiops_common.schemas import (
    CauseKind,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    LinkedChange,
    MemberKind,
    MetricFinding,
    RankedCause,
    RcaResult,
    RcaStatus,
    rca_result_id,
)

__all__ = ["AT", "cause", "incident", "rca"]

AT = datetime(2026, 1, 5, 10, 40, tzinfo=UTC)


def cause(
    service: str,
    kind: CauseKind,
    *,
    rule: str = "",
    probability: float = 0.8,
    series: Sequence[str] = (),
) -> RankedCause:
    """A ranked cause whose most anomalous series are ``series``."""
    metrics = [MetricFinding(series=s, score=10.0 - i, onset=AT) for i, s in enumerate(series)]
    return RankedCause(service=service, probability=probability, kind=kind, rule=rule, metrics=metrics)


def incident(
    service: str,
    *,
    severity: IncidentSeverity = IncidentSeverity.MAJOR,
    labels: Mapping[str, str] | None = None,
    signal: str = "red.error_rate",
    version: str = "",
    incident_id: str = "inc-0001",
) -> IncidentRecord:
    """An open incident whose lead member is ``signal`` on ``service`` with ``labels``; ``version``: a deployment
    of the service 5 minutes before onset."""
    member = IncidentMember(
        fingerprint="fp-1",
        kind=MemberKind.ANOMALY,
        name=signal,
        service=service,
        severity=severity,
        labels={"service": service, **(labels or {})},
        started_at=AT,
        lead=True,
        reason=JoinReason(rule="seed"),
        joined_at=AT,
    )
    changes = []
    if version:
        at = AT - timedelta(minutes=5)
        changes.append(LinkedChange(id="chg-1", service=service, version=version, at=at, before_onset_s=300.0))
    return IncidentRecord(
        id=incident_id,
        revision=1,
        title=f"{signal} on {service}",
        severity=severity,
        services=[service],
        started_at=AT,
        updated_at=AT,
        members=[member],
        changes=changes,
    )


def rca(record: IncidentRecord, causes: Sequence[RankedCause]) -> RcaResult:
    """The analysis of ``record`` with ``causes`` ranked in the given order."""
    return RcaResult(
        id=rca_result_id(record.id, record.revision),
        incident_id=record.id,
        incident_revision=record.revision,
        at=record.updated_at,
        analyzed_at=record.updated_at,
        status=RcaStatus.OK,
        services=[c.service for c in causes],
        causes=list(causes),
    )
