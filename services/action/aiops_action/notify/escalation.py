"""Escalation: an incident unacknowledged after each step's delay goes to that step's channels (the last: a page)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiops_action.notify.config import EscalationStep

__all__ = ["EscalationChecker", "EscalationDue", "due_steps"]


def due_steps(steps: Sequence[EscalationStep], elapsed_s: float, sent: int) -> list[int]:
    """Indexes of the steps (sorted by ``after_s``) due after ``elapsed_s`` unacknowledged seconds, of which the
    first ``sent`` already went out.

    >>> steps = [EscalationStep(after_s=60, channels=["b"]), EscalationStep(after_s=300, channels=["page"])]
    >>> due_steps(steps, 30, 0), due_steps(steps, 60, 0), due_steps(steps, 400, 1), due_steps(steps, 400, 2)
    ([], [0], [1], [])
    """
    ordered = sorted(steps, key=lambda s: s.after_s)
    return [i for i in range(sent, len(ordered)) if ordered[i].after_s <= elapsed_s]


@dataclass(frozen=True)
class EscalationDue:
    incident_id: str
    step: int
    """0 for the first step."""
    channels: tuple[str, ...]
    unacknowledged_s: float
    final: bool
    """The policy's last step (the page)."""


@dataclass
class _Tracked:
    opened_at: float
    sent: int = 0


class EscalationChecker:
    """Tracks open incidents against the policy; :meth:`check` (called on a timer) says which steps are due.

    ``clock`` is injected (monotonic seconds), so tests move time by hand.
    """

    def __init__(self, steps: Sequence[EscalationStep], clock: Callable[[], float] = time.monotonic) -> None:
        self.steps = sorted(steps, key=lambda s: s.after_s)
        self.clock = clock
        self._open: dict[str, _Tracked] = {}

    def track(self, incident_id: str) -> None:
        """Start the clock for an incident (again tracking one already tracked changes nothing)."""
        if self.steps and incident_id not in self._open:
            self._open[incident_id] = _Tracked(opened_at=self.clock())

    def acknowledge(self, incident_id: str) -> bool:
        """Stop escalating it; True when it was being tracked."""
        return self._open.pop(incident_id, None) is not None

    @property
    def tracked(self) -> list[str]:
        return sorted(self._open)

    def check(self) -> list[EscalationDue]:
        now = self.clock()
        out: list[EscalationDue] = []
        for incident_id, tracked in sorted(self._open.items()):
            elapsed = now - tracked.opened_at
            for i in due_steps(self.steps, elapsed, tracked.sent):
                out.append(
                    EscalationDue(
                        incident_id=incident_id,
                        step=i,
                        channels=tuple(self.steps[i].channels),
                        unacknowledged_s=elapsed,
                        final=i == len(self.steps) - 1,
                    )
                )
                tracked.sent = i + 1
        return out
