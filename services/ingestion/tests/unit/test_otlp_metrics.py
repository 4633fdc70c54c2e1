"""OTLP metrics of every type normalize into the right series, values, labels and kinds, or are refused."""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from aiops_common.schemas import MetricBatch, MetricBatchBuilder
from aiops_ingestion.normalize import (
    STALE_NAN,
    Enricher,
    InvalidPayloadError,
    Limits,
    SeriesCache,
    normalize_otlp_metrics,
    parse_otlp_metrics,
    prometheus_name,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource as SdkResource

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000
NOW_NS = NOW_MS * 1_000_000
Attrs = Callable[[Mapping[str, object]], list[KeyValue]]
Sample = tuple[str, dict[str, str], str, int, float]

CUMULATIVE = pb.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = pb.AGGREGATION_TEMPORALITY_DELTA


def request(
    attrs: Attrs, *metrics: pb.Metric, resource: Mapping[str, object] | None = None, scope: Mapping[str, object] = {}
) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            pb.ResourceMetrics(
                resource=Resource(attributes=attrs(resource if resource is not None else {"service.name": "checkout"})),
                scope_metrics=[
                    pb.ScopeMetrics(scope=InstrumentationScope(name="lib", attributes=attrs(scope)), metrics=metrics)
                ],
            )
        ]
    )


def gauge(name: str, *points: pb.NumberDataPoint, unit: str = "") -> pb.Metric:
    return pb.Metric(name=name, unit=unit, gauge=pb.Gauge(data_points=points))


def point(value: float | int, ts_ns: int = NOW_NS, attributes: list[KeyValue] | None = None, flags: int = 0) -> Any:
    field = {"as_int": value} if isinstance(value, int) else {"as_double": value}
    return pb.NumberDataPoint(time_unix_nano=ts_ns, attributes=attributes or [], flags=flags, **field)


def normalize(req: ExportMetricsServiceRequest, limits: Limits | None = None, enricher: Enricher | None = None) -> Any:
    return normalize_otlp_metrics(req, limits or Limits(), enricher or Enricher(), 4, now_ms=NOW_MS)


def samples(builder: MetricBatchBuilder) -> list[Sample]:
    return [(m.name, dict(m.labels), m.kind.value, ts, v) for m, ts, v in builder.build().samples()]


def by_name(builder: MetricBatchBuilder) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for sample in samples(builder):
        out.setdefault(sample[0], []).append(sample)
    return out


def bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def refused(req: ExportMetricsServiceRequest, limits: Limits | None = None) -> InvalidPayloadError:
    with pytest.raises(InvalidPayloadError) as caught:
        normalize(req, limits)
    return caught.value


# Values, kinds, names ----------------------------------------------------------------------------


def test_gauge_points_keep_double_and_int_values_with_millisecond_timestamps(attrs: Attrs) -> None:
    req = request(attrs, gauge("temperature", point(21.5, NOW_NS + 999_999), point(7, NOW_NS - 1_000_000), unit="Cel"))
    builder = normalize(req)
    assert [(s[0], s[2], s[3], s[4]) for s in samples(builder)] == [
        ("temperature", "gauge", NOW_MS, 21.5),
        ("temperature", "gauge", NOW_MS - 1, 7.0),
    ]
    assert builder.build().series[0].unit == "Cel"
    assert builder.partitions == 4


@pytest.mark.parametrize(
    ("monotonic", "temporality", "kind"),
    [(True, CUMULATIVE, "counter"), (False, CUMULATIVE, "gauge"), (True, DELTA, "delta"), (False, DELTA, "delta")],
)
def test_sum_kind_follows_monotonicity_and_temporality(
    attrs: Attrs, monotonic: bool, temporality: pb.AggregationTemporality.ValueType, kind: str
) -> None:
    metric = pb.Metric(
        name="requests",
        sum=pb.Sum(data_points=[point(12)], aggregation_temporality=temporality, is_monotonic=monotonic),
    )
    assert samples(normalize(request(attrs, metric))) == [("requests", {"service": "checkout"}, kind, NOW_MS, 12.0)]


def test_sum_without_temporality_is_refused(attrs: Attrs) -> None:
    metric = pb.Metric(name="requests", sum=pb.Sum(data_points=[point(1)], is_monotonic=True))
    error = refused(request(attrs, metric))
    assert error.status_code == 400 and "aggregation temporality" in error.message


@pytest.mark.parametrize(
    ("otlp", "prometheus"),
    [
        ("http.server.duration", "http_server_duration"),
        ("queue-depth/max", "queue_depth_max"),
        ("2xx.responses", "_2xx_responses"),
        ("ns:already_fine", "ns:already_fine"),
    ],
)
def test_metric_names_become_prometheus_safe(otlp: str, prometheus: str) -> None:
    assert prometheus_name(otlp) == prometheus


def test_empty_metric_name_is_refused(attrs: Attrs) -> None:
    assert "name is empty" in refused(request(attrs, gauge("", point(1.0)))).message


# Histograms ------------------------------------------------------------------------------------------


def histogram(temporality: pb.AggregationTemporality.ValueType = CUMULATIVE, **fields: Any) -> pb.Metric:
    data = pb.HistogramDataPoint(time_unix_nano=NOW_NS, **fields)
    data_points = pb.Histogram(data_points=[data], aggregation_temporality=temporality)
    return pb.Metric(name="http.latency", unit="s", histogram=data_points)


def test_histogram_becomes_cumulative_buckets_with_inf_sum_and_count(attrs: Attrs) -> None:
    metric = histogram(count=6, sum=4.5, explicit_bounds=[0.1, 1.0, 5.0], bucket_counts=[1, 2, 0, 3])
    got = by_name(normalize(request(attrs, metric)))
    buckets = [(s[1]["le"], s[4]) for s in got["http_latency_bucket"]]
    assert buckets == [("0.1", 1.0), ("1.0", 3.0), ("5.0", 3.0), ("+Inf", 6.0)]
    assert [s[4] for s in got["http_latency_sum"]] == [4.5]
    assert [s[4] for s in got["http_latency_count"]] == [6.0]
    assert {s[2] for series in got.values() for s in series} == {"histogram"}
    assert "le" not in got["http_latency_sum"][0][1]


def test_delta_histogram_series_are_delta(attrs: Attrs) -> None:
    metric = histogram(DELTA, count=2, sum=1.0, explicit_bounds=[1.0], bucket_counts=[1, 1])
    assert {s[2] for s in samples(normalize(request(attrs, metric)))} == {"delta"}


def test_histogram_without_sum_or_buckets_still_has_inf_bucket_and_count(attrs: Attrs) -> None:
    got = by_name(normalize(request(attrs, histogram(count=4))))
    assert set(got) == {"http_latency_bucket", "http_latency_count"}
    assert [(s[1]["le"], s[4]) for s in got["http_latency_bucket"]] == [("+Inf", 4.0)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"count": 3, "explicit_bounds": [1.0, 2.0], "bucket_counts": [1, 2]}, "2 bucket counts for 2 bounds"),
        ({"count": 3, "explicit_bounds": [2.0, 1.0], "bucket_counts": [1, 1, 1]}, "not strictly increasing"),
        ({"count": 2, "explicit_bounds": [1.0], "bucket_counts": [2, 1]}, "add up to more than"),
        ({"count": 1, "sum": math.inf, "explicit_bounds": [1.0], "bucket_counts": [1, 0]}, "sum: value +Inf"),
        ({"count": 1, "explicit_bounds": [math.inf], "bucket_counts": [1, 0]}, "must be finite"),
    ],
)
def test_inconsistent_histograms_are_refused(attrs: Attrs, fields: dict[str, Any], message: str) -> None:
    error = refused(request(attrs, histogram(**fields)))
    assert error.status_code == 400 and message in error.message


def test_histogram_attribute_named_le_is_refused(attrs: Attrs) -> None:
    metric = histogram(count=1, explicit_bounds=[1.0], bucket_counts=[1, 0], attributes=attrs({"le": "x"}))
    assert "clashes with the histogram's bucket label" in refused(request(attrs, metric)).message


def exponential(**fields: Any) -> pb.Metric:
    data = pb.ExponentialHistogramDataPoint(time_unix_nano=NOW_NS, **fields)
    return pb.Metric(
        name="payload.size",
        exponential_histogram=pb.ExponentialHistogram(data_points=[data], aggregation_temporality=CUMULATIVE),
    )


def exp_buckets(attrs: Attrs, metric: pb.Metric) -> list[tuple[str, float]]:
    got = by_name(normalize(request(attrs, metric)))
    return [(s[1]["le"], s[4]) for s in got["payload_size_bucket"]]


def test_exponential_histogram_negative_zero_and_positive_buckets_become_cumulative_le_bounds(attrs: Attrs) -> None:
    # scale 0: base 2. Negative bucket 0 holds [-2, -1), zero bucket 0, positive buckets (1, 2] and (2, 4].
    metric = exponential(
        scale=0,
        count=10,
        sum=12.0,
        zero_count=3,
        negative=pb.ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[4]),
        positive=pb.ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[1, 2]),
    )
    assert exp_buckets(attrs, metric) == [("-1.0", 4.0), ("0.0", 7.0), ("2.0", 8.0), ("4.0", 10.0), ("+Inf", 10.0)]
    got = by_name(normalize(request(attrs, metric)))
    assert [s[4] for s in got["payload_size_sum"]] == [12.0] and [s[4] for s in got["payload_size_count"]] == [10.0]
    assert {s[2] for series in got.values() for s in series} == {"histogram"}


@pytest.mark.parametrize(
    ("scale", "offset", "upper"),
    [(-1, 1, 16.0), (1, 2, 2 ** (3 / 2)), (3, -1, 1.0), (3, -8, 2 ** (-7 / 8)), (0, 9, 1024.0)],
)
def test_exponential_bucket_bound_is_base_to_index_plus_one(
    attrs: Attrs, scale: int, offset: int, upper: float
) -> None:
    metric = exponential(
        scale=scale, count=1, positive=pb.ExponentialHistogramDataPoint.Buckets(offset=offset, bucket_counts=[1])
    )
    buckets = exp_buckets(attrs, metric)
    assert float(buckets[1][0]) == pytest.approx(upper, rel=1e-12)
    assert buckets[0] == ("0.0", 0.0) and buckets[-1] == ("+Inf", 1.0)


def test_exponential_zero_threshold_is_the_zero_bucket_bound(attrs: Attrs) -> None:
    metric = exponential(scale=0, count=2, zero_count=2, zero_threshold=0.5)
    assert exp_buckets(attrs, metric) == [("0.5", 2.0), ("+Inf", 2.0)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scale": 21, "count": 0}, "scale 21 is outside -10..20"),
        ({"scale": 0, "count": 0, "zero_threshold": -1.0}, "zero_threshold"),
        (
            {
                "scale": 0,
                "count": 1,
                "positive": pb.ExponentialHistogramDataPoint.Buckets(offset=5000, bucket_counts=[1]),
            },
            "beyond the range of a double",
        ),
        ({"scale": 0, "count": 1, "zero_count": 2}, "add up to more than"),
    ],
)
def test_invalid_exponential_histograms_are_refused(attrs: Attrs, fields: dict[str, Any], message: str) -> None:
    assert message in refused(request(attrs, exponential(**fields))).message


# Summaries -------------------------------------------------------------------------------------------


def summary(*quantiles: tuple[float, float], count: int = 10, total: float = 5.0, flags: int = 0) -> pb.Metric:
    data = pb.SummaryDataPoint(
        time_unix_nano=NOW_NS,
        count=count,
        sum=total,
        flags=flags,
        quantile_values=[pb.SummaryDataPoint.ValueAtQuantile(quantile=q, value=v) for q, v in quantiles],
    )
    return pb.Metric(name="rpc.duration", summary=pb.Summary(data_points=[data]))


def test_summary_becomes_quantile_sum_and_count_series(attrs: Attrs) -> None:
    got = by_name(normalize(request(attrs, summary((0.5, 0.2), (0.99, 1.5)))))
    assert [(s[1]["quantile"], s[4]) for s in got["rpc_duration"]] == [("0.5", 0.2), ("0.99", 1.5)]
    assert [s[4] for s in got["rpc_duration_sum"]] == [5.0] and [s[4] for s in got["rpc_duration_count"]] == [10.0]
    assert {s[2] for series in got.values() for s in series} == {"summary"}


def test_summary_quantile_without_observations_is_skipped_not_refused(attrs: Attrs) -> None:
    got = by_name(normalize(request(attrs, summary((0.5, math.nan), count=0, total=0.0))))
    assert "rpc_duration" not in got and [s[4] for s in got["rpc_duration_count"]] == [0.0]


def test_summary_quantile_outside_unit_interval_is_refused(attrs: Attrs) -> None:
    assert "quantile 1.5 is outside 0..1" in refused(request(attrs, summary((1.5, 1.0)))).message


# Stale markers, invalid values -----------------------------------------------------------------------

STALE_BITS = 0x7FF0000000000002
NO_RECORDED_VALUE = pb.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK


def test_no_recorded_value_flag_becomes_the_prometheus_stale_marker_bit_for_bit(attrs: Attrs) -> None:
    builder = normalize(request(attrs, gauge("up", point(0.0, flags=NO_RECORDED_VALUE))))
    (only,) = MetricBatch.decode(builder.build().encode()).value.tolist()
    assert bits(only) == STALE_BITS


def test_stale_histogram_point_marks_every_series_stale(attrs: Attrs) -> None:
    metric = histogram(count=0, sum=0.0, explicit_bounds=[1.0], bucket_counts=[0, 0], flags=NO_RECORDED_VALUE)
    values = [s[4] for s in samples(normalize(request(attrs, metric)))]
    assert len(values) == 4 and all(bits(v) == STALE_BITS for v in values)


@pytest.mark.parametrize(
    ("value", "message"),
    [(math.nan, "value NaN is not accepted"), (math.inf, "value +Inf"), (-math.inf, "value -Inf")],
)
def test_nan_and_infinite_values_are_refused(attrs: Attrs, value: float, message: str) -> None:
    error = refused(request(attrs, gauge("cpu", point(value))))
    assert error.status_code == 400 and message in error.message and "cpu{" in error.message


def test_point_without_value_is_refused(attrs: Attrs) -> None:
    empty = pb.NumberDataPoint(time_unix_nano=NOW_NS)
    assert "has no value" in refused(request(attrs, gauge("cpu", empty))).message


# Timestamps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts_ns", "message"),
    [
        (0, "timestamp 0 is not a valid time"),
        (NOW_NS + 601 * 10**9, "ahead of the server clock"),
        (NOW_NS - int(Limits().max_sample_age_s + 86_400) * 10**9, "older than the accepted"),
    ],
)
def test_out_of_window_timestamps_are_refused(attrs: Attrs, ts_ns: int, message: str) -> None:
    assert message in refused(request(attrs, gauge("cpu", point(1.0, ts_ns)))).message


def test_window_edges_follow_the_limits(attrs: Attrs) -> None:
    limits = Limits(max_future_skew_s=10, max_sample_age_s=60)
    edges = gauge("cpu", point(1.0, NOW_NS + 10 * 10**9), point(2.0, NOW_NS - 60 * 10**9))
    assert [s[3] for s in samples(normalize(request(attrs, edges), limits))] == [NOW_MS + 10_000, NOW_MS - 60_000]
    assert "ahead" in refused(request(attrs, gauge("cpu", point(1.0, NOW_NS + 11 * 10**9))), limits).message


# Labels ----------------------------------------------------------------------------------------------


def test_resource_scope_and_point_attributes_become_labels(attrs: Attrs) -> None:
    resource = {
        "service.name": "checkout",
        "service.namespace": "shop",
        "service.instance.id": "pod-7",
        "deployment.environment": "prod",
        "host.name": "node-3",
        "k8s.pod.name": "checkout-5d9",
        "cloud.availability_zone": "eu-west-1a",
    }
    point_attrs = attrs({"http.route": "/pay", "retry": True, "code": 503, "ratio": 0.25, "tags": ["a", 1]})
    req = request(attrs, gauge("cpu", point(1.0, attributes=point_attrs)), resource=resource, scope={"lib.tier": "x"})
    ((_, labels, *_),) = samples(normalize(req))
    assert labels == {
        "service": "checkout",
        "namespace": "shop",
        "instance": "pod-7",
        "env": "prod",
        "host": "node-3",
        "k8s_pod_name": "checkout-5d9",
        "cloud_availability_zone": "eu-west-1a",
        "lib_tier": "x",
        "http_route": "/pay",
        "retry": "true",
        "code": "503",
        "ratio": "0.25",
        "tags": '["a",1]',
    }


def test_map_and_bytes_attributes_are_rendered_as_json_and_base64(attrs: Attrs) -> None:
    point_attrs = attrs({"owner": {"team": "pay", "oncall": ["ann"]}, "blob": b"\x00\xff"})
    ((_, labels, *_),) = samples(normalize(request(attrs, gauge("cpu", point(1.0, attributes=point_attrs)))))
    assert labels["owner"] == '{"team":"pay","oncall":["ann"]}' and labels["blob"] == "AP8="


def test_point_attributes_override_resource_attributes(attrs: Attrs) -> None:
    req = request(attrs, gauge("cpu", point(1.0, attributes=attrs({"host.name": "n2"}))), resource={"host.name": "n1"})
    ((_, labels, *_),) = samples(normalize(req))
    assert labels == {"host": "n1", "host_name": "n2"}  # resource host.name maps to host; a point's stays host_name


def test_enricher_adds_service_metadata_without_overwriting_sent_labels(attrs: Attrs) -> None:
    enricher = Enricher.from_mapping({"checkout": {"team": "payments", "env": "staging", "tier": 1}})
    req = request(
        attrs,
        gauge("cpu", point(1.0), point(2.0, NOW_NS - 10**9, attributes=attrs({"team": "sre"}))),
        resource={"service.name": "checkout", "deployment.environment": "prod"},
    )
    builder = normalize_otlp_metrics(req, Limits(), enricher, 1, now_ms=NOW_MS)
    first, second = (s[1] for s in samples(builder))
    assert first == {"service": "checkout", "env": "prod", "team": "payments", "tier": "1"}
    assert second == {"service": "checkout", "env": "prod", "team": "sre", "tier": "1"}


def test_enricher_leaves_other_services_alone(attrs: Attrs) -> None:
    enricher = Enricher.from_mapping({"billing": {"team": "finance"}})
    builder = normalize_otlp_metrics(request(attrs, gauge("cpu", point(1.0))), Limits(), enricher, 1, now_ms=NOW_MS)
    assert samples(builder)[0][1] == {"service": "checkout"}


@pytest.mark.parametrize(
    ("limits", "attributes", "message"),
    [
        (Limits(max_labels_per_series=3), {"a": "1", "b": "2", "c": "3"}, "4 labels, more than the limit of 3"),
        (
            Limits(max_label_value_length=8),
            {"path": "/checkout/pay"},
            "value of 13 characters, more than the limit of 8",
        ),
        (Limits(max_label_name_length=5), {"verylongname": "x"}, "more than the limit of 5"),
        (Limits(), {"__meta": "x"}, "reserved"),
        (Limits(), {"": "x"}, "empty label name"),
    ],
)
def test_label_limits_are_enforced(attrs: Attrs, limits: Limits, attributes: dict[str, str], message: str) -> None:
    req = request(attrs, gauge("cpu", point(1.0, attributes=attrs(attributes))))
    assert message in refused(req, limits).message


def test_attributes_mapping_to_one_label_with_different_values_are_refused(attrs: Attrs) -> None:
    req = request(attrs, gauge("cpu", point(1.0, attributes=attrs({"a.b": "1", "a_b": "2"}))))
    assert "map to label 'a_b' twice" in refused(req).message


def test_resource_keys_that_agree_on_one_label_are_accepted(attrs: Attrs) -> None:
    resource = {"service.name": "checkout", "deployment.environment": "prod", "deployment.environment.name": "prod"}
    assert samples(normalize(request(attrs, gauge("cpu", point(1.0)), resource=resource)))[0][1]["env"] == "prod"


# Whole-request refusal -------------------------------------------------------------------------------


def test_one_bad_point_refuses_the_request_naming_the_first_offenders_and_the_count(attrs: Attrs) -> None:
    points = [point(float(i), attributes=attrs({"i": str(i)})) for i in range(3)]
    points += [point(math.nan, attributes=attrs({"i": f"bad{i}"})) for i in range(7)]
    error = refused(request(attrs, gauge("cpu", *points)))
    assert error.status_code == 400
    assert "7 of 10 data points invalid" in error.message
    assert error.message.count("value NaN") == 5 and "and 2 more" in error.message
    assert 'cpu{i="bad0",service="checkout"}' in error.message


def test_too_many_series_is_413(attrs: Attrs) -> None:
    points = [point(1.0, attributes=attrs({"i": str(i)})) for i in range(6)]
    error = refused(request(attrs, gauge("cpu", *points)), Limits(max_series_per_request=5))
    assert error.status_code == 413 and "more than 5 series" in error.message


def test_histogram_point_with_more_buckets_than_the_series_limit_is_413(attrs: Attrs) -> None:
    metric = histogram(count=1, explicit_bounds=[float(b) for b in range(1, 10)], bucket_counts=[0] * 9 + [1])
    error = refused(request(attrs, metric), Limits(max_series_per_request=5))
    assert error.status_code == 413 and "9 buckets, more than the limit of 5 series" in error.message


# Real SDK output -------------------------------------------------------------------------------------


def test_opentelemetry_sdk_export_normalizes_with_kinds_and_labels() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=SdkResource.create({"service.name": "cart", "deployment.environment": "prod"}),
        metric_readers=[reader],
        views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("test")
    meter.create_counter("orders").add(5, {"region": "eu"})
    meter.create_up_down_counter("queue.depth").add(3)
    latency = meter.create_histogram("latency", unit="s")
    for value in (0.1, 0.2, 3.0):
        latency.record(value)
    size = meter.create_histogram("payload.size")
    for value in (10.0, 100.0, 1000.0, 1000.0):
        size.record(value)
    data = reader.get_metrics_data()
    assert data is not None
    provider.shutdown()

    builder = normalize_otlp_metrics(encode_metrics(data), Limits(), Enricher(), 8, now_ms=None)
    got = by_name(builder)
    (orders,) = got["orders"]
    assert (orders[2], orders[4], orders[1]["region"], orders[1]["env"]) == ("counter", 5.0, "eu", "prod")
    assert [(s[2], s[4]) for s in got["queue_depth"]] == [("gauge", 3.0)]
    assert [s[4] for s in got["latency_count"]] == [3.0] and got["latency_sum"][0][4] == pytest.approx(3.3)
    latency_buckets = {float(s[1]["le"]): s[4] for s in got["latency_bucket"]}
    assert latency_buckets[0.0] == 0.0 and latency_buckets[5.0] == 3.0 and latency_buckets[math.inf] == 3.0
    size_buckets = sorted((float(s[1]["le"]), s[4]) for s in got["payload_size_bucket"])
    assert size_buckets[-1] == (math.inf, 4.0) and [s[4] for s in got["payload_size_count"]] == [4.0]
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(size_buckets))
    below_100 = max(v for b, v in size_buckets if b < 100.0)
    assert below_100 == 1.0  # only the 10.0 observation lies below 100


# The series cache ---------------------------------------------------------------------------------


def cached(req: ExportMetricsServiceRequest, cache: SeriesCache, enricher: Enricher | None = None) -> Any:
    body = parse_otlp_metrics(req.SerializeToString(), "application/x-protobuf")
    return normalize_otlp_metrics(body, Limits(), enricher or Enricher(), 4, now_ms=NOW_MS, cache=cache)


def refused_cached(req: ExportMetricsServiceRequest, cache: SeriesCache) -> InvalidPayloadError:
    with pytest.raises(InvalidPayloadError) as caught:
        cached(req, cache)
    return caught.value


def sdk_like(attrs: Attrs, value: float | int = 1.0, ts_ns: int = NOW_NS, pod: str = "p1", flags: int = 0) -> Any:
    """A gauge and a monotonic cumulative sum (whose points carry a start time), as SDKs send them."""
    labels = attrs({"http.method": "GET", "pod": pod})
    counter = pb.NumberDataPoint(start_time_unix_nano=NOW_NS - 10**12, time_unix_nano=ts_ns, attributes=labels)
    counter.as_int = int(value) if isinstance(value, int) else 5
    total = pb.Sum(aggregation_temporality=CUMULATIVE, is_monotonic=True, data_points=[counter])
    return request(
        attrs,
        gauge("cpu", point(value, ts_ns, attributes=labels, flags=flags)),
        pb.Metric(name="requests", sum=total),
    )


def test_an_otlp_series_seen_before_is_served_from_the_cache(attrs: Attrs) -> None:
    cache = SeriesCache(100)
    first = cached(sdk_like(attrs, 1.0), cache)
    assert len(cache) == 2
    second = cached(sdk_like(attrs, 2.0, NOW_NS + 10**9), cache)
    assert len(cache) == 2
    assert all(a is b for a, b in zip(first.build().series, second.build().series, strict=True))
    labels = {"service": "checkout", "http_method": "GET", "pod": "p1"}
    assert samples(second) == [
        ("cpu", labels, "gauge", NOW_MS + 1_000, 2.0),
        ("requests", labels, "counter", NOW_MS + 1_000, 5.0),
    ]


def test_a_changed_attribute_value_is_a_new_otlp_series(attrs: Attrs) -> None:
    cache = SeriesCache(100)
    cached(sdk_like(attrs, pod="p1"), cache)
    assert {s[1]["pod"] for s in samples(cached(sdk_like(attrs, pod="p2"), cache))} == {"p2"}
    assert len(cache) == 4


def test_another_resource_or_scope_is_another_otlp_series(attrs: Attrs) -> None:
    cache = SeriesCache(100)
    cached(request(attrs, gauge("cpu", point(1.0))), cache)
    other = cached(request(attrs, gauge("cpu", point(1.0)), resource={"service.name": "cart"}), cache)
    assert samples(other)[0][1] == {"service": "cart"}
    scoped = cached(request(attrs, gauge("cpu", point(1.0)), scope={"tier": "1"}), cache)
    assert samples(scoped)[0][1] == {"service": "checkout", "tier": "1"}


def test_a_bad_new_otlp_series_is_refused_every_time_and_never_cached(attrs: Attrs) -> None:
    cache = SeriesCache(100)
    bad = request(attrs, gauge("cpu", point(1.0, attributes=attrs({"a": "x" * 5000}))))
    for _ in range(2):
        assert "more than the limit of 4096" in refused_cached(bad, cache).message
    assert len(cache) == 0


def test_times_and_values_of_cached_otlp_series_are_still_checked(attrs: Attrs) -> None:
    cache = SeriesCache(100)
    cached(sdk_like(attrs), cache)
    assert "+Inf is not accepted" in refused_cached(sdk_like(attrs, math.inf), cache).message
    assert "value NaN is not accepted" in refused_cached(sdk_like(attrs, math.nan), cache).message
    assert "ahead of the server clock" in refused_cached(sdk_like(attrs, ts_ns=NOW_NS + 700 * 10**9), cache).message


def test_flagged_and_exemplar_points_of_cached_series_take_the_full_path(attrs: Attrs) -> None:
    cache = SeriesCache(100)
    cached(sdk_like(attrs), cache)
    stale = samples(cached(sdk_like(attrs, flags=pb.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK), cache))
    assert bits(stale[0][4]) == bits(STALE_NAN) and stale[1][4] == 5.0
    with_exemplar = sdk_like(attrs, 3.0)
    exemplar = with_exemplar.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars.add()
    exemplar.as_double, exemplar.time_unix_nano = 3.0, NOW_NS
    assert samples(cached(with_exemplar, cache))[0][4] == 3.0
    assert len(cache) == 2


def string_attributes(values: Mapping[str, object]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=str(v))) for k, v in values.items()]


number_values = st.sampled_from([0.0, -1.5, 7, 0, 2**62, math.inf, math.nan])
number_times = st.sampled_from([NOW_NS, NOW_NS - 1, 0, NOW_NS + 10**15, 1])


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["cpu", "mem.used", ""]),
            st.sampled_from(["gauge", "cumulative", "delta"]),
            st.dictionaries(
                st.sampled_from(["pod", "le", "bad key", "k.1"]), st.sampled_from(["a", "b", ""]), max_size=2
            ),
            st.lists(st.tuples(number_values, number_times, st.booleans(), st.booleans()), max_size=3),
        ),
        max_size=6,
    )
)
@settings(max_examples=200, deadline=None)
def test_the_cache_never_changes_an_otlp_outcome(entries: list[tuple[str, str, dict[str, str], list[Any]]]) -> None:
    metrics = []
    for name, data, labels, points in entries:
        built = []
        for value, ts_ns, stale, with_start in points:
            built.append(point(value, ts_ns, attributes=string_attributes(labels), flags=int(stale)))
            if with_start:
                built[-1].start_time_unix_nano = NOW_NS - 10**9
        if data == "gauge":
            metrics.append(gauge(name, *built))
        else:
            temporality = CUMULATIVE if data == "cumulative" else DELTA
            metrics.append(pb.Metric(name=name, sum=pb.Sum(aggregation_temporality=temporality, data_points=built)))
    body = request(string_attributes, *metrics).SerializeToString()

    def outcome(cache: SeriesCache | None) -> object:
        try:
            parsed = parse_otlp_metrics(body, "application/x-protobuf")
            builder = normalize_otlp_metrics(parsed, Limits(), Enricher(), 4, now_ms=NOW_MS, cache=cache)
        except InvalidPayloadError as exc:
            return (exc.status_code, exc.message)
        return [(name, labels, kind, ts, bits(value)) for name, labels, kind, ts, value in samples(builder)]

    cache = SeriesCache(1_000)
    reference = outcome(None)
    assert outcome(cache) == reference, "cold cache"
    assert outcome(cache) == reference, "warm cache"
