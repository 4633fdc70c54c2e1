"""Deployment events become change events with deterministic ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiops_common.schemas import ChangeEvent
from aiops_ingestion.normalize import InvalidPayloadError, Limits, parse_deployment_event

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000


def event(body: dict[str, Any]) -> ChangeEvent:
    return parse_deployment_event(json.dumps(body).encode(), Limits(), now_ms=NOW_MS)


def test_event_fields_map_onto_the_change_event() -> None:
    got = event(
        {
            "service": "checkout",
            "version": "1.4.2",
            "previous_version": "1.4.1",
            "environment": "prod",
            "author": "ann",
            "description": "faster payments",
            "timestamp": "2023-11-14T22:00:00Z",
            "labels": {"pipeline": "p-9"},
        }
    )
    assert got.service == "checkout" and got.version == "1.4.2" and got.previous_version == "1.4.1"
    assert (got.environment, got.author, got.description, got.kind) == ("prod", "ann", "faster payments", "deployment")
    assert got.at == datetime(2023, 11, 14, 22, 0, tzinfo=UTC)
    assert got.labels == {"pipeline": "p-9"}
    assert ChangeEvent.decode(got.encode()) == got


def test_id_is_derived_from_service_version_and_time_when_not_given() -> None:
    body = {"service": "checkout", "version": "1.4.2", "at": 1_699_999_000}
    first, again = event(body), event(body)
    assert first.id == again.id and first.id.startswith("deploy-")
    assert event({**body, "version": "1.4.3"}).id != first.id
    assert event({**body, "at": 1_699_999_001}).id != first.id
    assert event({**body, "service": "cart"}).id != first.id


def test_sender_id_is_kept() -> None:
    assert event({"service": "checkout", "id": "argo-123"}).id == "argo-123"


def test_missing_time_is_the_receive_time() -> None:
    assert event({"service": "checkout"}).at == datetime.fromtimestamp(NOW_MS / 1000, UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"version": "1"}, "service: Field required"),
        ({"service": "a", "timestamp": "soon"}, "timestamp: Value error"),
        ({"service": "a", "timestamp": 1}, "timestamp: Value error, timestamp 1 (1970-01-01T00:00:01Z) is before 1971"),
        (
            {"service": "a", "timestamp": "2020-01-01T00:00:00Z"},
            f"(AIOPS_INGEST_MAX_SAMPLE_AGE_S={Limits().max_sample_age_s:.15g}; 0 turns",
        ),
        ({"service": "a", "labels": {"bad name": "x"}}, "label name 'bad name' is invalid"),
        ({"service": "a", "servce": "typo"}, "servce: Extra inputs are not permitted"),
    ],
)
def test_invalid_events_are_400(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        event(body)
    assert caught.value.status_code == 400 and message in caught.value.message
