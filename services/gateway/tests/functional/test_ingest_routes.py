"""The ingestion routes through the gateway: forwarded to a real ingestion server under the gateway's keys, with
ingestion's answers (and refusals) passed back, and 503 when ingestion cannot be reached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import cramjam
import pytest
from aiops_common.broker import free_port
from aiops_common.broker.reader import read_to_end
from aiops_common.prompb import remote_pb2, types_pb2
from aiops_common.schemas import MetricBatch
from aiops_common.topics import Topics
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway, start_gateway
from aiops_ingestion.servers import IngestionServers
from aiops_ingestion.settings import IngestionSettings

pytestmark = pytest.mark.functional


@pytest.fixture
async def gateway_and_ingestion(tmp_path: Path, broker_url: str, topic_prefix: str) -> AsyncIterator[RunningGateway]:
    ingestion = IngestionServers(
        IngestionSettings(
            data_dir=tmp_path / "ingestion",
            topic_prefix=topic_prefix,
            ingest_http_port=free_port(),
            ingest_grpc_port=free_port(),
        ),
        broker_url,
    )
    await ingestion.start()
    servers, running = await start_gateway(
        tmp_path, broker_url, topic_prefix, gateway_ingest_url=ingestion.settings.http_url, gateway_max_body_bytes=4096
    )
    try:
        yield running
    finally:
        await servers.stop()
        await ingestion.stop()


async def _samples(broker_url: str, prefix: str) -> list[tuple[str, float]]:
    batches: list[MetricBatch] = []
    await read_to_end(broker_url, Topics.METRICS_RAW, prefix, lambda raw: batches.append(MetricBatch.decode(raw)))
    return sorted((meta.name, value) for batch in batches for meta, _, value in batch.samples())


async def test_writes_reach_the_broker_through_the_gateway(
    gateway_and_ingestion: RunningGateway, broker_url: str, topic_prefix: str
) -> None:
    now = datetime.now(UTC).isoformat()
    async with await gateway_and_ingestion.client(Role.OPERATOR) as operator:
        answer = await operator.post(
            "/api/v1/metrics/write",
            json={
                "samples": [
                    {
                        "name": "checkout_latency_seconds",
                        "labels": {"service": "checkout"},
                        "value": 0.25,
                        "timestamp": now,
                    }
                ]
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": 1}

        series = types_pb2.TimeSeries(
            labels=[
                types_pb2.Label(name="__name__", value="queue_depth"),
                types_pb2.Label(name="service", value="payment"),
            ],
            samples=[types_pb2.Sample(value=7.0, timestamp=int(datetime.now(UTC).timestamp() * 1000))],
        )
        raw = bytes(cramjam.snappy.compress_raw(remote_pb2.WriteRequest(timeseries=[series]).SerializeToString()))
        written = await operator.post(
            "/api/v1/write",
            content=raw,
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
        )
        assert written.status_code == 204, written.text

        refused = await operator.post("/api/v1/metrics/write", json={"samples": [{"name": "bad name!", "value": 1}]})
        assert refused.status_code == 400
        assert "error" in refused.json()

        too_big = await operator.post(
            "/api/v1/logs/write", content=b"x" * 5000, headers={"Content-Type": "application/json"}
        )
        assert too_big.status_code == 413

    async with await gateway_and_ingestion.client(Role.VIEWER) as viewer:
        assert (await viewer.post("/api/v1/metrics/write", json={"samples": []})).status_code == 403
    async with await gateway_and_ingestion.client(None) as anonymous:
        assert (await anonymous.post("/api/v1/metrics/write", json={"samples": []})).status_code == 401

    samples = await _samples(broker_url, topic_prefix)
    assert ("checkout_latency_seconds", 0.25) in samples
    assert ("queue_depth", 7.0) in samples


async def test_unreachable_ingestion_is_a_503(tmp_path: Path, broker_url: str, topic_prefix: str) -> None:
    servers, running = await start_gateway(
        tmp_path, broker_url, topic_prefix, gateway_ingest_url=f"http://127.0.0.1:{free_port()}"
    )
    try:
        async with await running.client(Role.OPERATOR) as operator:
            answer = await operator.post("/api/v1/logs/write", json={"logs": []})
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "5"
        assert "unreachable" in answer.json()["error"]
    finally:
        await servers.stop()
