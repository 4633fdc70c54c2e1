"""Alertmanager webhook payloads (version 4) become alert records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiops_common.schemas import AlertRecord, AlertStatus
from aiops_ingestion.normalize import InvalidPayloadError, Limits, alertmanager_fingerprint, parse_alertmanager_webhook

pytestmark = pytest.mark.unit

# The shape Alertmanager's webhook notifier sends (notify/webhook), nanosecond timestamps included.
WEBHOOK: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="HighLatency"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "aiops",
    "groupLabels": {"alertname": "HighLatency"},
    "commonLabels": {"alertname": "HighLatency", "severity": "page"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighLatency", "job": "checkout", "severity": "page"},
            "annotations": {"summary": "p99 above 1s"},
            "startsAt": "2023-11-14T22:10:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
            "fingerprint": "1a2b3c4d5e6f7a8b",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "DiskFull", "service": "db", "job": "node", "severity": "warning"},
            "annotations": {},
            "startsAt": "2023-11-14T20:00:00Z",
            "endsAt": "2023-11-14T21:00:00+01:00",
            "generatorURL": "",
        },
    ],
}


def parse(body: Any) -> list[AlertRecord]:
    return parse_alertmanager_webhook(json.dumps(body).encode(), Limits())


def test_alerts_map_onto_alert_records() -> None:
    firing, resolved = parse(WEBHOOK)
    assert firing == AlertRecord(
        fingerprint="1a2b3c4d5e6f7a8b",
        status=AlertStatus.FIRING,
        name="HighLatency",
        service="checkout",
        severity="page",
        labels={"alertname": "HighLatency", "job": "checkout", "severity": "page"},
        annotations={"summary": "p99 above 1s"},
        starts_at=datetime(2023, 11, 14, 22, 10, 0, 123456, tzinfo=UTC),
        ends_at=None,
        generator_url="http://prometheus:9090/graph?g0.expr=x",
        source="alertmanager",
        receiver="aiops",
    )
    assert resolved.status is AlertStatus.RESOLVED and resolved.service == "db" and resolved.name == "DiskFull"
    assert resolved.ends_at == datetime(2023, 11, 14, 20, 0, tzinfo=UTC)
    assert AlertRecord.decode(resolved.encode()) == resolved


def test_missing_fingerprint_is_the_one_alertmanager_computes() -> None:
    (_, resolved) = parse(WEBHOOK)
    assert resolved.fingerprint == alertmanager_fingerprint(resolved.labels)
    # Reference values from prometheus/common model tests (labelSetToFingerprint).
    assert alertmanager_fingerprint({}) == f"{14695981039346656037:016x}"
    assert alertmanager_fingerprint({"name": "garland, briggs", "fear": "love is not enough"}) == (
        f"{5799056148416392346:016x}"
    )


def test_fingerprint_does_not_depend_on_label_order() -> None:
    assert alertmanager_fingerprint({"a": "b", "c": "d"}) == alertmanager_fingerprint({"c": "d", "a": "b"})
    assert alertmanager_fingerprint({"a": "b"}) != alertmanager_fingerprint({"a": "c"})


def test_unknown_fields_added_by_newer_alertmanagers_are_ignored() -> None:
    body = {**WEBHOOK, "newField": 1, "alerts": [{**WEBHOOK["alerts"][0], "silencedBy": []}]}
    assert len(parse(body)) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "3"}, "version: Input should be '4'"),
        ({"status": "pending"}, "status: Input should be 'firing' or 'resolved'"),
        ({"alerts": [{"status": "firing", "labels": {}}]}, "alerts[0].startsAt: Field required"),
        (
            {"alerts": [{"status": "firing", "labels": {}, "startsAt": "2023-11-14T22:10:00"}]},
            "alerts[0].startsAt: Input should have timezone info",
        ),
        ({"alerts": "none"}, "alerts: Input should be a valid array"),
    ],
)
def test_malformed_webhooks_are_400(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        parse({**WEBHOOK, **change})
    assert caught.value.status_code == 400 and message in caught.value.message


def test_alert_with_invalid_label_names_is_refused() -> None:
    alert = {**WEBHOOK["alerts"][0], "labels": {"alertname": "X", "bad-label": "y"}}
    with pytest.raises(InvalidPayloadError, match="label name 'bad-label' is invalid"):
        parse({**WEBHOOK, "alerts": [alert]})
