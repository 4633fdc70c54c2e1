"""OTLP metrics read from their bytes without parsing normalize exactly as the full protobuf path does."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from aiops_common.schemas import MetricBatchBuilder
from aiops_ingestion.normalize import (
    Enricher,
    InvalidPayloadError,
    Limits,
    SeriesCache,
    normalize_otlp_metrics,
    parse_otlp_metrics,
)
from aiops_ingestion.normalize import _otlp_metrics as otlp_metrics
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000
NOW_NS = NOW_MS * 1_000_000
CUMULATIVE = pb.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = pb.AGGREGATION_TEMPORALITY_DELTA
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
ENRICHER = Enricher.from_mapping({"checkout": {"team": "payments"}})
# Field 100 (varint 1), unknown to every OTLP message: ignored when parsed, but a metric or
# point that starts with it is not laid out as encoders write them, so it takes the full path.
UNKNOWN_FIELD = b"\xa0\x06\x01"


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: its tag, its length as a varint, its bytes."""
    out = bytearray()
    for value in ((number << 3) | 2, len(payload)):
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + payload


def _kv(values: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in values.items()]


def full_path_bytes(request: ExportMetricsServiceRequest) -> bytes:
    """``request`` serialized with every metric and number point starting with an unknown field."""
    resources = b""
    for resource_metrics in request.resource_metrics:
        scopes = b""
        for scope_metrics in resource_metrics.scope_metrics:
            metrics = b""
            for metric in scope_metrics.metrics:
                data = metric.WhichOneof("data")
                head = (
                    UNKNOWN_FIELD
                    + pb.Metric(name=metric.name, description=metric.description, unit=metric.unit).SerializeToString()
                )
                if data is None:
                    metrics += _field(2, head)
                    continue
                body = getattr(metric, data)
                if data in ("gauge", "sum"):
                    points = b"".join(_field(1, UNKNOWN_FIELD + p.SerializeToString()) for p in body.data_points)
                    rest = type(body)()
                    rest.CopyFrom(body)
                    rest.ClearField("data_points")
                    body_bytes = points + rest.SerializeToString()
                else:
                    body_bytes = body.SerializeToString()
                number = metric.DESCRIPTOR.fields_by_name[data].number
                metrics += _field(2, head + _field(number, body_bytes))
            scope = _field(1, scope_metrics.scope.SerializeToString()) if scope_metrics.HasField("scope") else b""
            scopes += _field(2, scope + metrics)
        resource = resource_metrics.resource.SerializeToString()
        resources += _field(1, _field(1, resource) + scopes)
    return resources


def outcome(body: bytes, cache: SeriesCache | None, limits: Limits | None = None) -> object:
    """The samples (values as bits) a body normalizes into, or the status and message it is refused with."""
    try:
        parsed = parse_otlp_metrics(body, "application/x-protobuf")
        builder = normalize_otlp_metrics(parsed, limits or Limits(), ENRICHER, 4, now_ms=NOW_MS, cache=cache)
    except InvalidPayloadError as exc:
        return (exc.status_code, exc.message)
    return rows(builder)


def rows(builder: MetricBatchBuilder) -> list[tuple[str, dict[str, str], str, str, int, int]]:
    return [
        (m.name, dict(m.labels), m.kind.value, m.unit, ts, struct.unpack("<Q", struct.pack("<d", v))[0])
        for m, ts, v in builder.build().samples()
    ]


def assert_same_as_full_path(request: ExportMetricsServiceRequest, limits: Limits | None = None) -> object:
    reference = outcome(full_path_bytes(request), None, limits)
    body = request.SerializeToString()
    cache = SeriesCache(1_000)
    assert outcome(body, cache, limits) == reference, "cold cache"
    assert outcome(body, cache, limits) == reference, "warm cache"
    assert outcome(full_path_bytes(request), cache, limits) == reference, "full path, warm cache"
    return reference


def test_the_full_path_encoding_parses_into_the_same_request() -> None:
    point = pb.NumberDataPoint(time_unix_nano=NOW_NS, as_double=1.5, attributes=_kv({"pod": "a"}))
    metric = pb.Metric(name="cpu", unit="1", gauge=pb.Gauge(data_points=[point]))
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            pb.ResourceMetrics(
                resource=Resource(attributes=_kv({"service.name": "checkout"})),
                scope_metrics=[pb.ScopeMetrics(scope=InstrumentationScope(name="lib"), metrics=[metric])],
            )
        ]
    )
    encoded = full_path_bytes(request)
    assert encoded != request.SerializeToString()
    parsed = ExportMetricsServiceRequest.FromString(encoded)
    parsed.DiscardUnknownFields()
    assert parsed == request


# A long description takes two bytes of length; a long name sends the metric the full way.
names = st.sampled_from(["cpu", "cpu", "http.server.duration", "", "n" * 130, "9lives"])
descriptions = st.sampled_from(["", "CPU time", "d" * 200])
units = st.sampled_from(["", "s", "By"])
values = st.sampled_from([0.0, -1.5, 7, 0, -3, 2**62, math.inf, -math.inf, math.nan, STALE_NAN, 1e300])
times = st.sampled_from([NOW_NS, NOW_NS - 1, 0, NOW_NS + 10**15, 1, NOW_NS - 8 * 86_400 * 10**9])
# Few enough that generated requests send one series with other kinds, units, values and flags.
attribute_sets = st.sampled_from(
    [
        {},
        {"pod": "a"},
        {"pod": "a", "k.1": "b"},
        {"k.1": "a", "k_1": "b"},  # two keys, one label: refused
        {"le": "1"},
        {"bad key": "a"},
        {"pod": "x" * 5000},
        {"v" * 300: "a"},
        {"service.name": "other"},
        {"pod": "y" * 100, "zone": "z" * 100},
    ]
)


@st.composite
def number_points(draw: Any) -> pb.NumberDataPoint:
    point = pb.NumberDataPoint(time_unix_nano=draw(times), attributes=_kv(draw(attribute_sets)))
    value = draw(values)
    if draw(st.booleans()):  # a point may have no value at all
        if isinstance(value, int):
            point.as_int = value
        else:
            point.as_double = value
    if draw(st.booleans()):
        point.start_time_unix_nano = draw(st.sampled_from([NOW_NS - 10**12, 1]))
    point.flags = draw(st.sampled_from([0, 0, 0, pb.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK, 2]))
    if draw(st.integers(0, 5)) == 0:
        point.exemplars.add(time_unix_nano=NOW_NS, as_double=1.0)
    return point


@st.composite
def metrics(draw: Any) -> pb.Metric:
    metric = pb.Metric(name=draw(names), description=draw(descriptions), unit=draw(units))
    # Mostly one point, as SDKs send them: the metrics read without parsing.
    points = draw(st.lists(number_points(), min_size=1, max_size=1) | st.lists(number_points(), max_size=3))
    data = draw(st.sampled_from(["gauge", "sum", "sum", "histogram", "summary", "none"]))
    if data == "gauge":
        metric.gauge.data_points.extend(points)
    elif data == "sum":
        metric.sum.data_points.extend(points)
        metric.sum.aggregation_temporality = draw(st.sampled_from([CUMULATIVE, DELTA, 0]))
        metric.sum.is_monotonic = draw(st.booleans())
    elif data == "histogram":
        metric.histogram.aggregation_temporality = CUMULATIVE
        metric.histogram.data_points.add(
            time_unix_nano=NOW_NS, count=3, sum=2.0, explicit_bounds=[1.0], bucket_counts=[1, 2]
        )
    elif data == "summary":
        metric.summary.data_points.add(time_unix_nano=NOW_NS, count=1, sum=1.0)
    return metric


resources = st.sampled_from([{"service.name": "checkout"}, {"service.name": "checkout"}, {"host.name": "h1"}, {}])
scopes = st.sampled_from([{}, {}, {"tier": "1"}, {"service.name": "checkout"}])


def requests_of(groups: Sequence[tuple[dict[str, str], dict[str, str], list[pb.Metric]]]) -> Any:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            pb.ResourceMetrics(
                resource=Resource(attributes=_kv(resource)),
                scope_metrics=[
                    pb.ScopeMetrics(scope=InstrumentationScope(name="lib", attributes=_kv(scope)), metrics=ms)
                ],
            )
            for resource, scope, ms in groups
        ]
    )


Groups = list[tuple[dict[str, str], dict[str, str], list[pb.Metric]]]
groups_of_metrics = st.lists(st.tuples(resources, scopes, st.lists(metrics(), max_size=6)), max_size=3)


@given(groups_of_metrics)
@settings(max_examples=300, deadline=None)
def test_generated_requests_normalize_as_on_the_full_path(groups: Groups) -> None:
    assert_same_as_full_path(requests_of(groups))


@given(st.lists(groups_of_metrics, min_size=2, max_size=4))
@settings(max_examples=300, deadline=None)
def test_requests_after_one_another_normalize_as_on_the_full_path(requests: list[Groups]) -> None:
    cache = SeriesCache(1_000)
    for groups in requests:
        request = requests_of(groups)
        assert outcome(request.SerializeToString(), cache) == outcome(full_path_bytes(request), None)


def sdk_metrics(value: float | int, ts_ns: int, pods: Sequence[str]) -> Any:
    """Gauges and sums of one point each, with and without start times and attributes, as SDKs send them."""
    out = []
    for i, pod in enumerate(pods):
        attributes = _kv({"pod": pod, "method": "GET"}) if i % 3 else []
        gauge_point = pb.NumberDataPoint(time_unix_nano=ts_ns, attributes=attributes)
        sum_point = pb.NumberDataPoint(
            start_time_unix_nano=NOW_NS - 10**12, time_unix_nano=ts_ns, attributes=attributes
        )
        if isinstance(value, int):
            gauge_point.as_int, sum_point.as_int = value, value
        else:
            gauge_point.as_double, sum_point.as_double = value, value
        out.append(pb.Metric(name=f"mem.{i}", unit="By", gauge=pb.Gauge(data_points=[gauge_point])))
        total = pb.Sum(aggregation_temporality=CUMULATIVE, is_monotonic=True, data_points=[sum_point])
        out.append(pb.Metric(name=f"requests.{i}", description="Requests served", sum=total))
    return out


@pytest.mark.parametrize("value", [1.5, 42, STALE_NAN, 0.0, 0])
def test_sdk_like_requests_take_the_fast_path_and_match_the_full_path(
    value: float | int, monkeypatch: pytest.MonkeyPatch
) -> None:
    pods = [f"pod-{i:03d}" * (1 + i % 9) for i in range(40)]
    request = requests_of([({"service.name": "checkout"}, {}, sdk_metrics(value, NOW_NS, pods))])
    reference = assert_same_as_full_path(request)
    assert isinstance(reference, list) and len(reference) == 80
    cache = SeriesCache(1_000)
    outcome(request.SerializeToString(), cache)
    assert len(cache) == 80
    parsed: list[type] = []
    parse = otlp_metrics._parse

    def counted(kind: type, data: bytes) -> Any:
        parsed.append(kind)
        return parse(kind, data)

    monkeypatch.setattr(otlp_metrics, "_parse", counted)
    later = requests_of([({"service.name": "checkout"}, {}, sdk_metrics(value, NOW_NS + 15 * 10**9, pods))])
    again = outcome(later.SerializeToString(), cache)
    assert len(cache) == 80
    assert parsed == [Resource, InstrumentationScope]  # no metric and no point parsed: all found in the cache
    assert again == outcome(full_path_bytes(later), None)


def test_refusals_of_cached_series_match_the_full_path() -> None:
    pods = ["a", "b", "c", "d"]
    cache = SeriesCache(1_000)
    outcome(
        requests_of([({"service.name": "checkout"}, {}, sdk_metrics(1.0, NOW_NS, pods))]).SerializeToString(), cache
    )
    for value, ts_ns in [(math.nan, NOW_NS), (math.inf, NOW_NS), (1.0, NOW_NS + 10**15), (1.0, 0)]:
        request = requests_of([({"service.name": "checkout"}, {}, sdk_metrics(value, ts_ns, pods))])
        refused = outcome(request.SerializeToString(), cache)
        assert isinstance(refused, tuple) and refused[0] == 400
        assert refused == outcome(full_path_bytes(request), None)


def test_too_many_series_is_413_on_both_paths() -> None:
    request = requests_of([({"service.name": "checkout"}, {}, sdk_metrics(1.0, NOW_NS, ["a", "b", "c"]))])
    reference = assert_same_as_full_path(request, Limits(max_series_per_request=4))
    assert isinstance(reference, tuple) and reference[0] == 413


@pytest.mark.parametrize(
    "tail",
    [
        b"\x10\x02\x18\x01",  # temporality then monotonicity, as encoders write them
        b"\x18\x01\x10\x02",  # the other way round
        b"\x10\x01",  # delta
        b"\x10\x02\x18\x01\x10\x01",  # temporality sent twice: the last one counts
        b"\x10\x02" + _field(1, b"\x19" + NOW_NS.to_bytes(8, "little") + b"\x31\x07" + bytes(7)),  # a second point
        b"\x10\x02\x0a\x0b\x19" + NOW_NS.to_bytes(8, "little") + b"\x21",  # a second, truncated point
    ],
)
def test_sum_fields_after_the_point_are_read_as_the_full_path_reads_them(tail: bytes) -> None:
    point = pb.NumberDataPoint(time_unix_nano=NOW_NS, as_double=2.0, attributes=_kv({"pod": "a"})).SerializeToString()
    body = _field(1, point) + tail
    metric = _field(1, b"cpu") + _field(7, body)
    scope = _field(2, metric)
    resource = _field(1, Resource(attributes=_kv({"service.name": "checkout"})).SerializeToString())
    raw_request = _field(1, resource + _field(2, scope))
    full = _field(1, resource + _field(2, _field(2, UNKNOWN_FIELD + metric)))
    cache = SeriesCache(100)
    reference = outcome(full, None)
    assert outcome(raw_request, cache) == reference
    assert outcome(raw_request, cache) == reference


def scope_bytes(*raw_metrics: bytes) -> bytes:
    resource = _field(1, Resource(attributes=_kv({"service.name": "checkout"})).SerializeToString())
    return _field(1, resource + _field(2, b"".join(_field(2, m) for m in raw_metrics)))


@pytest.mark.parametrize("start_time", [False, True])
def test_bytes_outside_a_cached_series_key_are_checked_as_the_full_path_checks_them(start_time: bool) -> None:
    """Every byte of the cut (start time, time, value and their tags) changed in turn, after the series is cached."""
    point = pb.NumberDataPoint(time_unix_nano=NOW_NS, as_double=2.0, attributes=_kv({"pod": "a"}))
    if start_time:
        point.start_time_unix_nano = NOW_NS - 10**9
    for data in ("gauge", "sum"):
        metric = pb.Metric(name="cpu", unit="s")
        getattr(metric, data).data_points.append(point)
        if data == "sum":
            metric.sum.aggregation_temporality = CUMULATIVE
        raw = metric.SerializeToString()
        start = raw.index(b"\x19" if not start_time else b"\x11")
        cache = SeriesCache(100)
        assert isinstance(outcome(scope_bytes(raw), cache), list)
        for at in range(start, start + (27 if start_time else 18)):
            for byte in (0x00, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x7F, 0xFF, raw[at] ^ 0x01):
                changed = raw[:at] + bytes([byte]) + raw[at + 1 :]
                expected = outcome(scope_bytes(UNKNOWN_FIELD + changed), None)
                assert outcome(scope_bytes(changed), cache) == expected, (data, at, byte)


def test_a_series_sent_with_another_kind_gets_that_kind() -> None:
    """The sum's temporality and monotonicity follow its point: part of the key, as the name and unit before it."""
    point = pb.NumberDataPoint(time_unix_nano=NOW_NS, as_int=3, attributes=_kv({"pod": "a"}))
    sums = [
        pb.Sum(aggregation_temporality=CUMULATIVE, is_monotonic=True, data_points=[point]),
        pb.Sum(aggregation_temporality=DELTA, is_monotonic=True, data_points=[point]),
        pb.Sum(aggregation_temporality=CUMULATIVE, data_points=[point]),
        pb.Sum(data_points=[point]),
    ]
    cache = SeriesCache(100)
    kinds = []
    for total in [*sums, *sums]:
        request = requests_of([({"service.name": "checkout"}, {}, [pb.Metric(name="jobs", sum=total)])])
        result = outcome(request.SerializeToString(), cache)
        assert result == outcome(full_path_bytes(request), None)
        assert isinstance(result, list | tuple)
        kinds.append(result[0][2] if isinstance(result, list) else result[0])
    assert kinds == ["counter", "delta", "gauge", 400] * 2


@pytest.mark.parametrize("data", ["gauge", "sum"])
def test_a_metric_whose_lengths_do_not_add_up_is_refused_though_its_key_is_cached(data: str) -> None:
    point = pb.NumberDataPoint(time_unix_nano=NOW_NS, as_double=2.0, attributes=_kv({"pod": "a"}))
    metric = pb.Metric(name="cpu")
    getattr(metric, data).data_points.append(point)
    if data == "sum":
        metric.sum.aggregation_temporality = CUMULATIVE
    raw = metric.SerializeToString()
    cache = SeriesCache(100)
    assert isinstance(outcome(scope_bytes(raw), cache), list)
    start = raw.index(b"\x19")
    # A start time put in front of the time, the lengths before it left as they were.
    longer = raw[:start] + b"\x11" + NOW_NS.to_bytes(8, "little") + raw[start:]
    refused = outcome(scope_bytes(longer), cache)
    assert isinstance(refused, tuple) and refused[0] == 400
    assert refused == outcome(scope_bytes(UNKNOWN_FIELD + longer), None)
