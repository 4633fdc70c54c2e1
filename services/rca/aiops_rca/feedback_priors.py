"""Operators' "confirmed cause" / "wrong cause" labels as prior multipliers per service and failure kind.

A label names an incident (``subject_id``) and a service (``related_id``). The kind of failure is the
kind the RCA result gave that service's cause for that incident, when one is known; the label then
counts for ``(service, kind)`` and, whatever the kind, for ``(service, "*")``. A multiplier is the
smoothed ratio ``(1 + confirmed) / (1 + wrong)`` clipped to ``[0.2, 5]``: one confirmation moves a
prior to 2x, one rejection to 0.5x, and no history of labels can rule a service in or out alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiops_common.schemas import FeedbackLabel, FeedbackRecord, RcaResult

__all__ = [
    "ANY_KIND",
    "CAUSE_LABELS",
    "MAX_PRIOR",
    "MIN_PRIOR",
    "CausePriors",
    "is_cause_label",
    "prior",
    "priors_from_labels",
]

ANY_KIND = "*"
MIN_PRIOR = 0.2
MAX_PRIOR = 5.0
CAUSE_LABELS = frozenset({FeedbackLabel.CONFIRMED_CAUSE, FeedbackLabel.WRONG_CAUSE})


def is_cause_label(feedback: FeedbackRecord) -> bool:
    """A label about a root cause: ``confirmed_cause`` / ``wrong_cause`` on an incident, naming a service."""
    return feedback.label in CAUSE_LABELS and feedback.subject_kind == "incident" and bool(feedback.related_id)


def prior(confirmed: int, wrong: int) -> float:
    """``(1 + confirmed) / (1 + wrong)`` clipped to ``[0.2, 5]``.

    >>> prior(0, 0), prior(1, 0), prior(0, 1), prior(20, 0), prior(3, 3)
    (1.0, 2.0, 0.5, 5.0, 1.0)
    """
    return min(MAX_PRIOR, max(MIN_PRIOR, (1 + confirmed) / (1 + wrong)))


@dataclass(slots=True)
class CausePriors:
    """Cause labels counted per ``(service, kind)``, and the cause kinds of recent results to file them under.

    Shared by the agents of one worker: the feedback agent adds labels, the root-cause agent notes the
    kinds of the results it publishes and reads :meth:`priors` into each case.

    >>> from datetime import UTC, datetime
    >>> priors = CausePriors()
    >>> priors.kinds[("inc-1", "payment")] = "latency"
    >>> label = FeedbackRecord(subject_id="inc-1", subject_kind="incident", label=FeedbackLabel.CONFIRMED_CAUSE,
    ...                        by="alice", at=datetime(2026, 3, 1, tzinfo=UTC), related_id="payment")
    >>> priors.add(label), priors.add(label)
    (True, False)
    >>> priors.priors()
    {('payment', '*'): 2.0, ('payment', 'latency'): 2.0}
    """

    confirmed: dict[tuple[str, str], int] = field(default_factory=dict)
    wrong: dict[tuple[str, str], int] = field(default_factory=dict)
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    """``(incident id, service)`` -> the kind of that service's cause in the newest result for the incident."""
    seen: set[str] = field(default_factory=set)
    max_kinds: int = 100_000

    def note_result(self, result: RcaResult) -> None:
        """Remember the kind of each cause of a result, for labels that come later."""
        for cause in result.causes:
            self.kinds[(result.incident_id, cause.service)] = cause.kind.value
        while len(self.kinds) > self.max_kinds:  # oldest first: dicts keep insertion order
            del self.kinds[next(iter(self.kinds))]

    def kind_of(self, feedback: FeedbackRecord) -> str | None:
        return self.kinds.get((feedback.subject_id, feedback.related_id))

    def add(self, feedback: FeedbackRecord, kind: str | None = None) -> bool:
        """Count a cause label once (by its id); False when it is not one or was counted already.

        ``kind``: the failure kind it is about; None looks it up among the noted results.
        """
        if not is_cause_label(feedback) or feedback.id in self.seen:
            return False
        self.seen.add(feedback.id)
        kind = kind or self.kind_of(feedback)
        counts = self.confirmed if feedback.label == FeedbackLabel.CONFIRMED_CAUSE else self.wrong
        service = feedback.related_id
        for key in {(service, ANY_KIND), *([(service, kind)] if kind and kind != ANY_KIND else [])}:
            counts[key] = counts.get(key, 0) + 1
        return True

    def priors(self, services: Iterable[str] | None = None) -> dict[tuple[str, str], float]:
        """Multipliers keyed ``(service, kind)`` and ``(service, "*")``, of these services or all, sorted."""
        wanted = None if services is None else set(services)
        keys = sorted(set(self.confirmed) | set(self.wrong))
        return {
            key: prior(self.confirmed.get(key, 0), self.wrong.get(key, 0))
            for key in keys
            if wanted is None or key[0] in wanted
        }


def priors_from_labels(
    labels: Iterable[FeedbackRecord],
    kinds: Mapping[tuple[str, str], str] | None = None,
    services: Iterable[str] | None = None,
) -> dict[tuple[str, str], float]:
    """The multipliers of a set of kept labels (other labels are ignored); ``kinds`` as :attr:`CausePriors.kinds`."""
    counter = CausePriors(kinds=dict(kinds or {}))
    for label in labels:
        counter.add(label)
    return counter.priors(services)
