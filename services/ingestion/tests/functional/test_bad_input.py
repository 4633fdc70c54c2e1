"""Thousands of malformed bodies on every endpoint: always a 4xx with a message, never a 5xx or a crash."""

from __future__ import annotations

import gzip
import json
import random
from typing import Any

import cramjam
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

pytestmark = pytest.mark.functional

ENDPOINTS = [
    "/v1/metrics",
    "/v1/logs",
    "/v1/traces",
    "/api/v1/write",
    "/api/v1/alerts/ingest",
    "/api/v1/metrics/write",
    "/api/v1/logs/write",
    "/api/v1/events/deployment",
]
CONTENT_TYPES = ["application/x-protobuf", "application/json", "text/plain", "", "application/x-www-form-urlencoded"]


def _valid_otlp() -> bytes:
    req = ExportMetricsServiceRequest()
    metric = req.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "m"
    point = metric.gauge.data_points.add()
    point.as_double = 1.0
    point.time_unix_nano = 1_700_000_000 * 10**9
    return req.SerializeToString()


def _json_bodies(rng: random.Random) -> list[Any]:
    nasty: list[Any] = [
        None,
        1,
        "x",
        [],
        {},
        [1, 2],
        {"samples": None},
        {"samples": [{}]},
        {"samples": [{"name": ""}]},
        {"samples": [{"name": "a", "value": "NaN"}]},
        {"samples": [{"name": "a", "value": 1e400}]},
        {"samples": [{"name": "a", "value": 1, "timestamp": -5}]},
        {"samples": [{"name": "a", "value": 1, "timestamp": "yesterday"}]},
        {"samples": [{"name": "a", "value": 1, "labels": {f"l{i}": "v" for i in range(500)}}]},
        {"samples": [{"name": "a", "value": 1, "labels": {"a": "x" * 100_000}}]},
        {"logs": [{"message": 5}]},
        {"logs": "no"},
        {"alerts": [{"status": "firing"}]},
        {"alerts": [{"labels": {}, "startsAt": "never"}]},
        {"service": None},
        {"service": "s", "timestamp": 1e30},
        {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [{}]}}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "1"}]}]}]},
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "abc"}]}]}]},
    ]
    for _ in range(60):
        depth = rng.randint(0, 4)
        value: Any = rng.choice([rng.random(), rng.randint(-(2**70), 2**70), "s" * rng.randint(0, 50), None, True])
        for _ in range(depth):
            value = rng.choice([[value], {rng.choice(["samples", "logs", "alerts", "name", "x"]): value}])
        nasty.append(value)
    return nasty


def _bodies(rng: random.Random) -> list[tuple[bytes, dict[str, str]]]:
    valid = _valid_otlp()
    cases: list[tuple[bytes, dict[str, str]]] = []
    for _ in range(200):
        cases.append((rng.randbytes(rng.randint(0, 2000)), {}))
    for cut in range(1, len(valid)):
        cases.append((valid[:cut], {}))
    for _ in range(60):
        flipped = bytearray(valid)
        for _ in range(rng.randint(1, 5)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        cases.append((bytes(flipped), {}))
    for doc in _json_bodies(rng):
        cases.append((json.dumps(doc).encode(), {"Content-Type": "application/json"}))
    cases.append((b"{" * 100_000, {"Content-Type": "application/json"}))
    cases.append((gzip.compress(b"\0" * 200_000_000), {"Content-Encoding": "gzip"}))  # compression bomb
    cases.append((b"not gzip", {"Content-Encoding": "gzip"}))
    cases.append((b"x", {"Content-Encoding": "br"}))
    cases.append((bytes(cramjam.snappy.compress_raw(b"\xff" * 1000)), {"Content-Encoding": "snappy"}))
    cases.append((b"\xff\xff\xff\xff\x0f", {"Content-Encoding": "snappy"}))  # snappy header claiming 4 GB
    return cases


def test_malformed_bodies_never_get_a_5xx(ingestion: Any) -> None:
    rng = random.Random(20261122)
    cases = _bodies(rng)
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=ingestion.http_url, timeout=30) as client:
        for path in ENDPOINTS:
            for body, headers in cases:
                hdrs = {"Content-Type": rng.choice(CONTENT_TYPES), **headers}
                if path == "/api/v1/write" and "Content-Encoding" not in headers and rng.random() < 0.7:
                    hdrs["Content-Encoding"] = "snappy"
                    body = bytes(cramjam.snappy.compress_raw(body))
                response = client.post(path, content=body, headers=hdrs)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.status_code < 500, f"{path} {hdrs} -> {response.status_code} {response.text[:300]}"
                if response.status_code >= 400:
                    assert _refusal(path, response), "a 4xx must say what was wrong"
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
    assert ingestion.proc.poll() is None
    assert sum(statuses.values()) >= 3000
    assert sum(n for code, n in statuses.items() if 400 <= code < 500) > 2500


def test_oversized_body_is_refused_before_it_is_read(ingestion: Any) -> None:
    big = b"\0" * (16 * 1024 * 1024 + 1)
    response = httpx.post(
        ingestion.http_url + "/v1/metrics", content=big, headers={"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 413
    assert "limit" in _refusal("/v1/metrics", response)


def _refusal(path: str, response: httpx.Response) -> str:
    """The message of a refusal: a google.rpc.Status on the OTLP paths (binary for protobuf), else ``error``."""
    if not path.startswith("/v1/"):
        return str(response.json()["error"])
    if response.headers["content-type"] == "application/x-protobuf":
        return status_pb2.Status.FromString(response.content).message
    return json_format.Parse(response.text, status_pb2.Status()).message
