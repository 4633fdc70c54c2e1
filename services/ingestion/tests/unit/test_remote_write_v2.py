"""Prometheus remote write 2.0: symbols and refs, metadata into kind and unit, native histograms, refusals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cramjam
import pytest
from aiops_common.prompb.io.prometheus.write.v2 import types_pb2 as v2
from aiops_common.prompb.remote_pb2 import WriteRequest
from aiops_common.prompb.types_pb2 import BucketSpan, Histogram, Label, TimeSeries
from aiops_common.schemas import STALE_NAN, MetricBatchBuilder, is_stale_marker
from aiops_ingestion.normalize import (
    Enricher,
    InvalidPayloadError,
    Limits,
    RemoteWriteCounts,
    normalize_remote_write,
    normalize_remote_write_v2,
    parse_remote_write,
    parse_remote_write_v2,
    remote_write_version,
)

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000
MT = v2.Metadata.MetricType


class RequestBuilder:
    """A 2.0 request built the way senders build one: each string once in the symbols table."""

    def __init__(self) -> None:
        self.request = v2.Request(symbols=[""])
        self._refs: dict[str, int] = {"": 0}

    def ref(self, text: str) -> int:
        if text not in self._refs:
            self._refs[text] = len(self.request.symbols)
            self.request.symbols.append(text)
        return self._refs[text]

    def series(
        self,
        labels: Mapping[str, str],
        samples: Sequence[tuple[float, int]] = ((1.0, NOW_MS),),
        *,
        kind: v2.Metadata.MetricType = MT.METRIC_TYPE_UNSPECIFIED,
        unit: str = "",
        help: str = "",
        histograms: Sequence[Any] = (),
        exemplars: int = 0,
        created_ms: int = 0,
    ) -> Any:
        refs = [self.ref(part) for name in sorted(labels) for part in (name, labels[name])]
        entry = self.request.timeseries.add(labels_refs=refs, created_timestamp=created_ms)
        entry.samples.extend(v2.Sample(value=v, timestamp=t) for v, t in samples)
        entry.histograms.extend(histograms)
        entry.metadata.CopyFrom(v2.Metadata(type=kind, unit_ref=self.ref(unit), help_ref=self.ref(help)))
        for i in range(exemplars):
            trace = [self.ref("trace_id"), self.ref(f"{i:032x}")]
            entry.exemplars.add(labels_refs=trace, value=0.5, timestamp=NOW_MS)
        return entry


def normalize(request: Any, counts: RemoteWriteCounts | None = None) -> MetricBatchBuilder:
    return normalize_remote_write_v2(request, Limits(), Enricher(), 8, now_ms=NOW_MS, counts=counts)


def rows(builder: MetricBatchBuilder) -> list[tuple[str, dict[str, str], str, str, int, float]]:
    return [(m.name, dict(m.labels), m.kind.value, m.unit, ts, v) for m, ts, v in builder.build().samples()]


def refused(request: Any) -> InvalidPayloadError:
    with pytest.raises(InvalidPayloadError) as caught:
        normalize(request)
    return caught.value


def snappy(message: Any) -> bytes:
    return bytes(cramjam.snappy.compress_raw(message.SerializeToString()))


# Content negotiation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "encoding", "expected"),
    [
        ("application/x-protobuf", "snappy", "1.0"),
        (None, None, "1.0"),
        ("application/x-protobuf;proto=prometheus.WriteRequest", "snappy", "1.0"),
        ("application/x-protobuf;proto=io.prometheus.write.v2.Request", "snappy", "2.0"),
        ('Application/X-Protobuf ; Proto="io.prometheus.write.v2.Request"', "Snappy", "2.0"),
        ("application/x-protobuf; charset=binary; proto=io.prometheus.write.v2.Request", None, "2.0"),
    ],
)
def test_the_content_type_names_the_protocol_version(
    content_type: str | None, encoding: str | None, expected: str
) -> None:
    assert remote_write_version(content_type, encoding) == expected


@pytest.mark.parametrize(
    ("content_type", "encoding", "named"),
    [
        ("application/x-protobuf;proto=io.prometheus.write.v3.Request", "snappy", "io.prometheus.write.v3.Request"),
        ("application/x-protobuf;proto=", "snappy", "proto=''"),
        ("application/json", "snappy", "application/json"),
        ("application/protobuf", "snappy", "application/protobuf"),
        ("application/x-protobuf;proto=io.prometheus.write.v2.Request", "gzip", "gzip"),
        ("application/x-protobuf", "zstd", "zstd"),
    ],
)
def test_unknown_messages_media_types_and_encodings_are_a_415_naming_them(
    content_type: str, encoding: str, named: str
) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        remote_write_version(content_type, encoding)
    assert caught.value.status_code == 415
    assert named in caught.value.message


# Round trip through the compiled messages -------------------------------------------------------------


def test_labels_samples_and_metadata_decode_through_the_symbols_table() -> None:
    req = RequestBuilder()
    req.series(
        {"__name__": "http_requests_total", "job": "api", "code": "200"},
        [(5.0, NOW_MS), (7.0, NOW_MS + 15_000)],
        kind=MT.METRIC_TYPE_COUNTER,
        help="Requests served.",
    )
    req.series({"__name__": "queue_bytes", "job": "api"}, kind=MT.METRIC_TYPE_GAUGE, unit="bytes")
    counts = RemoteWriteCounts()
    decoded = parse_remote_write_v2(snappy(req.request))
    assert rows(normalize(decoded, counts)) == [
        ("http_requests_total", {"code": "200", "job": "api", "service": "api"}, "counter", "", NOW_MS, 5.0),
        ("http_requests_total", {"code": "200", "job": "api", "service": "api"}, "counter", "", NOW_MS + 15_000, 7.0),
        ("queue_bytes", {"job": "api", "service": "api"}, "gauge", "bytes", NOW_MS, 1.0),
    ]
    assert (counts.samples, counts.histograms, counts.exemplars) == (3, 0, 0)


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("rpc_duration_seconds", MT.METRIC_TYPE_SUMMARY, "summary"),
        ("latency_bucket", MT.METRIC_TYPE_HISTOGRAM, "histogram"),
        ("queue_bucket", MT.METRIC_TYPE_GAUGEHISTOGRAM, "histogram"),
        ("build_info", MT.METRIC_TYPE_INFO, "gauge"),
        ("feature_state", MT.METRIC_TYPE_STATESET, "gauge"),
        ("odd_total", MT.METRIC_TYPE_GAUGE, "gauge"),  # metadata wins over the name
        ("jobs_total", MT.METRIC_TYPE_UNSPECIFIED, "counter"),  # no metadata: from the name, as in 1.0
        ("temperature", MT.METRIC_TYPE_UNSPECIFIED, "gauge"),
    ],
)
def test_metadata_type_sets_the_kind(name: str, kind: v2.Metadata.MetricType, expected: str) -> None:
    req = RequestBuilder()
    req.series({"__name__": name, "job": "a"}, kind=kind)
    assert rows(normalize(req.request))[0][2] == expected


def test_exemplars_are_counted_not_kept_and_created_timestamps_are_accepted() -> None:
    req = RequestBuilder()
    req.series({"__name__": "hits_total", "job": "a"}, exemplars=2, created_ms=NOW_MS - 60_000)
    counts = RemoteWriteCounts()
    assert len(rows(normalize(req.request, counts))) == 1
    assert (counts.samples, counts.exemplars, counts.exemplars_received) == (1, 0, 2)


def test_stale_markers_are_kept_bit_for_bit() -> None:
    req = RequestBuilder()
    req.series({"__name__": "up", "job": "a"}, [(STALE_NAN, NOW_MS)])
    assert is_stale_marker(rows(normalize(req.request))[0][5])


def test_an_empty_request_writes_nothing() -> None:
    counts = RemoteWriteCounts(samples=9)
    assert len(normalize(v2.Request(), counts)) == 0
    assert counts.samples == 0


# Malformed requests -----------------------------------------------------------------------------------


def test_a_label_ref_outside_the_symbols_table_is_a_400_naming_it() -> None:
    req = RequestBuilder()
    req.series({"__name__": "up", "job": "a"})
    req.request.timeseries[0].labels_refs[3] = 99
    error = refused(req.request)
    assert error.status_code == 400
    assert "symbol 99" in error.message and "has 5 entries" in error.message and "series 0" in error.message


@pytest.mark.parametrize("field", ["unit_ref", "help_ref"])
def test_a_metadata_ref_outside_the_symbols_table_is_a_400(field: str) -> None:
    req = RequestBuilder()
    entry = req.series({"__name__": "up", "job": "a"})
    setattr(entry.metadata, field, 1000)
    error = refused(req.request)
    assert error.status_code == 400 and field in error.message and "symbol 1000" in error.message


def test_an_exemplar_label_ref_outside_the_table_is_a_400() -> None:
    req = RequestBuilder()
    entry = req.series({"__name__": "up", "job": "a"})
    entry.exemplars.add(labels_refs=[0, 500], value=1.0)
    assert "exemplar labels_refs" in refused(req.request).message


def test_an_odd_number_of_label_refs_is_a_400() -> None:
    req = RequestBuilder()
    req.series({"__name__": "up", "job": "a"})
    req.request.timeseries[0].labels_refs.append(1)
    assert "not name/value pairs" in refused(req.request).message


def test_a_symbols_table_not_starting_with_the_empty_string_is_a_400() -> None:
    request = v2.Request(symbols=["__name__", "up"])
    request.timeseries.add(labels_refs=[0, 1]).samples.add(value=1.0, timestamp=NOW_MS)
    assert "must start with the empty string" in refused(request).message


def test_bad_labels_and_samples_are_refused_as_in_1_0() -> None:
    req = RequestBuilder()
    req.series({"job": "a"})  # no __name__
    req.series({"__name__": "up", "job": "a"}, [(math.inf, NOW_MS)])
    req.series({"__name__": "old", "job": "a"}, [(1.0, 1000)])
    error = refused(req.request)
    assert error.status_code == 400
    assert "3 of 3 series invalid" in error.message and "no metric name" in error.message


def test_samples_and_histograms_in_one_series_are_refused() -> None:
    req = RequestBuilder()
    req.series({"__name__": "lat", "job": "a"}, histograms=[_exponential()])
    assert "both samples and histograms" in refused(req.request).message


def test_a_body_that_is_not_a_v2_request_is_a_400() -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        parse_remote_write_v2(bytes(cramjam.snappy.compress_raw(b"\x22\x05abc")))
    assert caught.value.status_code == 400 and "io.prometheus.write.v2.Request" in caught.value.message


def test_a_1_0_body_sent_as_2_0_decodes_as_an_empty_request() -> None:
    # The 2.0 Request reserves 1.0's field numbers: a mislabelled body is empty, never misread.
    body = snappy(WriteRequest(timeseries=[TimeSeries(labels=[Label(name="__name__", value="up")])]))
    assert len(parse_remote_write_v2(body).timeseries) == 0


# Native histograms ------------------------------------------------------------------------------------


def _exponential(**fields: Any) -> Any:
    """Schema 0 (bucket i ends at 2**i): 1 observation at -1.5, 2 in the zero bucket, 3 in (1, 2], 4 in (4, 8]."""
    values: dict[str, Any] = {
        "count_int": 10,
        "sum": 20.5,
        "schema": 0,
        "zero_threshold": 0.001,
        "zero_count_int": 2,
        "negative_spans": [v2.BucketSpan(offset=1, length=1)],
        "negative_deltas": [1],
        "positive_spans": [v2.BucketSpan(offset=1, length=1), v2.BucketSpan(offset=1, length=1)],
        "positive_deltas": [3, 1],  # bucket 1 (1, 2]: 3; bucket 3 (4, 8]: 4
        "timestamp": NOW_MS,
    }
    values.update(fields)
    return v2.Histogram(**values)


def _histogram_rows(histogram: Any, **series: Any) -> tuple[list[tuple[str, str, float]], RemoteWriteCounts]:
    req = RequestBuilder()
    req.series({"__name__": "lat_seconds", "job": "a"}, [], histograms=[histogram], **series)
    counts = RemoteWriteCounts()
    found = rows(normalize(req.request, counts))
    assert {(r[2], r[4]) for r in found} == {("histogram", NOW_MS)}
    return [(name, labels.get("le", ""), value) for name, labels, _k, _u, _t, value in found], counts


def test_an_exponential_native_histogram_becomes_cumulative_le_buckets() -> None:
    found, counts = _histogram_rows(_exponential(), kind=MT.METRIC_TYPE_HISTOGRAM, unit="seconds")
    assert found == [
        ("lat_seconds_bucket", "-1.0", 1.0),  # negative bucket 1 is [-2, -1)
        ("lat_seconds_bucket", "0.001", 3.0),
        ("lat_seconds_bucket", "2.0", 6.0),
        ("lat_seconds_bucket", "8.0", 10.0),
        ("lat_seconds_bucket", "+Inf", 10.0),
        ("lat_seconds_sum", "", 20.5),
        ("lat_seconds_count", "", 10.0),
    ]
    assert (counts.samples, counts.histograms) == (0, 1)


def test_a_float_histogram_with_custom_buckets_keeps_its_bounds() -> None:
    histogram = v2.Histogram(
        count_float=6.5,
        sum=3.0,
        schema=-53,
        custom_values=[0.1, 0.5, 1.0],
        positive_spans=[v2.BucketSpan(offset=0, length=2), v2.BucketSpan(offset=1, length=1)],
        positive_counts=[1.5, 2.0, 3.0],  # buckets 0, 1 and 3 (+Inf)
        timestamp=NOW_MS,
    )
    found, _ = _histogram_rows(histogram)
    assert found == [
        ("lat_seconds_bucket", "0.1", 1.5),
        ("lat_seconds_bucket", "0.5", 3.5),
        ("lat_seconds_bucket", "+Inf", 6.5),
        ("lat_seconds_sum", "", 3.0),
        ("lat_seconds_count", "", 6.5),
    ]


def test_a_stale_native_histogram_marks_sum_and_count_stale() -> None:
    found, counts = _histogram_rows(_exponential(sum=STALE_NAN, count_int=0, positive_spans=[], positive_deltas=[]))
    assert [name for name, _le, _v in found] == ["lat_seconds_sum", "lat_seconds_count"]
    assert all(is_stale_marker(value) for _n, _le, value in found)
    assert counts.histograms == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schema": 9}, "schema 9 is not supported"),
        ({"schema": -5}, "schema -5 is not supported"),
        ({"positive_deltas": [3]}, "declare 2 buckets but 1 counts"),
        ({"positive_deltas": [3, -5]}, "negative or NaN positive bucket count"),
        ({"count_int": 4}, "more than its count"),
        ({"positive_counts": [1.0, 1.0]}, "both positive_deltas and positive_counts"),
        ({"sum": math.inf}, "native histogram"),
        ({"zero_threshold": -1.0}, "zero_threshold"),
        ({"positive_spans": [v2.BucketSpan(offset=2000, length=2)]}, "beyond the range of a double"),
        ({"timestamp": 5}, "1970"),
    ],
)
def test_native_histograms_that_cannot_be_converted_are_a_400_naming_why(fields: dict[str, Any], message: str) -> None:
    req = RequestBuilder()
    req.series({"__name__": "lat_seconds", "job": "a"}, [], histograms=[_exponential(**fields)])
    error = refused(req.request)
    assert error.status_code == 400 and message in error.message


def test_custom_bucket_indexes_past_the_bounds_are_refused() -> None:
    histogram = v2.Histogram(
        count_int=1,
        schema=-53,
        custom_values=[1.0],
        positive_spans=[v2.BucketSpan(offset=3, length=1)],
        positive_deltas=[1],
        timestamp=NOW_MS,
    )
    req = RequestBuilder()
    req.series({"__name__": "lat_seconds", "job": "a"}, [], histograms=[histogram])
    assert "outside its 1 custom_values" in refused(req.request).message


def test_native_histograms_in_a_1_0_request_are_converted_too() -> None:
    # Prometheus 2.x with native histograms enabled sends them in 1.0's TimeSeries.histograms.
    histogram = Histogram(
        count_int=3,
        sum=1.5,
        schema=0,
        zero_count_int=1,
        positive_spans=[BucketSpan(offset=0, length=1)],
        positive_deltas=[2],
        timestamp=NOW_MS,
    )
    request = WriteRequest(
        timeseries=[
            TimeSeries(
                labels=[Label(name="__name__", value="lat"), Label(name="job", value="a")], histograms=[histogram]
            )
        ]
    )
    counts = RemoteWriteCounts()
    builder = normalize_remote_write(
        parse_remote_write(snappy(request)), Limits(), Enricher(), 8, now_ms=NOW_MS, counts=counts
    )
    found = [(m.name, m.labels.get("le", ""), v) for m, _t, v in builder.build().samples()]
    assert found == [
        ("lat_bucket", "0.0", 1.0),
        ("lat_bucket", "1.0", 3.0),
        ("lat_bucket", "+Inf", 3.0),
        ("lat_sum", "", 1.5),
        ("lat_count", "", 3.0),
    ]
    assert (counts.samples, counts.histograms) == (0, 1)
