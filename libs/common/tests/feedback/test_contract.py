"""One contract for every reachable feedback store: SQLite always, osmem-server (the Elasticsearch API) when
installed (required under ``AIOPS_REQUIRE_INTEGRATION=1``), and a real Elasticsearch when ``AIOPS_TEST_ES_URL`` is
set. Two handles on one store stand for two pods sharing it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiops_common.feedback import FEEDBACK_BACKENDS, FeedbackStore, Sensitivity, StoredLabel, open_feedback_store
from aiops_common.feedback.sqlite import SqliteFeedbackStore
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, FeedbackLabel, FeedbackRecord, anomaly_id
from aiops_common.testing import OsmemServer
from aiops_common.testing.plain_json import PlainJsonNode

AT = datetime(2026, 1, 1, tzinfo=UTC)

OpenPod = Callable[[], FeedbackStore]
"""Another handle on the store under test: what a second pod of the platform opens."""


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.functional),
        pytest.param("osmem", marks=pytest.mark.integration),
        pytest.param("elasticsearch", marks=pytest.mark.integration),
    ]
)
async def open_pod(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    external_server: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[OpenPod]:
    opened: list[FeedbackStore] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'feedback.sqlite'}"

        def open_sqlite() -> FeedbackStore:
            opened.append(open_feedback_store(url))
            return opened[-1]

        yield open_sqlite
        for store in opened:
            await store.close()
        return

    from aiops_common.feedback import elasticsearch

    # Pages of a few hits: every search and multi-get of these small tests spans several requests.
    monkeypatch.setattr(elasticsearch, "_PAGE", 3)
    # A prefix of its own per test: a real Elasticsearch may be shared with other runs.
    prefix = f"t{uuid.uuid4().hex[:12]}-feedback"
    options: dict[str, Any] = {}
    if request.param == "osmem":
        server = external_server(OsmemServer)
        url = f"elasticsearch://127.0.0.1:{server.port}/{prefix}"
        options["node_class"] = PlainJsonNode
    else:
        es_url = os.environ.get("AIOPS_TEST_ES_URL")
        if not es_url:
            pytest.skip("AIOPS_TEST_ES_URL is not set (an Elasticsearch server to test against)")
        scheme = "elasticsearchs" if es_url.startswith("https://") else "elasticsearch"
        url = f"{scheme}://{es_url.partition('://')[2].rstrip('/')}/{prefix}"

    def open_es() -> FeedbackStore:
        opened.append(elasticsearch.ElasticsearchFeedbackStore(url, **options))
        return opened[-1]

    # No periodic refresh: a search sees only what the store itself refreshed, so a write some search depends
    # on that the store leaves unrefreshed fails here instead of now and then on a loaded cluster.
    client = await open_es()._client_ready()  # type: ignore[attr-defined]
    await client.indices.put_settings(index=f"{prefix}-*", settings={"index.refresh_interval": "-1"})
    yield open_es
    dropper = elasticsearch.ElasticsearchFeedbackStore(url, **options)
    await dropper.drop()
    for store in (*opened, dropper):
        await store.close()


@pytest.fixture
def store(open_pod: OpenPod) -> FeedbackStore:
    return open_pod()


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
