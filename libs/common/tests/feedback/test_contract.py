"""One contract for every reachable feedback store: SQLite always, osmem-server (the Elasticsearch API) when
installed (required under ``AIOPS_REQUIRE_INTEGRATION=1``), and a real Elasticsearch when ``AIOPS_TEST_ES_URL`` is
set. Two handles on one store stand for two pods sharing it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_common.feedback import FEEDBACK_BACKENDS, FeedbackStore, Sensitivity, StoredLabel, open_feedback_store
from aiops_common.feedback.sqlite import SqliteFeedbackStore
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, FeedbackLabel, FeedbackRecord, anomaly_id

AT = datetime(2026, 1, 1, tzinfo=UTC)

OpenPod = Callable[[], FeedbackStore]
"""A handle on the store under test (the ``open_pod`` fixture, conftest.py); each call is another pod's."""


@pytest.mark.unit
def test_every_scheme_is_covered() -> None:
    # A new backend joins the open_pod fixture's params.
    assert FEEDBACK_BACKENDS.schemes == ["elasticsearch", "elasticsearchs", "sqlite"]


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


@pytest.mark.functional
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


async def test_two_pods_keeping_one_label_at_once_keep_it_once(open_pod: OpenPod) -> None:
    pods = [open_pod(), open_pod()]
    fp = label(anomaly('cpu{host="a"}', 1), FeedbackLabel.FALSE_POSITIVE, 10)
    kept = await asyncio.gather(*(pod.add_label(FeedbackRecord.decode(fp.encode())) for pod in pods * 2))
    assert sorted(kept) == [False, False, False, True]
    for pod in pods:
        assert await pod.labels() == [fp]
        assert await pod.label(fp.id) == StoredLabel(fp)


async def test_a_label_and_its_anomaly_kept_at_once_by_two_pods_always_meet(open_pod: OpenPod) -> None:
    """What detection relies on: of a label (gateway -> one pod) and its anomaly (archived by another) kept at
    once, at least one side finds the other right after its own write, and then the series has the label."""
    labeller, archiver = open_pod(), open_pod()
    anomalies = [anomaly(f'cpu{{host="{n % 3}"}}', n) for n in range(9)]
    labels = [label(a, FeedbackLabel.FALSE_POSITIVE, 30 + n) for n, a in enumerate(anomalies)]

    async def label_side(feedback: FeedbackRecord) -> bool:
        await labeller.add_label(feedback)
        return await labeller.anomaly(feedback.subject_id) is not None

    async def archive_side(record: AnomalyRecord) -> bool:
        await archiver.record_anomaly(record)
        return bool(await archiver.labels(record.id))

    for a, fp in zip(anomalies, labels, strict=True):
        saw_anomaly, saw_label = await asyncio.gather(label_side(fp), archive_side(a))
        assert saw_anomaly or saw_label, a.id
    for pod in (labeller, archiver):
        for n in range(3):
            series = f'cpu{{host="{n}"}}'
            want = [(a.id, fp.id) for a, fp in zip(anomalies, labels, strict=True) if a.series_key == series]
            assert [(x.id, f.id) for x, f in await pod.series_labels(series)] == want


async def test_applications_by_two_pods_keep_the_first_and_lose_no_field(open_pod: OpenPod) -> None:
    first, second = open_pod(), open_pod()
    a = anomaly('cpu{host="a"}', 1)
    fps = [label(a, FeedbackLabel.FALSE_POSITIVE, 10 + n) for n in range(4)]
    for fp in fps:
        await first.add_label(fp)
    moved = Sensitivity(slack=0.5, false_positives=4)
    times = [AT + timedelta(minutes=m) for m in (20, 21, 22)]
    # Two pods apply the same labels while a third pod archives their anomaly (which names the labels' series).
    await asyncio.gather(
        first.record_applied(a.series_key, moved, [fp.id for fp in fps], times[0]),
        second.record_applied(a.series_key, moved, [fp.id for fp in reversed(fps)], times[1]),
        open_pod().record_anomaly(a),
    )
    for fp in fps:
        stored = await second.label(fp.id)
        assert stored is not None
        assert stored.applied_at in times[:2] and stored.series_key == a.series_key, stored
    assert [f.id for _, f in await second.series_labels(a.series_key)] == [fp.id for fp in fps]
    before = {fp.id: await first.label(fp.id) for fp in fps}
    await second.record_applied(a.series_key, moved, [fp.id for fp in fps] + ["fb-never-kept"], times[2])
    assert {fp.id: await first.label(fp.id) for fp in fps} == before
    assert await first.sensitivity(a.series_key) == moved


@pytest.mark.unit
async def test_the_elasticsearch_url_names_scheme_credentials_and_an_index_prefix_apart_from_documents() -> None:
    from aiops_common.feedback.elasticsearch import ElasticsearchFeedbackStore

    plain = open_feedback_store("elasticsearch://es:9201")
    assert isinstance(plain, ElasticsearchFeedbackStore)
    # Not the document store's default ("aiops-"), which has an anomalies index of its own on the same cluster.
    assert plain.index_prefix == "aiops-feedback-"
    tls = open_feedback_store("elasticsearchs://ops:s%40cret@es.example/prod-feedback")
    assert isinstance(tls, ElasticsearchFeedbackStore)
    assert tls.index_prefix == "prod-feedback-"
    (node,) = tls._client.transport.node_pool.all()
    assert (node.config.scheme, node.config.host, node.config.port) == ("https", "es.example", 9200)
    assert tls._client._headers["authorization"].startswith("Basic ")
    await plain.close()
    await tls.close()
    with pytest.raises(ValueError, match="feedback store URL names no host"):
        open_feedback_store("elasticsearch:///aiops-feedback")


async def test_a_pod_stopped_between_keeping_an_anomaly_and_naming_its_labels_series_loses_no_label(
    open_pod: OpenPod, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiops_common.feedback.elasticsearch import ElasticsearchFeedbackStore

    archiver = open_pod()
    if not isinstance(archiver, ElasticsearchFeedbackStore):
        pytest.skip("SQLite keeps an anomaly in one statement; Elasticsearch writes the anomaly, then its labels")
    a = anomaly('cpu{host="a"}', 1)
    fp = label(a, FeedbackLabel.FALSE_POSITIVE, 10)
    labeller = open_pod()
    await labeller.add_label(fp)

    async def stopped(label_ids: object, series_key: str) -> None:
        """The anomaly is written; the pod goes before the second write."""

    monkeypatch.setattr(archiver, "_name_series", stopped)
    await archiver.record_anomaly(a)
    # Another pod applying the series meanwhile (the label side saw the anomaly) finds the label all the same.
    assert [(x.id, f.id) for x, f in await labeller.series_labels(a.series_key)] == [(a.id, fp.id)]
    assert await labeller.series_labels('cpu{host="b"}') == []
    # The anomaly delivered again to a running pod finishes the write.
    await open_pod().record_anomaly(a)
    assert [(x.id, f.id) for x, f in await labeller.series_labels(a.series_key)] == [(a.id, fp.id)]


async def test_a_sqlite_store_copied_in_reads_back_the_same_and_a_second_copy_changes_nothing(
    open_pod: OpenPod, tmp_path: Path
) -> None:
    from aiops_common.feedback.copy import copy_feedback

    source = SqliteFeedbackStore(f"sqlite:///{tmp_path / 'old' / 'feedback.sqlite'}")
    anomalies = [anomaly(f'cpu{{host="{n % 2}"}}', n) for n in range(5)]
    for record in anomalies:
        await source.record_anomaly(record)
    fp, tp = label(anomalies[0], FeedbackLabel.FALSE_POSITIVE, 10), label(anomalies[2], FeedbackLabel.TRUE_POSITIVE, 11)
    pending = label(anomalies[1], FeedbackLabel.FALSE_POSITIVE, 12)
    orphan = FeedbackRecord(
        subject_id="inc-1", subject_kind="incident", label=FeedbackLabel.SAME_INCIDENT, by="ops", at=AT
    )
    for feedback in (fp, tp, pending, orphan):
        await source.add_label(feedback)
    moved = Sensitivity(slack=0.5, false_positives=1, true_positives=1)
    await source.record_applied(
        'cpu{host="0"}', Sensitivity(slack=1.0, false_positives=1), [fp.id], AT + timedelta(minutes=20)
    )
    await source.record_applied('cpu{host="0"}', moved, [fp.id, tp.id], AT + timedelta(minutes=21))
    await source.record_applied('mem{host="9"}', Sensitivity(min_score=0.9), [], AT)

    target = open_pod()
    for _ in range(2):
        copied = await copy_feedback(source, target)
        assert (copied.anomalies, copied.labels, copied.sensitivities) == (5, 4, 2)
    keys = ['cpu{host="0"}', 'cpu{host="1"}', 'mem{host="9"}']
    for store in (source, open_pod()):
        assert [await store.anomaly(a.id) for a in anomalies] == anomalies
        assert await store.labels() == [orphan, fp, tp, pending]
        assert await store.label(fp.id) == StoredLabel(fp, AT + timedelta(minutes=20), 'cpu{host="0"}')
        assert await store.label(tp.id) == StoredLabel(tp, AT + timedelta(minutes=21), 'cpu{host="0"}')
        assert await store.label(pending.id) == StoredLabel(pending)
        assert [(a.id, f.id) for a, f in await store.series_labels('cpu{host="0"}')] == [
            (anomalies[0].id, fp.id),
            (anomalies[2].id, tp.id),
        ]
        assert await store.sensitivities(keys) == {
            keys[0]: moved,
            keys[1]: Sensitivity(),
            keys[2]: Sensitivity(min_score=0.9),
        }
    await source.close()


@pytest.mark.functional
def test_the_copy_command_copies_a_file_and_names_a_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiops_common.feedback.copy import main

    old, new = f"sqlite:///{tmp_path / 'old.sqlite'}", f"sqlite:///{tmp_path / 'new.sqlite'}"
    a = anomaly('cpu{host="a"}', 1)
    fp = label(a, FeedbackLabel.FALSE_POSITIVE, 10)

    async def fill() -> None:
        source = SqliteFeedbackStore(old)
        await source.record_anomaly(a)
        await source.add_label(fp)
        await source.close()

    asyncio.run(fill())
    assert main([old, new]) == 0
    assert capsys.readouterr().out == "copied 1 anomalies, 1 labels, 0 sensitivities\n"

    async def read() -> tuple[AnomalyRecord | None, list[FeedbackRecord]]:
        target = SqliteFeedbackStore(new)
        try:
            return await target.anomaly(a.id), await target.labels()
        finally:
            await target.close()

    assert asyncio.run(read()) == (a, [fp])
    # A mistyped source is named, not made (opening it would create an empty store and copy nothing).
    with pytest.raises(SystemExit, match="no SQLite feedback store"):
        main([f"sqlite:///{tmp_path / 'nowhere.sqlite'}", new])
    assert not (tmp_path / "nowhere.sqlite").exists()
    with pytest.raises(SystemExit, match="must be a SQLite feedback store"):
        main(["elasticsearch://es:9200", new])
    assert main(["only-one"]) == 2
