"""Which runbooks fit an incident's ranked causes: the best cause first, the most specific runbook first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from aiops_common.schemas import IncidentRecord, RankedCause, RcaResult

from aiops_action.runbooks.model import Runbook
from aiops_action.runbooks.parameters import ResolutionContext

__all__ = ["RunbookMatch", "match_cause", "match_runbooks", "specificity"]

_GLOB = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class RunbookMatch:
    """A runbook that fits one ranked cause: ``rank`` is the cause's place in the RCA (0: the top cause)."""

    rank: int
    cause: RankedCause
    runbook: Runbook
    specificity: tuple[int, ...]

    def context(self, incident: IncidentRecord) -> ResolutionContext:
        """What its parameters resolve from (``resolve(match.runbook, match.context(incident), overrides)``)."""
        return ResolutionContext(self.cause, incident)


def specificity(runbook: Runbook) -> tuple[int, ...]:
    """Higher is more specific: named series, then named rules, then an exact service (2) over a glob (1) over
    any (0), then the number of labels, then the severity floor, then fewer cause kinds."""
    m = runbook.match
    if not m.services:
        service = 0
    elif any(_GLOB & set(s) for s in m.services):
        service = 1
    else:
        service = 2
    return (1 if m.series else 0, 1 if m.rules else 0, service, len(m.labels), m.min_severity.rank, -len(m.cause_kinds))


def match_cause(runbook: Runbook, cause: RankedCause, incident: IncidentRecord) -> bool:
    """Every condition of the runbook's ``match`` holds for this cause of this incident."""
    m = runbook.match
    if cause.kind not in m.cause_kinds:
        return False
    if m.services and not any(fnmatchcase(cause.service, pattern) for pattern in m.services):
        return False
    if m.rules and cause.rule not in m.rules:
        return False
    if m.series:
        seen = _series(cause, incident)
        if not any(fnmatchcase(name, pattern) for name in seen for pattern in m.series):
            return False
    if incident.severity.rank < m.min_severity.rank:
        return False
    if m.labels:
        wanted = m.labels.items()
        members = ResolutionContext(cause, incident).member_labels()
        return any(all(labels.get(k) == v for k, v in wanted) for labels in members)
    return True


def _series(cause: RankedCause, incident: IncidentRecord) -> set[str]:
    names = {f.series for f in cause.metrics} | {e.series for e in cause.evidence if e.series}
    return names | {m.name for m in incident.members if m.service == cause.service}


def match_runbooks(
    runbooks: Iterable[Runbook], rca: RcaResult, incident: IncidentRecord, *, top: int = 3
) -> list[RunbookMatch]:
    """For each of the ``top`` causes (best first), the runbooks that match it, most specific first (then by id):
    the first element, if any, is the runbook to propose."""
    candidates = list(runbooks)
    found: list[RunbookMatch] = []
    for rank, cause in enumerate(rca.causes[:top]):
        fitting = [r for r in candidates if match_cause(r, cause, incident)]
        fitting.sort(key=lambda r: (tuple(-x for x in specificity(r)), r.id))
        found += [RunbookMatch(rank, cause, r, specificity(r)) for r in fitting]
    return found
