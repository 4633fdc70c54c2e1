"""One contract for every reachable feedback store (SQLite embedded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, FeedbackLabel, FeedbackRecord, anomaly_id
from aiops_detection.detectors.sensitivity import Sensitivity
from aiops_detection.feedback_store import FEEDBACK_STORES, FeedbackStore, open_feedback_store

pytestmark = pytest.mark.functional

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FeedbackStore]:
    opened = open_feedback_store(f"sqlite:///{tmp_path / 'feedback.sqlite'}")
    yield opened
    await opened.close()


def test_every_scheme_is_covered() -> None:
    assert FEEDBACK_STORES.schemes == ["sqlite"], "add the new backend to the store fixture's params"


def anomaly(series: str, minute: int) -> AnomalyRecord:
    start = AT + timedelta(minutes=minute)
    return AnomalyRecord(
        id=anomaly_id(series, int(start.timestamp() * 1000), 60_000),
        series_name=series.partition("{")[0],
        series_key=series,
        window_start=start,
        window_end=start + timedelta(minutes=1),
        value=3.0,
        score=0.8,
        lower=0.0,
        upper=1.0,
        severity=AnomalySeverity.MAJOR,
        detector="cascade",
        evidence={"basic": 0.8},
        detected_at=start,
    )


def label(subject: AnomalyRecord, kind: FeedbackLabel, minute: int) -> FeedbackRecord:
    return FeedbackRecord(subject_id=subject.id, label=kind, by="ops", at=AT + timedelta(minutes=minute), note="n")


async def test_anomalies_labels_and_sensitivity(store: FeedbackStore) -> None:
    assert isinstance(store, FeedbackStore)
    a, b, other = anomaly('cpu{host="a"}', 1), anomaly('cpu{host="a"}', 2), anomaly('cpu{host="b"}', 1)
    for record in (a, b, other, a):
        await store.record_anomaly(record)
    assert await store.anomaly(a.id) == a
    assert await store.anomaly("an-missing") is None

    fp = label(a, FeedbackLabel.FALSE_POSITIVE, 10)
    assert await store.add_label(fp)
    assert not await store.add_label(FeedbackRecord.decode(fp.encode()))  # delivered again: kept once
    await store.add_label(label(b, FeedbackLabel.TRUE_POSITIVE, 11))
    await store.add_label(label(other, FeedbackLabel.FALSE_POSITIVE, 12))
    await store.add_label(label(other, FeedbackLabel.TRUE_POSITIVE, 13))  # changed their mind
    orphan = FeedbackRecord(subject_id="an-unknown", label=FeedbackLabel.FALSE_POSITIVE, by="ops", at=AT)
    await store.add_label(orphan)

    assert [f.subject_id for f in await store.labels()] == ["an-unknown", a.id, b.id, other.id, other.id]
    assert await store.labels(a.id) == [fp]
    assert [(x.id, f.label) for x, f in await store.series_labels('cpu{host="a"}')] == [
        (a.id, FeedbackLabel.FALSE_POSITIVE),
        (b.id, FeedbackLabel.TRUE_POSITIVE),
    ]
    assert [x.id for x in await store.labelled_anomalies(FeedbackLabel.TRUE_POSITIVE)] == [b.id, other.id]
    assert [x.id for x in await store.labelled_anomalies(FeedbackLabel.FALSE_POSITIVE)] == [a.id]

    assert await store.sensitivity('cpu{host="a"}') == Sensitivity()
    moved = Sensitivity(slack=1.5, min_score=0.7, false_positives=2, true_positives=1)
    await store.set_sensitivity('cpu{host="a"}', moved)
    got = await store.sensitivities(['cpu{host="a"}', 'cpu{host="b"}'])
    assert got == {'cpu{host="a"}': moved, 'cpu{host="b"}': Sensitivity()}
