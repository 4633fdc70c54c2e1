"""Ingestion under faults: SIGKILLed between acknowledged requests and restarted, nothing acknowledged is lost;
the broker paused (SIGSTOP), producers get HTTP 503 with Retry-After and gRPC UNAVAILABLE, and once it resumes
their retries land."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
import httpx
import pytest
from aiops_common.broker import EmbeddedBroker, ensure_topics
from aiops_common.process import suspended
from aiops_common.testing.eventually import eventually, scaled
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from .conftest import Ingestion, StartIngestion, metric_services

pytestmark = pytest.mark.functional

CLIENT_TIMEOUT_S = 30.0
"""A producer's own request timeout: the refusal must come well within it."""


def post_sample(service: Ingestion, name: str) -> httpx.Response:
    """One JSON sample whose ``service`` label names the request, so the topic shows which requests landed."""
    body = {"samples": [{"name": "fault_probe", "value": 1, "labels": {"service": name}}]}
    return httpx.post(service.http_url + "/api/v1/metrics/write", json=body, timeout=scaled(CLIENT_TIMEOUT_S))


def export_metric(service: Ingestion, name: str) -> None:
    """One OTLP/gRPC metrics export from the service ``name``; raises ``grpc.RpcError`` when refused."""
    point = metrics_pb2.NumberDataPoint(as_double=1.0, time_unix_nano=time.time_ns())
    metric = metrics_pb2.Metric(name="fault_probe", gauge=metrics_pb2.Gauge(data_points=[point]))
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=name))])
    request = metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(resource=resource, scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[metric])])
        ]
    )
    with grpc.insecure_channel(service.grpc_address) as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)  # type: ignore[no-untyped-call]  # generated code
        stub.Export(request, timeout=scaled(CLIENT_TIMEOUT_S))


async def landed(broker_url: str, prefix: str, wanted: set[str]) -> Counter[str]:
    """How often each request's sample is on ``metrics.raw``, once every wanted one is there."""

    async def all_there() -> Counter[str]:
        counts = Counter(await metric_services(broker_url, prefix))
        missing = wanted - set(counts)
        assert not missing, f"acknowledged but not on metrics.raw: {sorted(missing)}"
        return counts

    return await eventually(all_there, scaled(60), "every acknowledged sample on metrics.raw", interval=0.5)


def test_sigkill_between_acknowledged_requests_loses_none(
    broker_url: str, topic_prefix: str, start_ingestion: StartIngestion
) -> None:
    asyncio.run(ensure_topics(broker_url, topic_prefix))
    first = start_ingestion(broker_url, topic_prefix)
    asyncio.run(first.until_ready())
    acknowledged: set[str] = set()
    for i in range(10):
        response = post_sample(first, f"req-{i}")
        assert response.status_code == 200, response.text
        acknowledged.add(f"req-{i}")
    # SIGKILL: no shutdown, no flush. A 200 means the broker acknowledged the record, so nothing of it
    # may live only in the killed process.
    first.worker.kill()

    second = start_ingestion(broker_url, topic_prefix)
    asyncio.run(second.until_ready())
    for i in range(10, 20):
        response = post_sample(second, f"req-{i}")
        assert response.status_code == 200, response.text
        acknowledged.add(f"req-{i}")

    counts = asyncio.run(landed(broker_url, topic_prefix, acknowledged))
    # Nothing was in flight at the kill, so nothing is on the topic that was not acknowledged. A repeat
    # could only come from the producer's own retry of a lost acknowledgement (at-least-once): the same
    # sample, which the stream layer's windows count once per (series, timestamp).
    assert set(counts) == acknowledged, sorted(set(counts) - acknowledged)


def test_broker_paused_gives_503_and_unavailable_and_retries_land(
    tmp_path: Path, start_ingestion: StartIngestion
) -> None:
    # Its own broker: pausing the session's broker would stall every other test's workers.
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        prefix = "paused."
        asyncio.run(ensure_topics(broker.url, prefix))
        service = start_ingestion(broker.url, prefix, publish_timeout_s=2, ingest_retry_after_s=1)
        try:
            asyncio.run(service.until_ready())
            acknowledged: set[str] = set()
            for name in ("before-0", "before-1"):
                assert post_sample(service, name).status_code == 200
                acknowledged.add(name)
            export_metric(service, "before-grpc")
            acknowledged.add("before-grpc")

            assert broker._proc is not None
            refused_http: list[str] = []
            with suspended(broker._proc.pid):  # the broker hangs: nothing sent to it is acknowledged
                for name in ("paused-0", "paused-1"):
                    started = time.monotonic()
                    response = post_sample(service, name)
                    assert response.status_code == 503, response.text
                    assert response.headers["Retry-After"] == "1"
                    assert time.monotonic() - started < scaled(CLIENT_TIMEOUT_S)
                    refused_http.append(name)
                with pytest.raises(grpc.RpcError) as refused:
                    export_metric(service, "paused-grpc")
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()

            async def retried() -> bool:
                # As a producer does: the refused requests again, after Retry-After, until accepted.
                for name in list(refused_http):
                    response = await asyncio.to_thread(post_sample, service, name)
                    if response.status_code != 200:
                        assert response.status_code == 503, response.text
                        return False
                    refused_http.remove(name)
                    acknowledged.add(name)
                try:
                    await asyncio.to_thread(export_metric, service, "paused-grpc")
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
                    return False
                acknowledged.add("paused-grpc")
                return True

            asyncio.run(
                eventually(retried, scaled(60), "the refused requests accepted once the broker resumed", interval=1.0)
            )
            assert post_sample(service, "after").status_code == 200
            acknowledged.add("after")

            counts = asyncio.run(landed(broker.url, prefix, acknowledged))
            # A refused request may land too: its record can reach the hung broker before the publish times
            # out, and be appended when it resumes. That is at-least-once, never loss; anything else is not.
            assert set(counts) <= acknowledged, sorted(set(counts) - acknowledged)
        finally:
            service.worker.stop()  # before its broker goes away
