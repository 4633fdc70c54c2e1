"""Root-cause analyses of incidents, each cause with the evidence behind it: the value type of ``rca.results``."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from aiops_common.schemas._ids import record_id
from aiops_common.schemas._model import VersionedRecord

__all__ = [
    "CauseKind",
    "Evidence",
    "EvidenceKind",
    "MetricFinding",
    "RankedCause",
    "RcaResult",
    "RcaStatus",
    "rca_result_id",
]


def rca_result_id(incident_id: str, incident_revision: int) -> str:
    """Deterministic id of the analysis of one incident revision: analysed again, it is the same result.

    >>> rca_result_id("inc-1", 3) == rca_result_id("inc-1", 3) != rca_result_id("inc-1", 4)
    True
    """
    return record_id("rca", incident_id, str(incident_revision))


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EvidenceKind(enum.StrEnum):
    SERIES = "series"
    """A series of the service moved at onset: ``series``, ``onset``, ``magnitude`` (robust z), ``value``."""
    GRANGER = "granger"
    """A Granger test along a dependency edge: ``cause``, ``effect``, ``series``, ``lag``, ``p_value``, ``q_value``."""
    CO_MOVEMENT = "co_movement"
    """Its series rose and fell with the symptom's in the window: ``series``, ``effect``, ``magnitude`` (Pearson r)."""
    TOPOLOGY = "topology"
    """Its position: the affected services it reaches through calls, or none of its callees moved."""
    ONSET = "onset"
    """Onset order, against it: a caller (``cause``) moved clearly before it did (``effect``)."""
    CHANGE = "change"
    """A deployment or config change on it before onset: ``change_id``, ``version``, ``before_onset_s``."""
    SPAN = "span"
    """Traces whose first failing span is in it: ``count``, ``trace_id``, ``span``."""
    SIGNAL = "signal"
    """An alert or anomaly of the incident on it: ``series`` (its name), ``onset``."""
    RULE = "rule"
    """A rule for a known failure mode fired: ``rule``."""
    FEEDBACK = "feedback"
    """Operators confirmed (or rejected) it as the cause of earlier incidents: ``count``."""


class CauseKind(enum.StrEnum):
    """What kind of failure the evidence points to; operator feedback moves priors per service and kind."""

    LATENCY = "latency"
    ERRORS = "errors"
    TRAFFIC = "traffic"
    SATURATION = "saturation"
    CRASH = "crash"
    DEPLOYMENT = "deployment"
    UNKNOWN = "unknown"


class Evidence(_Part):
    """One piece of evidence for or against a cause, with the figures an operator can check."""

    kind: EvidenceKind
    text: str
    """One line for people, e.g. ``red.latency_s p95 rose to 1.8 s (robust z 14.2) at 10:41:20``."""
    weight: float = 0.0
    """Its log likelihood ratio in the ranking (natural log): positive favours this cause, negative counts against."""
    series: str = ""
    onset: datetime | None = None
    magnitude: float | None = None
    baseline: float | None = None
    value: float | None = None
    cause: str = ""
    effect: str = ""
    lag: int | None = None
    p_value: float | None = None
    q_value: float | None = None
    change_id: str = ""
    version: str = ""
    before_onset_s: float | None = None
    rule: str = ""
    count: int | None = None
    trace_id: str = ""
    span: str = ""


class MetricFinding(_Part):
    """One series of a cause, ranked within it: how far it moved from its baseline and when."""

    series: str
    score: float
    """Robust z: (value - baseline median) / baseline spread, the largest after onset, in absolute value."""
    onset: datetime | None = None
    baseline: float | None = None
    value: float | None = None


class RankedCause(_Part):
    service: str
    probability: float = Field(ge=0.0, le=1.0)
    """P(cause | evidence) among the services considered."""
    kind: CauseKind = CauseKind.UNKNOWN
    rule: str = ""
    """The rule for a known failure mode that put it first (empty when the ranking did)."""
    metrics: list[MetricFinding] = Field(default_factory=list)
    """Its series, the most anomalous first."""
    evidence: list[Evidence] = Field(default_factory=list)
    """Strongest first."""


class RcaStatus(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    """A source was unreachable or empty (``missing`` says which); the ranking used the rest."""
    NO_ANOMALY = "no_anomaly"
    """Nothing in the window moved beyond its baseline: no cause is ranked."""


class RcaResult(VersionedRecord):
    """The ranked root causes of one incident revision; published once per analysed revision."""

    schema_name = "rca.result"

    id: str
    """``rca_result_id(incident_id, incident_revision)``."""
    incident_id: str
    incident_revision: int = Field(ge=1)
    at: datetime
    """Event time of the incident revision analysed (its ``updated_at``)."""
    analyzed_at: datetime
    """Wall-clock time of the analysis."""
    status: RcaStatus
    missing: list[str] = Field(default_factory=list)
    """Sources the analysis could not use and why, e.g. ``tsdb: connection refused``."""
    onset: datetime | None = None
    """Onset found from the series (Bayesian change point), or the incident's when the series give none."""
    services: list[str] = Field(default_factory=list)
    """Every service considered: the incident's and those within the hops of its subgraph."""
    causes: list[RankedCause] = Field(default_factory=list)
    """Best first."""
    summary: str = ""
    elapsed_ms: float = 0.0

    @property
    def top(self) -> RankedCause | None:
        return self.causes[0] if self.causes else None

    def document(self) -> dict[str, object]:
        """The body kept in the document store's ``rca_results`` collection."""
        return self.model_dump(mode="json")
