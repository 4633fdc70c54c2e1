"""One contract for every feedback store backend (SQLite embedded; a new backend joins the fixture's params)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_common.feedback import FEEDBACK_BACKENDS, FeedbackStore, Sensitivity, StoredLabel, open_feedback_store
from aiops_common.feedback.sqlite import SqliteFeedbackStore
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, FeedbackLabel, FeedbackRecord, anomaly_id

pytestmark = pytest.mark.functional

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FeedbackStore]:
    opened = open_feedback_store(f"sqlite:///{tmp_path / 'feedback.sqlite'}")
    yield opened
    await opened.close()


def test_every_scheme_is_covered() -> None:
    assert FEEDBACK_BACKENDS.schemes == ["sqlite"], "add the new backend to the store fixture's params"


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
    await store.record_applied('cpu{host="a"}', moved, [], AT)
    got = await store.sensitivities(['cpu{host="a"}', 'cpu{host="b"}'])
    assert got == {'cpu{host="a"}': moved, 'cpu{host="b"}': Sensitivity()}
    assert await store.sensitivities([]) == {}


async def test_a_label_is_pending_until_applied_and_keeps_its_first_application(store: FeedbackStore) -> None:
    a = anomaly('cpu{host="a"}', 1)
    fp = label(a, FeedbackLabel.FALSE_POSITIVE, 10)
    assert await store.label(fp.id) is None
    await store.add_label(fp)
    assert await store.label(fp.id) == StoredLabel(fp)  # kept, not applied: its anomaly is not known yet

    await store.record_anomaly(a)
    first = Sensitivity(slack=0.5, false_positives=1)
    await store.record_applied(a.series_key, first, [fp.id], AT + timedelta(minutes=20))
    assert await store.label(fp.id) == StoredLabel(fp, AT + timedelta(minutes=20), a.series_key)
    assert await store.sensitivity(a.series_key) == first

    # Applied again (a re-delivery, or a later label on the series): the sensitivity follows, the record stays.
    again = Sensitivity(slack=0.25, false_positives=1, true_positives=1)
    await store.record_applied(a.series_key, again, [fp.id], AT + timedelta(minutes=30))
    assert (await store.label(fp.id)) == StoredLabel(fp, AT + timedelta(minutes=20), a.series_key)
    assert await store.sensitivity(a.series_key) == again


async def test_sensitivities_of_many_series_at_once(store: FeedbackStore) -> None:
    keys = [f'cpu{{host="{i}"}}' for i in range(1_200)]
    await store.record_applied(keys[-1], Sensitivity(slack=2.0), [], AT)
    got = await store.sensitivities(keys)
    assert len(got) == len(keys)
    assert got[keys[-1]] == Sensitivity(slack=2.0)
    assert got[keys[0]] == Sensitivity()


async def test_sqlite_file_from_before_application_tracking_opens_with_labels_pending(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE labels (id TEXT PRIMARY KEY, subject_id TEXT NOT NULL, at TEXT NOT NULL, record TEXT)")
        fp = label(anomaly('cpu{host="a"}', 1), FeedbackLabel.FALSE_POSITIVE, 10)
        row = (fp.id, fp.subject_id, fp.at.isoformat(), fp.model_dump_json())
        db.execute("INSERT INTO labels VALUES (?, ?, ?, ?)", row)
    store = SqliteFeedbackStore(f"sqlite:///{path}")
    try:
        assert await store.label(fp.id) == StoredLabel(fp)
    finally:
        await store.close()
