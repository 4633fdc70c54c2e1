"""Operators' labels through the API against a real gateway: each label checked against the stores, published to
``feedback`` keyed by its subject and audited; splits and merges of incidents; and the labels the store keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_common.broker.addresses import bootstrap_servers
from aiops_common.documents import DocumentFilter
from aiops_common.schemas import (
    AnomalyRecord,
    AnomalySeverity,
    FeedbackLabel,
    FeedbackRecord,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    MemberKind,
    RankedCause,
    RcaResult,
    RcaStatus,
)
from aiops_common.testing.eventually import eventually
from aiops_common.topics import Topics
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway

pytestmark = pytest.mark.functional

ONSET = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _incident(
    incident_id: str, services: list[str], members: list[str], merged_into: str | None = None
) -> IncidentRecord:
    return IncidentRecord(
        id=incident_id,
        revision=1,
        title=f"{services[0]} errors",
        severity=IncidentSeverity.MAJOR,
        services=services,
        started_at=ONSET,
        updated_at=ONSET,
        members=[
            IncidentMember(
                fingerprint=fingerprint,
                kind=MemberKind.ALERT,
                name="HighErrorRate",
                service=services[0],
                started_at=ONSET,
                lead=n == 0,
                reason=JoinReason(rule="seed" if n == 0 else "same_service"),
                joined_at=ONSET,
            )
            for n, fingerprint in enumerate(members)
        ],
        merged_into=merged_into,
    )


def _anomaly(anomaly_id: str) -> AnomalyRecord:
    return AnomalyRecord(
        id=anomaly_id,
        series_name="red.error_rate",
        series_key='red.error_rate{service="payment"}',
        service="payment",
        window_start=ONSET,
        window_end=ONSET + timedelta(seconds=10),
        value=0.3,
        score=0.9,
        lower=0.0,
        upper=0.05,
        severity=AnomalySeverity.MAJOR,
        detector="error_rate",
        detected_at=ONSET + timedelta(seconds=10),
    )


async def _stores(running: RunningGateway) -> None:
    """Two open incidents, one merged away, an RCA of the first, an anomaly in each store that keeps them."""
    gw = running.gateway
    incidents = [
        _incident("inc-a", ["payment", "checkout"], ["fp-a1", "fp-a2"]),
        _incident("inc-b", ["checkout"], ["fp-b1"]),
        _incident("inc-gone", ["checkout"], [], merged_into="inc-b"),
    ]
    await gw.documents.upsert_many("incidents", [(i.id, i.document()) for i in incidents])
    rca = RcaResult(
        id="rca-a-1",
        incident_id="inc-a",
        incident_revision=1,
        at=ONSET,
        analyzed_at=ONSET,
        status=RcaStatus.OK,
        causes=[RankedCause(service="db", probability=0.6), RankedCause(service="payment", probability=0.4)],
    )
    await gw.documents.upsert("rca_results", rca.id, rca.document())
    await gw.documents.upsert("anomalies", "an-docs", _anomaly("an-docs").model_dump(mode="json"))
    await gw.feedback.record_anomaly(_anomaly("an-feedback"))


async def _published(running: RunningGateway, count: int) -> list[tuple[bytes | None, FeedbackRecord]]:
    """(key, record) of the first ``count`` labels on this test's ``feedback`` topic."""
    name = Topics.FEEDBACK.full_name(running.settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(running.gateway.publisher.broker_url), enable_auto_commit=False
    )
    await consumer.start()
    records: list[tuple[bytes | None, FeedbackRecord]] = []
    try:
        tps = [TopicPartition(name, p) for p in range(Topics.FEEDBACK.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)

        async def enough() -> bool:
            batch = await consumer.getmany(*tps, timeout_ms=200)
            for part in batch.values():
                records.extend((m.key, FeedbackRecord.decode(m.value)) for m in part if m.value is not None)
            return len(records) >= count

        await eventually(enough, timeout=30, what=f"{count} labels on {name}")
    finally:
        await consumer.stop()
    return records


async def _audited(running: RunningGateway) -> list[dict[str, Any]]:
    page = await running.gateway.documents.query("audit", DocumentFilter(), oldest_first=True, limit=500)
    return sorted((d.body for d in page.documents), key=lambda body: datetime.fromisoformat(body["at"]))


def _label(kind: str, subject: str, label: str, related: str = "", note: str = "") -> dict[str, str]:
    return {"subject_kind": kind, "subject_id": subject, "label": label, "related_id": related, "note": note}


async def test_labels_that_fit_the_stores_are_published_keyed_by_subject_and_audited(
    running_gateway: RunningGateway,
) -> None:
    await _stores(running_gateway)
    accepted = [
        _label("anomaly", "an-docs", "false_positive", note="deploy noise"),
        _label("anomaly", "an-feedback", "true_positive"),
        _label("incident", "inc-a", "not_in_incident", "fp-a2"),
        _label("incident", "inc-a", "same_incident", "inc-b"),
        _label("incident", "inc-a", "confirmed_cause", "checkout"),  # a service of the incident
        _label("incident", "inc-a", "wrong_cause", "db"),  # ranked by its analysis only
    ]
    answers = []
    async with await running_gateway.client(Role.OPERATOR) as operator:
        for body in accepted:
            answer = await operator.post("/api/v1/feedback", json=body)
            assert answer.status_code == 202, (body, answer.text)
            answers.append(answer.json())

    published = await _published(running_gateway, len(accepted))
    assert len(published) == len(accepted)
    for (key, record), body, answer in zip(published, accepted, answers, strict=True):
        assert key == body["subject_id"].encode()
        assert (record.subject_kind, record.subject_id, record.label.value, record.related_id, record.note) == (
            body["subject_kind"],
            body["subject_id"],
            body["label"],
            body["related_id"],
            body["note"],
        )
        assert record.by == "test-operator" and answer["by"] == "test-operator"
        assert answer["id"] == record.id and answer["label"] == body["label"]

    entries = await _audited(running_gateway)
    assert [(e["action"], e["subject_id"], e["details"]["feedback_id"]) for e in entries] == [
        (f"feedback.{body['label']}", body["subject_id"], answer["id"])
        for body, answer in zip(accepted, answers, strict=True)
    ]
    assert entries[0]["services"] == ["payment"] and entries[0]["message"] == "deploy noise"
    assert entries[3]["services"] == ["checkout", "payment"]


async def test_labels_that_do_not_fit_are_refused_and_nothing_is_sent(running_gateway: RunningGateway) -> None:
    await _stores(running_gateway)
    refused = [
        (_label("anomaly", "an-unknown", "false_positive"), 404, "no anomaly"),
        (_label("incident", "an-docs", "false_positive"), 400, "subject_kind must be anomaly"),
        (_label("anomaly", "inc-a", "confirmed_cause", "payment"), 400, "subject_kind must be incident"),
        (_label("incident", "inc-nope", "wrong_cause", "payment"), 404, "no incident"),
        (_label("incident", "inc-a", "not_in_incident", "fp-b1"), 404, "no member"),
        (_label("incident", "inc-a", "not_in_incident"), 400, "needs related_id"),
        (_label("incident", "inc-a", "same_incident", "inc-a"), 400, "itself"),
        (_label("incident", "inc-a", "same_incident", "inc-nope"), 404, "no incident"),
        (_label("incident", "inc-a", "same_incident", "inc-gone"), 409, "merged into inc-b"),
        (_label("incident", "inc-a", "confirmed_cause", "search"), 400, "not a service of incident"),
        (_label("incident", "inc-a", "confirmed_cause", ""), 400, "needs related_id"),
        ({**_label("incident", "inc-a", "confirmed_cause", "db"), "label": "maybe"}, 422, "label"),
        ({**_label("incident", "inc-a", "confirmed_cause", "db"), "note": "n" * 2001}, 422, "note"),
    ]
    async with await running_gateway.client(Role.OPERATOR) as operator:
        for body, status, needle in refused:
            answer = await operator.post("/api/v1/feedback", json=body)
            assert answer.status_code == status and needle in answer.json()["error"], (body, answer.text)
        # A label that fits, after them: it must be the topic's only record.
        fits = await operator.post("/api/v1/feedback", json=_label("anomaly", "an-docs", "true_positive"))
        assert fits.status_code == 202, fits.text
    async with await running_gateway.client(Role.VIEWER) as viewer:
        assert (
            await viewer.post("/api/v1/feedback", json=_label("anomaly", "an-docs", "true_positive"))
        ).status_code == 403
    published = await _published(running_gateway, 1)
    assert [(r.subject_id, r.label) for _, r in published] == [("an-docs", FeedbackLabel.TRUE_POSITIVE)]
    assert [e["action"] for e in await _audited(running_gateway)] == ["feedback.true_positive"]


async def test_split_and_merge_are_labels_on_the_incident(running_gateway: RunningGateway) -> None:
    await _stores(running_gateway)
    async with await running_gateway.client(Role.OPERATOR) as operator:
        split = await operator.post("/api/v1/incidents/inc-a/split", json={"fingerprint": "fp-a2", "note": "unrelated"})
        assert split.status_code == 202, split.text
        merge = await operator.post("/api/v1/incidents/inc-a/merge", json={"other_id": "inc-b", "note": "same outage"})
        assert merge.status_code == 202, merge.text
        for path, body, status in (
            ("/api/v1/incidents/inc-a/split", {"fingerprint": "fp-b1"}, 404),
            ("/api/v1/incidents/inc-nope/split", {"fingerprint": "fp-a1"}, 404),
            ("/api/v1/incidents/inc-a/split", {"fingerprint": ""}, 422),
            ("/api/v1/incidents/inc-a/merge", {"other_id": "inc-a"}, 400),
            ("/api/v1/incidents/inc-a/merge", {"other_id": "inc-nope"}, 404),
            ("/api/v1/incidents/inc-nope/merge", {"other_id": "inc-a"}, 404),
        ):
            answer = await operator.post(path, json=body)
            assert answer.status_code == status and answer.json()["error"], (path, body, answer.text)

    published = await _published(running_gateway, 2)
    assert [(key, r.subject_kind, r.subject_id, r.label, r.related_id, r.note, r.by) for key, r in published] == [
        (b"inc-a", "incident", "inc-a", FeedbackLabel.NOT_IN_INCIDENT, "fp-a2", "unrelated", "test-operator"),
        (b"inc-a", "incident", "inc-a", FeedbackLabel.SAME_INCIDENT, "inc-b", "same outage", "test-operator"),
    ]
    assert [r.id for _, r in published] == [split.json()["id"], merge.json()["id"]]
    actions = [(e["action"], e["subject_id"]) for e in await _audited(running_gateway)]
    assert actions == [("feedback.not_in_incident", "inc-a"), ("feedback.same_incident", "inc-a")]


async def test_the_labels_the_feedback_store_keeps_are_listed_newest_last(running_gateway: RunningGateway) -> None:
    store = running_gateway.gateway.feedback
    for n, (subject, label) in enumerate(
        [("an-1", "false_positive"), ("an-2", "true_positive"), ("an-1", "true_positive"), ("an-1", "false_positive")]
    ):
        record = FeedbackRecord(
            subject_id=subject, label=FeedbackLabel(label), by="ana", at=ONSET + timedelta(minutes=n), note=f"n{n}"
        )
        assert await store.add_label(record)
    async with await running_gateway.client(Role.VIEWER) as viewer:
        everything = await viewer.get("/api/v1/feedback")
        assert everything.status_code == 200, everything.text
        assert [entry["note"] for entry in everything.json()["labels"]] == ["n0", "n1", "n2", "n3"]
        one = (await viewer.get("/api/v1/feedback", params={"subject_id": "an-1"})).json()["labels"]
        assert [(e["subject_id"], e["label"], e["note"]) for e in one] == [
            ("an-1", "false_positive", "n0"),
            ("an-1", "true_positive", "n2"),
            ("an-1", "false_positive", "n3"),
        ]
        newest = (await viewer.get("/api/v1/feedback", params={"subject_id": "an-1", "limit": 2})).json()["labels"]
        assert [e["note"] for e in newest] == ["n2", "n3"]
        assert (await viewer.get("/api/v1/feedback", params={"subject_id": "an-9"})).json()["labels"] == []
        assert (await viewer.get("/api/v1/feedback", params={"limit": 0})).status_code == 422
