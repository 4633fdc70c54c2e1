"""Anomalies and predictions through the API: filtered, paged, one by id (the feedback store's when not indexed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, PredictionRecord
from aiops_common.testing.records import crossing_prediction, service_anomaly
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway

pytestmark = pytest.mark.functional


def _document(record: AnomalyRecord | PredictionRecord) -> tuple[str, dict[str, Any]]:
    body = record.model_dump(mode="json")
    if record.service:
        body["services"] = [record.service]
    return record.id, body


def _prediction(service: str, made_at: datetime) -> PredictionRecord:
    return crossing_prediction("disk_used_percent", {"service": service}, made_at)


async def test_anomalies_filtered_and_paged(running_gateway: RunningGateway) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    records = [
        service_anomaly("cpu", "api", now - timedelta(minutes=10)),
        service_anomaly("latency", "api", now - timedelta(hours=2)),
        service_anomaly("cpu", "db", now - timedelta(days=2)),
    ]
    minor = records[1].model_copy(update={"severity": AnomalySeverity.MINOR})
    records[1] = minor
    documents = running_gateway.gateway.documents
    await documents.upsert_many("anomalies", [_document(r) for r in records])
    # Only in the feedback store (archived before anomalies were indexed): found by id all the same.
    archived = service_anomaly("mem", "cache", now - timedelta(days=30))
    await running_gateway.gateway.feedback.record_anomaly(archived)

    async with await running_gateway.client(Role.VIEWER) as viewer:

        async def ids(**params: Any) -> list[str]:
            answer = await viewer.get("/api/v1/anomalies", params=params)
            assert answer.status_code == 200, answer.text
            return [a["id"] for a in answer.json()["anomalies"]]

        assert await ids() == [r.id for r in records]
        assert await ids(service="api") == [records[0].id, records[1].id]
        assert await ids(severity="minor") == [records[1].id]
        assert await ids(series_key=records[2].series_key) == [records[2].id]
        assert await ids(since="1h") == [records[0].id]
        assert await ids(since="3d", until="1h") == [records[1].id, records[2].id]
        assert await ids(until=(now - timedelta(days=1)).isoformat()) == [records[2].id]
        assert await ids(text="latency") == [records[1].id]

        first = (await viewer.get("/api/v1/anomalies", params={"limit": 2})).json()
        assert [a["id"] for a in first["anomalies"]] == [records[0].id, records[1].id] and first["next_cursor"]
        rest = (await viewer.get("/api/v1/anomalies", params={"limit": 2, "cursor": first["next_cursor"]})).json()
        assert [a["id"] for a in rest["anomalies"]] == [records[2].id] and rest["next_cursor"] is None
        assert first["anomalies"][0]["service"] == "api" and "services" not in first["anomalies"][0]

        one = await viewer.get(f"/api/v1/anomalies/{records[0].id}")
        assert one.status_code == 200 and AnomalyRecord.model_validate(one.json()) == records[0]
        fallback = await viewer.get(f"/api/v1/anomalies/{archived.id}")
        assert fallback.status_code == 200 and fallback.json()["series_name"] == "mem"
        missing = await viewer.get("/api/v1/anomalies/an-000000000000000000000000")
        assert missing.status_code == 404 and missing.json()["error"]

        for bad in (
            {"since": "yesterday"},
            {"cursor": "nope"},
            {"cursor": f"{10**30}:x"},
            {"since": "1h", "until": "2h"},
            {"since": "0001-01-01"},
        ):
            refused = await viewer.get("/api/v1/anomalies", params=bad)
            assert refused.status_code == 400, (bad, refused.text)
        for schema_bad in ({"limit": "0"}, {"limit": "501"}, {"severity": "huge"}):
            assert (await viewer.get("/api/v1/anomalies", params=schema_bad)).status_code == 422
    async with await running_gateway.client(None) as anonymous:
        assert (await anonymous.get("/api/v1/anomalies")).status_code == 401


async def test_predictions(running_gateway: RunningGateway) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    made = [_prediction("api", now - timedelta(minutes=1)), _prediction("db", now - timedelta(hours=3))]
    await running_gateway.gateway.documents.upsert_many("predictions", [_document(p) for p in made])
    async with await running_gateway.client(Role.VIEWER) as viewer:
        every = await viewer.get("/api/v1/predictions")
        assert every.status_code == 200, every.text
        assert [p["id"] for p in every.json()["predictions"]] == [p.id for p in made]
        assert every.json()["next_cursor"] is None
        api = (await viewer.get("/api/v1/predictions", params={"service": "api"})).json()["predictions"]
        assert [p["id"] for p in api] == [made[0].id]
        recent = (await viewer.get("/api/v1/predictions", params={"since": "1h", "text": "disk"})).json()
        assert [p["id"] for p in recent["predictions"]] == [made[0].id]
        one = await viewer.get(f"/api/v1/predictions/{made[1].id}")
        assert one.status_code == 200 and PredictionRecord.model_validate(one.json()) == made[1]
        assert (await viewer.get("/api/v1/predictions/pr-nope")).status_code == 404
        assert (await viewer.get("/api/v1/predictions", params={"until": "later"})).status_code == 400
