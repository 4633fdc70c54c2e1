"""Remote write 1.0 and 2.0 over HTTP into metrics.raw, and the content negotiation between them."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import cramjam
import httpx
import pytest
from aiops_common.broker.reader import read_values
from aiops_common.prompb.io.prometheus.write.v2 import types_pb2 as v2
from aiops_common.prompb.remote_pb2 import WriteRequest
from aiops_common.prompb.types_pb2 import Label, Sample, TimeSeries
from aiops_common.schemas import MetricBatch
from aiops_common.testing.eventually import scaled
from aiops_common.topics import Topics

pytestmark = pytest.mark.functional

V1 = "application/x-protobuf"
V1_NAMED = "application/x-protobuf;proto=prometheus.WriteRequest"
V2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
_names = itertools.count()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _v1_body(name: str, value: float = 1.0) -> bytes:
    series = TimeSeries(
        labels=[Label(name="__name__", value=name), Label(name="job", value="rw")],
        samples=[Sample(value=value, timestamp=_now_ms())],
    )
    return bytes(cramjam.snappy.compress_raw(WriteRequest(timeseries=[series]).SerializeToString()))


def _v2_body(name: str, value: float = 1.0, *, histogram: bool = False, exemplars: int = 0) -> bytes:
    symbols = ["", "__name__", name, "job", "rw", "Requests served.", "requests", "trace_id", "abc"]
    request = v2.Request(symbols=symbols)
    now = _now_ms()
    counter = request.timeseries.add(labels_refs=[1, 2, 3, 4], created_timestamp=now - 60_000)
    counter.samples.add(value=value, timestamp=now)
    counter.metadata.CopyFrom(v2.Metadata(type=v2.Metadata.METRIC_TYPE_COUNTER, help_ref=5, unit_ref=6))
    for _ in range(exemplars):
        counter.exemplars.add(labels_refs=[7, 8], value=value, timestamp=now)
    if histogram:
        request.symbols.append(name + "_latency_seconds")
        entry = request.timeseries.add(labels_refs=[1, len(symbols), 3, 4])
        entry.metadata.type = v2.Metadata.METRIC_TYPE_HISTOGRAM
        entry.histograms.add(
            count_int=3,
            sum=2.5,
            schema=0,
            zero_count_int=1,
            positive_spans=[v2.BucketSpan(offset=1, length=1)],
            positive_deltas=[2],
            timestamp=now,
        )
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def _post(ingestion: Any, body: bytes, content_type: str | None, **headers: str) -> httpx.Response:
    sent = {"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "2.0.0", **headers}
    if content_type is not None:
        sent["Content-Type"] = content_type
    sent = {k: v for k, v in sent.items() if v}
    return httpx.post(ingestion.http_url + "/api/v1/write", content=body, headers=sent, timeout=30)


def _samples(ingestion: Any, names: set[str]) -> list[tuple[str, dict[str, str], str, str, float]]:
    def found(values: list[bytes]) -> list[tuple[str, dict[str, str], str, str, float]]:
        return [
            (meta.name, dict(meta.labels), meta.kind.value, meta.unit, value)
            for raw in values
            for meta, _ts, value in MetricBatch.decode(raw).samples()
            if meta.name in names
        ]

    def arrived(values: list[bytes]) -> bool:
        return {name for name, *_ in found(values)} >= names

    values = asyncio.run(
        read_values(ingestion.broker_url, Topics.METRICS_RAW, ingestion.prefix, until=arrived, timeout_s=scaled(60))
    )
    return found(values)


def test_a_1_0_request_round_trips_with_written_headers(ingestion: Any) -> None:
    name = f"rw_v1_{next(_names)}_total"
    response = _post(ingestion, _v1_body(name, 42.0), V1, **{"X-Prometheus-Remote-Write-Version": "0.1.0"})
    assert response.status_code == 204, response.text
    assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "1"
    assert response.headers["X-Prometheus-Remote-Write-Histograms-Written"] == "0"
    assert _samples(ingestion, {name}) == [(name, {"job": "rw", "service": "rw"}, "counter", "", 42.0)]


def test_a_2_0_request_round_trips_samples_metadata_and_native_histograms(ingestion: Any) -> None:
    name = f"rw_v2_{next(_names)}"
    response = _post(ingestion, _v2_body(name, 7.0, histogram=True, exemplars=2), V2)
    assert response.status_code == 204, response.text
    written = {k.removeprefix("x-prometheus-remote-write-"): v for k, v in response.headers.items() if "written" in k}
    assert written == {"samples-written": "1", "histograms-written": "1", "exemplars-written": "0"}
    hist = f"{name}_latency_seconds"
    found = _samples(ingestion, {name, f"{hist}_bucket", f"{hist}_sum", f"{hist}_count"})
    assert (name, {"job": "rw", "service": "rw"}, "counter", "requests", 7.0) in found
    buckets = sorted((labels["le"], value) for n, labels, kind, _u, value in found if n == f"{hist}_bucket")
    assert buckets == [("+Inf", 3.0), ("0.0", 1.0), ("2.0", 3.0)]
    assert {(n, kind, value) for n, _l, kind, _u, value in found if n in (f"{hist}_sum", f"{hist}_count")} == {
        (f"{hist}_sum", "histogram", 2.5),
        (f"{hist}_count", "histogram", 3.0),
    }


# The negotiation matrix: (Content-Type, Content-Encoding, which body) -> status. A 2.0 body
# under a 1.0 Content-Type (and the other way round) decodes as an empty request: the two
# messages use disjoint field numbers, so nothing is misread.
MATRIX = [
    (V1, "snappy", "v1", 204),
    (V1_NAMED, "snappy", "v1", 204),
    ('application/x-protobuf; proto="prometheus.WriteRequest"', "snappy", "v1", 204),
    (None, "snappy", "v1", 204),
    (V1, "", "v1", 204),  # no Content-Encoding: snappy, as early senders sent it
    (V2, "snappy", "v2", 204),
    ("APPLICATION/X-PROTOBUF;PROTO=io.prometheus.write.v2.Request", "SNAPPY", "v2", 204),
    (V2, "", "v2", 204),
    ("application/x-protobuf;proto=io.prometheus.write.v3.Request", "snappy", "v2", 415),
    ("application/x-protobuf;proto=prometheus.ReadRequest", "snappy", "v1", 415),
    ("application/x-protobuf;proto=io.prometheus.write.v2.request", "snappy", "v2", 415),  # names are exact
    ("application/json", "snappy", "v1", 415),
    ("application/protobuf", "snappy", "v1", 415),
    ("text/plain", "snappy", "v2", 415),
    (V1, "gzip", "v1", 415),
    (V2, "gzip", "v2", 415),
    (V2, "zstd", "v2", 415),
    (V2, "identity", "v2", 415),
]


@pytest.mark.parametrize(("content_type", "encoding", "body", "status"), MATRIX)
@pytest.mark.parametrize("version_header", ["", "0.1.0", "2.0.0"])
def test_content_negotiation(
    ingestion: Any, content_type: str | None, encoding: str, body: str, status: int, version_header: str
) -> None:
    name = f"rw_neg_{next(_names)}"
    payload = _v1_body(name) if body == "v1" else _v2_body(name)
    headers = {"Content-Encoding": encoding, "X-Prometheus-Remote-Write-Version": version_header}
    response = _post(ingestion, payload, content_type, **headers)
    assert response.status_code == status, response.text
    if status == 415:
        error = response.json()["error"]
        assert "proto=io.prometheus.write.v2.Request" in error or "snappy" in error
    else:
        assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "1"


def test_a_2_0_body_sent_as_1_0_writes_nothing_and_says_so(ingestion: Any) -> None:
    response = _post(ingestion, _v2_body(f"rw_mislabelled_{next(_names)}"), V1)
    assert response.status_code == 204
    assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "0"


def test_a_bad_symbol_ref_is_a_400_with_the_reason(ingestion: Any) -> None:
    request = v2.Request(symbols=["", "__name__", "up"])
    request.timeseries.add(labels_refs=[1, 2, 3, 9]).samples.add(value=1.0, timestamp=_now_ms())
    body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
    response = _post(ingestion, body, V2)
    assert response.status_code == 400
    assert "symbols table has 3 entries" in response.json()["error"]


def test_an_unsupported_native_histogram_is_a_400_naming_it(ingestion: Any) -> None:
    request = v2.Request(symbols=["", "__name__", "lat"])
    entry = request.timeseries.add(labels_refs=[1, 2])
    entry.histograms.add(count_int=1, sum=1.0, schema=20, timestamp=_now_ms())
    body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
    response = _post(ingestion, body, V2)
    assert response.status_code == 400
    assert "schema 20 is not supported" in response.json()["error"]
