"""Changes (deployments, config) on a service shortly before the incident's onset."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiops_rca.case import CaseChange

__all__ = ["LinkedChange", "changes_before"]

AFTER_ONSET_S = 60.0
"""A change logged up to this long after the onset still counts: deploy events and metrics have clock skew."""


@dataclass(frozen=True, slots=True)
class LinkedChange:
    change: CaseChange
    before_onset_s: float
    """Seconds from the change to the onset (negative: logged after it)."""

    @property
    def text(self) -> str:
        what = "deployed" if self.change.kind == "deployment" else f"{self.change.kind} changed"
        version = f" {self.change.version}" if self.change.version else ""
        minutes = self.before_onset_s / 60
        when = f"{minutes:.0f} min before onset" if minutes >= 1 else f"{self.before_onset_s:.0f} s before onset"
        if self.before_onset_s < 0:
            when = f"{-self.before_onset_s:.0f} s after onset"
        return f"{self.change.service}{version} {what} {when}"


def changes_before(changes: Iterable[CaseChange], service: str, onset_ms: int, window_s: float) -> list[LinkedChange]:
    """Changes on ``service`` from ``window_s`` before ``onset_ms`` to a minute after, the latest first."""
    linked = []
    for change in changes:
        if change.service != service:
            continue
        before_s = (onset_ms - change.ts_ms) / 1000
        if -AFTER_ONSET_S <= before_s <= window_s:
            linked.append(LinkedChange(change, before_s))
    return sorted(linked, key=lambda c: c.before_onset_s)
