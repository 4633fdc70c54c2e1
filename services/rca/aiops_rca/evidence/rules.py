"""Rules for known failure modes: when one fires with certainty its service is put first (seed decision 3)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from aiops_common.schemas import CauseKind

from aiops_rca.evidence.change_points import ScoredSeries
from aiops_rca.evidence.deployments import LinkedChange
from aiops_rca.evidence.kinds import kind_of

__all__ = ["RuleFire", "crash_loop", "deployment", "saturation"]

SATURATED_FRACTION = 0.95
CRASH_RESTARTS = 3
_PERCENT = re.compile(r"percent|pct|%", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RuleFire:
    service: str
    rule: str
    kind: CauseKind
    text: str


def saturation(service: str, series: Sequence[ScoredSeries], threshold: float) -> RuleFire | None:
    """A resource series (cpu, memory, ...) that moved and reached saturation: 95 % of its capacity."""
    for s in series:
        if kind_of(s.key.metric) is not CauseKind.SATURATION or abs(s.score.score) < threshold:
            continue
        finite = s.window[np.isfinite(s.window)]
        if not finite.size:
            continue
        top = float(np.max(finite))
        if _PERCENT.search(s.key.metric):
            saturated = SATURATED_FRACTION * 100 <= top <= 100.0 + 1e-6
        else:
            saturated = SATURATED_FRACTION <= top <= 1.0 + 1e-6
        if saturated and s.score.baseline.median < top * 0.9:
            return RuleFire(
                service,
                "saturation",
                CauseKind.SATURATION,
                f"{s.key.metric} reached {top:.3g} (saturated; baseline {s.score.baseline.median:.3g})",
            )
    return None


def crash_loop(service: str, series: Sequence[ScoredSeries]) -> RuleFire | None:
    """A restart counter that climbed by three or more in the window."""
    for s in series:
        if kind_of(s.key.metric) is not CauseKind.CRASH:
            continue
        finite = s.window[np.isfinite(s.window)]
        if finite.size < 2:
            continue
        steps = np.diff(finite)
        restarts = float(np.sum(steps[steps > 0]))  # a counter reset (a negative step) is not a restart
        if restarts >= CRASH_RESTARTS:
            return RuleFire(
                service,
                "crash_loop",
                CauseKind.CRASH,
                f"{s.key.metric} rose by {restarts:.0f} in the window (crash loop)",
            )
    return None


def deployment(
    service: str, linked: Sequence[LinkedChange], moved: bool, dependency_moved_first: str | None, within_s: float
) -> RuleFire | None:
    """A change on the service shortly before it moved, while none of its dependencies moved before it."""
    if not moved or dependency_moved_first is not None:
        return None
    for change in linked:
        if change.before_onset_s <= within_s:
            return RuleFire(service, "deployment", CauseKind.DEPLOYMENT, change.text + ", then it moved")
    return None
