"""Record ids are deterministic, and stay what earlier releases wrote (stores and labels refer to them)."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime

import pytest
from aiops_common.schemas import FeedbackLabel, FeedbackRecord, _ids, anomaly_id, prediction_id, record_id

pytestmark = pytest.mark.unit


def test_ids_are_pinned() -> None:
    assert anomaly_id('cpu{host="a"}', 1_700_000_000_000, 60_000) == "an-8e63c981926627777910bc9b"
    assert prediction_id('disk{host="a"}', 95.0, 1_700_000_000_000, 60_000) == "pr-3df3248ad2d70ff92a355765"
    label = FeedbackRecord(
        subject_id="an-1", label=FeedbackLabel.FALSE_POSITIVE, by="ops", at=datetime(2024, 1, 2, tzinfo=UTC)
    )
    assert label.id == "fb-ecf2651abb66f59f9647f3a6"


def test_parts_do_not_run_together() -> None:
    assert record_id("x", "ab", "c") != record_id("x", "a", "bc")
    assert record_id("x", "a").startswith("x-")


def test_docstring_example() -> None:
    assert doctest.testmod(_ids).failed == 0
