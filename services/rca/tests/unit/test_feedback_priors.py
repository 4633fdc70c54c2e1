"""Cause feedback as priors: smoothed ratios per service and failure kind, each label counted once."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import pytest
from aiops_common.schemas import CauseKind, FeedbackLabel, FeedbackRecord, RankedCause, RcaResult, RcaStatus
from aiops_rca import feedback_priors
from aiops_rca.feedback_priors import CausePriors, is_cause_label, prior, priors_from_labels

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def label(incident: str, service: str, confirmed: bool, n: int = 0, **kw: str) -> FeedbackRecord:
    return FeedbackRecord(
        subject_id=incident,
        subject_kind=kw.get("subject_kind", "incident"),
        label=FeedbackLabel.CONFIRMED_CAUSE if confirmed else FeedbackLabel.WRONG_CAUSE,
        by="alice",
        at=T0 + timedelta(minutes=n),
        related_id=service,
    )


def result(incident: str, causes: dict[str, CauseKind]) -> RcaResult:
    return RcaResult(
        id=f"rca-{incident}",
        incident_id=incident,
        incident_revision=1,
        at=T0,
        analyzed_at=T0,
        status=RcaStatus.OK,
        causes=[RankedCause(service=s, probability=0.5, kind=k) for s, k in causes.items()],
    )


def test_doctests() -> None:
    assert doctest.testmod(feedback_priors).failed == 0


def test_ratio_is_smoothed_and_clipped() -> None:
    assert prior(0, 0) == 1.0
    assert prior(2, 0) == 3.0 and prior(0, 2) == pytest.approx(1 / 3)
    assert prior(100, 0) == 5.0 and prior(0, 100) == 0.2


def test_labels_count_per_service_and_per_kind_of_the_stored_cause() -> None:
    priors = CausePriors()
    priors.note_result(result("inc-1", {"payment": CauseKind.LATENCY, "db": CauseKind.SATURATION}))
    priors.note_result(result("inc-2", {"payment": CauseKind.ERRORS}))
    assert priors.add(label("inc-1", "payment", True))
    assert priors.add(label("inc-2", "payment", False, 1))
    assert priors.add(label("inc-1", "db", False, 2))
    assert priors.add(label("inc-3", "search", True, 3))  # no result known: counts for any kind only
    assert priors.priors() == {
        ("db", "*"): 0.5,
        ("db", "saturation"): 0.5,
        ("payment", "*"): 1.0,
        ("payment", "errors"): 0.5,
        ("payment", "latency"): 2.0,
        ("search", "*"): 2.0,
    }
    assert set(priors.priors(["payment"])) == {("payment", "*"), ("payment", "errors"), ("payment", "latency")}


def test_other_labels_and_repeats_are_not_counted() -> None:
    priors = CausePriors()
    first = label("inc-1", "payment", True)
    assert priors.add(first) and not priors.add(first)
    not_a_cause = FeedbackRecord(subject_id="a-1", label=FeedbackLabel.FALSE_POSITIVE, by="bob", at=T0)
    assert not is_cause_label(not_a_cause) and not priors.add(not_a_cause)
    assert not is_cause_label(label("a-1", "payment", True, subject_kind="anomaly"))
    assert not is_cause_label(label("inc-1", "", True))
    assert priors.priors() == {("payment", "*"): 2.0}


def test_priors_from_kept_labels_with_known_kinds() -> None:
    labels = [label("inc-1", "payment", True), label("inc-2", "payment", True, 1), label("inc-3", "db", False, 2)]
    found = priors_from_labels(labels, {("inc-1", "payment"): "latency"}, services=["payment"])
    assert found == {("payment", "*"): 3.0, ("payment", "latency"): 2.0}
