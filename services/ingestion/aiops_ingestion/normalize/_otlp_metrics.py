"""OTLP metrics of every type into flat Prometheus-style series in a metric batch."""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import operator
import struct
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, TypeVar, cast

import numpy as np
from aiops_common.schemas import MetricBatchBuilder, MetricKind, SeriesMeta, series_key
from aiops_common.schemas.prometheus_names import prometheus_name
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from aiops_ingestion.normalize._enricher import Enricher
from aiops_ingestion.normalize._errors import InvalidPayloadError, Refused, Rejections
from aiops_ingestion.normalize._labels import LabelChecker
from aiops_ingestion.normalize._limits import Limits
from aiops_ingestion.normalize._otlp_attributes import AttributeConflict, attribute_labels, resource_labels
from aiops_ingestion.normalize._otlp_metrics_view import ExportMetricsView, MetricView, single_number_points
from aiops_ingestion.normalize._sample_values import STALE_NAN, value_problem
from aiops_ingestion.normalize._series_cache import SeriesCache

__all__ = ["normalize_otlp_metrics", "prometheus_name"]

_CUMULATIVE = pb.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA = pb.AGGREGATION_TEMPORALITY_DELTA
_NO_RECORDED_VALUE = pb.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_INF = math.inf
_MAX_U64 = 2**64 - 1
_SERIES_KEY = attrgetter("key")
_is_none = functools.partial(operator.is_, None)
# A number point's time (fixed64), the value's tag byte, and the value (double or sfixed64).
_TIME_AND_DOUBLE = struct.Struct("<Qxd")
_TIME_AND_INT = struct.Struct("<Qxq")

P = TypeVar("P", pb.NumberDataPoint, pb.HistogramDataPoint, pb.ExponentialHistogramDataPoint, pb.SummaryDataPoint)


def _bound_label(bound: float) -> str:
    """``le``/``quantile`` label values as Prometheus 3 writes them: ``0.5``, ``1.0``, ``+Inf``."""
    return "+Inf" if bound == _INF else repr(bound)


def normalize_otlp_metrics(
    request: Any,
    limits: Limits,
    enricher: Enricher,
    partitions: int,
    *,
    now_ms: int | None = None,
    cache: SeriesCache | None = None,
    rejections: Rejections | None = None,
) -> MetricBatchBuilder:
    """Every data point of an OTLP export request as samples of flat series.

    - gauge -> GAUGE; monotonic cumulative sum -> COUNTER; non-monotonic cumulative
      sum -> GAUGE; delta sum -> DELTA.
    - histogram -> ``<name>_bucket{le=...}`` (cumulative counts, ``le="+Inf"`` last),
      ``<name>_sum``, ``<name>_count``; kind HISTOGRAM, or DELTA for delta temporality.
    - exponential histogram -> the same three series, its buckets turned into ``le``
      bounds: positive bucket ``i`` ends at ``base**(i+1)``, negative bucket ``i`` at
      ``-base**i``, the zero bucket at ``zero_threshold``, ``base = 2**(2**-scale)``.
    - summary -> ``<name>{quantile=...}``, ``<name>_sum``, ``<name>_count``, SUMMARY;
      a quantile reported as NaN (a summary with no observations yet) is skipped.
    - a point flagged "no recorded value" becomes the Prometheus stale marker.

    Names: :func:`prometheus_name` (``http.server.duration`` -> ``http_server_duration``).
    Labels: resource attributes (``service.name`` -> ``service`` etc., see
    ``RESOURCE_LABELS``; any other key such as ``k8s.pod.name`` -> ``k8s_pod_name``),
    then scope attributes, then point attributes, later ones winning; then the
    enricher's labels for the service where not already set. Values: ints and
    doubles as floats, timestamps in milliseconds.

    ``request`` is what :func:`parse_otlp_metrics` returns (an
    :data:`ExportMetricsView`) or an ``ExportMetricsServiceRequest``. With a
    ``cache`` (one per server), a gauge or sum point whose series was seen before
    is found by its raw bytes instead of being labelled and checked again; its
    time and value are still checked. A metric of one such point, as SDKs send
    them, is found by its own bytes without its time and value.

    Invalid data points are counted in ``rejections``: with a partial one (see
    :class:`Rejections`) they are left out and the rest kept; by default any
    refuses the request.
    """
    if request.DESCRIPTOR is not ExportMetricsView.DESCRIPTOR:
        request = ExportMetricsView.FromString(request.SerializeToString())
    if cache is None:
        cache = SeriesCache(2 * limits.max_series_per_request)
    cache.bind(limits, enricher)
    # Each resource's scopes, each scope's metrics as their bytes (lists: quicker to walk than protobuf containers).
    raw_scopes = [
        [s.metrics[:] for s in resource_metrics.scope_metrics] for resource_metrics in request.resource_metrics
    ]
    writer = _Writer(
        limits,
        partitions,
        now_ms,
        cache,
        [m for scopes in raw_scopes for ms in scopes for m in ms],
        Rejections("data points") if rejections is None else rejections,
    )
    for resource_metrics, scopes in zip(request.resource_metrics, raw_scopes, strict=True):
        raw_resource = resource_metrics.resource
        try:
            resource = resource_labels(_parse(Resource, raw_resource).attributes)
        except AttributeConflict as exc:
            writer.reject_metrics("resource", str(exc), scopes)
            continue
        for scope_metrics, raw_metrics in zip(resource_metrics.scope_metrics, scopes, strict=True):
            raw_scope = scope_metrics.scope
            try:
                sender = {**resource, **attribute_labels(_parse(InstrumentationScope, raw_scope).attributes)}
            except AttributeConflict as exc:
                writer.reject_metrics("scope", str(exc), [raw_metrics])
                continue
            problem = writer.checker.problem(sender)
            if problem:
                writer.reject_metrics(series_key("resource", sender), problem, [raw_metrics])
                continue
            extra = {k: v for k, v in enricher.labels_for(sender.get("service", "")).items() if k not in sender}
            writer.metrics(raw_metrics, _Scope(sender, {**sender, **extra}, extra, (raw_resource, raw_scope)))
    return writer.finish()


M = TypeVar("M", bound=Message)


def _parse(message_type: type[M], data: bytes) -> M:
    try:
        return message_type.FromString(data)
    except DecodeError as exc:
        raise InvalidPayloadError(f"OTLP metrics: not a valid protobuf ExportMetricsServiceRequest: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Scope:
    sender: dict[str, str]  # resource + scope labels as sent
    labels: Mapping[str, str]  # ... plus the enricher's labels: for points without attributes
    extra: Mapping[str, str]  # the enricher's labels the sender did not set
    raw: tuple[bytes, bytes]  # the resource and scope as sent: part of each series' cache key


def _count_points(scopes: Iterable[Sequence[bytes]]) -> int:
    total = 0
    for raw_metrics in scopes:
        for raw in raw_metrics:
            metric = _parse(MetricView, raw)
            data = metric.WhichOneof("data")
            total += len(getattr(metric, data).data_points) if data else 1
    return total


class _Writer:
    """Checks each data point of one request and adds its samples to the builder."""

    def __init__(
        self,
        limits: Limits,
        partitions: int,
        now_ms: int | None,
        cache: SeriesCache,
        raw_metrics: Sequence[bytes],
        rejections: Rejections,
    ) -> None:
        self.builder = MetricBatchBuilder(partitions)
        self.window = limits.window(now_ms)
        self.min_ns, self.max_ns = self.window.min_ns, self.window.max_ns
        # The single number point of each metric of the request, in order (the next scope's from _next):
        # where it lies, whether its time and value are plainly fine, its time in ms and its value.
        found = single_number_points(raw_metrics)
        self.starts, self.cuts = found.start, found.cut
        ts_ns, value = found.ts_ns, found.value
        window = (ts_ns >= max(self.min_ns, 0)) & (ts_ns <= min(self.max_ns, _MAX_U64))
        self.fine: list[bool] = (window & np.isfinite(value)).tolist()
        self.ts_ms: list[int] = (ts_ns // 1_000_000).tolist()
        self.number_values: list[float] = value.tolist()
        self._next = 0
        # Samples of the single-point metrics of :meth:`metrics`, added to the builder in bulk.
        self.sids: list[int] = []
        self.times: list[int] = []
        self.values: list[float] = []
        self.cache = cache
        self.checker = LabelChecker(limits)
        self.rejections = rejections
        self.max_series = limits.max_series_per_request
        self.points = 0

    def reject_points(self, item: str, reason: str, count: int) -> None:
        self.points += count
        self.rejections.add(item, reason, count)

    def reject_metrics(self, item: str, reason: str, scopes: Sequence[Sequence[bytes]]) -> None:
        """Refuse every point of the metrics of ``scopes``, the next scopes of the request, for one reason."""
        self.reject_points(item, reason, _count_points(scopes))
        self._next += sum(map(len, scopes))

    def finish(self) -> MetricBatchBuilder:
        self.rejections.settle(self.points)
        self._flush()
        return self.builder

    def _flush(self) -> None:
        """Add the samples kept in :attr:`sids`, :attr:`times` and :attr:`values` to the builder, in order."""
        if self.sids:
            self.builder.extend(self.sids, self.times, self.values)
            self.sids.clear()
            self.times.clear()
            self.values.clear()
        if self.builder.series_count > self.max_series:
            self._too_many_series()

    def metrics(self, raw_metrics: Sequence[bytes], scope: _Scope) -> None:
        """The serialized metrics of the request's next scope.

        A gauge or sum of one number point laid out as encoders write it (see
        :func:`single_number_points`) is found in the cache by its bytes without the
        point's start time, time and value, whose time and value are read from their
        fixed places. Any other metric, and one whose key is new, is parsed (see
        :meth:`_new_metric` and :meth:`metric`).
        """
        first = self._next
        self._next = last = first + len(raw_metrics)
        starts, cuts, scope_raw = self.starts[first:last], self.cuts[first:last], scope.raw
        keys = [(scope_raw, raw[:start], raw[cut:]) for raw, start, cut in zip(raw_metrics, starts, cuts, strict=True)]
        metas = self.cache.get_many(keys)
        fine, times, values = self.fine[first:last], self.ts_ms[first:last], self.number_values[first:last]
        series_id = self.builder.series_id
        self.points += len(raw_metrics)
        if all(fine) and not any(map(_is_none, metas)):
            # Every metric of the scope found in the cache, every time and value fine: no loop in Python.
            cached = cast(list[SeriesMeta], metas)
            self.sids.extend(map(series_id, cached, map(_SERIES_KEY, cached)))
            self.times.extend(times)
            self.values.extend(values)
            self._flush()
            return
        for raw, start, cut, key, meta, ok, ts_ms, value in zip(
            raw_metrics, starts, cuts, keys, metas, fine, times, values, strict=True
        ):
            if meta is None:
                if not start:  # laid out otherwise: the full path
                    self.points -= 1
                    self._flush()
                    self.metric(_parse(MetricView, raw), scope)
                    continue
                meta = self._new_metric(key, raw, start, cut, scope)
                if meta is None:
                    continue
            if ok:
                self.sids.append(series_id(meta, meta.key))
                self.times.append(ts_ms)
                self.values.append(value)
            else:
                self._odd_sample(meta, int.from_bytes(raw[cut - 17 : cut - 9], "little"), value)
        self._flush()

    def _new_metric(
        self, key: tuple[tuple[bytes, bytes], bytes, bytes], raw: bytes, start: int, cut: int, scope: _Scope
    ) -> SeriesMeta | None:
        """The series of a single-point metric whose key is new, checked and cached; None after the full path."""
        meta = self.cache.get(key)  # sent twice in this request
        if meta is not None:
            return meta
        self._flush()
        metric = _parse(MetricView, raw)
        data = metric.WhichOneof("data")
        points = getattr(metric, data).data_points
        name = prometheus_name(metric.name)
        kind: MetricKind | None = MetricKind.GAUGE
        if data == "sum":
            temporality = metric.sum.aggregation_temporality
            if temporality == _DELTA:
                kind = MetricKind.DELTA
            elif temporality != _CUMULATIVE:
                kind = None
            elif metric.sum.is_monotonic:
                kind = MetricKind.COUNTER
        point_end = start + len(points[0]) if points else 0
        if len(points) != 1 or raw[start:point_end] != points[0] or not name or kind is None:
            self.points -= 1
            self.metric(metric, scope)
            return None
        return self._new_number_series(key, name, points[0], raw[cut:point_end], scope, kind, metric.unit)

    def _odd_sample(self, meta: SeriesMeta, ts_ns: int, value: float) -> None:
        """A sample of a cached series whose time or value is not plainly fine: refused, or a stale marker kept."""
        if not self.min_ns <= ts_ns <= self.max_ns:
            self.rejections.add(meta.key, self.window.problem_ns(ts_ns) or "timestamp out of range")
        elif problem := value_problem(value):
            self.rejections.add(meta.key, problem)
        else:
            self.sids.append(self.builder.series_id(meta, meta.key))
            self.times.append(ts_ns // 1_000_000)
            self.values.append(value)

    def metric(self, metric: pb.Metric, scope: _Scope) -> None:
        name = prometheus_name(metric.name)
        data = metric.WhichOneof("data")
        if data is None:
            self.reject_points(name or "(unnamed metric)", "metric has no data (gauge, sum, histogram...)", 1)
            return
        points = getattr(metric, data).data_points
        if not name:
            self.reject_points("(unnamed metric)", "metric name is empty", len(points))
            return
        unit = metric.unit
        if data == "gauge":
            self._numbers(name, points, scope, MetricKind.GAUGE, unit)
        elif data == "sum":
            temporality = metric.sum.aggregation_temporality
            if temporality == _CUMULATIVE:
                kind = MetricKind.COUNTER if metric.sum.is_monotonic else MetricKind.GAUGE
            elif temporality == _DELTA:
                kind = MetricKind.DELTA
            else:
                self.reject_points(name, "sum has no aggregation temporality (cumulative or delta)", len(points))
                return
            self._numbers(name, points, scope, kind, unit)
        elif data == "summary":
            self._points(name, points, scope, self._summary, MetricKind.SUMMARY, unit)
        else:
            temporality = getattr(metric, data).aggregation_temporality
            if temporality not in (_CUMULATIVE, _DELTA):
                self.reject_points(name, f"{data} has no aggregation temporality (cumulative or delta)", len(points))
                return
            kind = MetricKind.HISTOGRAM if temporality == _CUMULATIVE else MetricKind.DELTA
            emit = self._histogram if data == "histogram" else self._exponential
            self._points(name, points, scope, emit, kind, unit)

    def _numbers(self, name: str, points: Sequence[bytes], scope: _Scope, kind: MetricKind, unit: str) -> None:
        """The serialized points of a gauge or sum.

        A point laid out as encoders write it, its time and value first and its
        attributes after, has its attribute bytes looked up in the cache; a new
        series, or a point with flags or exemplars, is parsed and checked in full.
        """
        self.points += len(points)
        metric_key = (scope.raw, name, kind, unit)
        lookup, series_id, append = self.cache.get, self.builder.series_id, self.builder.append
        min_ns, max_ns = self.min_ns, self.max_ns
        for raw in points[:]:  # a list is quicker to walk than the protobuf container
            # Fields in number order: [start time (tag 0x11)], time (0x19), then the value,
            # a double (0x21) or an int (0x31), each 8 bytes; the attributes follow.
            head = 18 if raw[:1] == b"\x19" else 27 if raw[:1] == b"\x11" and raw[9:10] == b"\x19" else 0
            value_tag = raw[head - 9 : head - 8] if len(raw) >= head > 0 else b""
            if value_tag != b"\x21" and value_tag != b"\x31":
                self._point(name, _parse(NumberDataPoint, raw), scope, self._number, kind, unit)
                continue
            key = (metric_key, raw[head:])
            meta = lookup(key)
            if meta is None:
                meta = self._new_number_series(key, name, raw, key[1], scope, kind, unit)
                if meta is None:
                    continue
            ts_ns, value = (_TIME_AND_DOUBLE if value_tag == b"\x21" else _TIME_AND_INT).unpack_from(raw, head - 17)
            if not min_ns <= ts_ns <= max_ns:
                self.rejections.add(meta.key, self.window.problem_ns(ts_ns) or "timestamp out of range")
            elif value - value != 0.0 and (problem := value_problem(value)):  # NaN or an infinity
                self.rejections.add(meta.key, problem)
            else:
                append(series_id(meta, meta.key), ts_ns // 1_000_000, float(value))
        if self.builder.series_count > self.max_series:
            self._too_many_series()

    def _new_number_series(
        self, key: Hashable, name: str, raw: bytes, rest: bytes, scope: _Scope, kind: MetricKind, unit: str
    ) -> SeriesMeta | None:
        """The series of point ``raw`` whose bytes after its time and value (``rest``) are new: checked, cached.

        Only bytes that parse on their own into attributes alone make a key: a point
        with flags or exemplars after its attributes goes the full way, as does a
        refused one; None then.
        """
        attributes_only = None
        with contextlib.suppress(DecodeError):
            attributes_only = NumberDataPoint.FromString(rest)
        if attributes_only is None or len(attributes_only.ListFields()) > bool(attributes_only.attributes):
            self._point(name, _parse(NumberDataPoint, raw), scope, self._number, kind, unit)
            return None
        try:
            labels = self._labels(scope, attributes_only.attributes) if attributes_only.attributes else scope.labels
        except Refused as exc:
            self.rejections.add(name, str(exc))
            return None
        meta = SeriesMeta(name, labels, kind, unit)
        self.cache.put(key, meta)
        return meta

    def _too_many_series(self) -> None:
        raise InvalidPayloadError(
            f"request has more than {self.max_series} series (the limit per request); send smaller batches", 413
        )

    def _points(
        self,
        name: str,
        points: Sequence[P],
        scope: _Scope,
        emit: Callable[[str, Mapping[str, str], int, P, MetricKind, str], None],
        kind: MetricKind,
        unit: str,
    ) -> None:
        self.points += len(points)
        for point in points:
            self._point(name, point, scope, emit, kind, unit)
            if self.builder.series_count > self.max_series:
                self._too_many_series()

    def _point(
        self,
        name: str,
        point: P,
        scope: _Scope,
        emit: Callable[[str, Mapping[str, str], int, P, MetricKind, str], None],
        kind: MetricKind,
        unit: str,
    ) -> None:
        labels: Mapping[str, str] | None = None
        try:
            attributes = point.attributes
            labels = self._labels(scope, attributes) if attributes else scope.labels
            ts_ns = point.time_unix_nano
            if not self.min_ns <= ts_ns <= self.max_ns:
                raise Refused(self.window.problem_ns(ts_ns) or "timestamp out of range")
            emit(name, labels, ts_ns // 1_000_000, point, kind, unit)
        except Refused as exc:
            self.rejections.add(series_key(name, labels) if labels is not None else name, str(exc))

    def _labels(self, scope: _Scope, attributes: Sequence[KeyValue]) -> Mapping[str, str]:
        try:
            labels = scope.sender | attribute_labels(attributes)
        except AttributeConflict as exc:
            raise Refused(str(exc)) from None
        problem = self.checker.problem(labels)
        if problem:
            raise Refused(problem)
        for key, value in scope.extra.items():
            labels.setdefault(key, value)
        return labels

    def _number(
        self, name: str, labels: Mapping[str, str], ts: int, point: pb.NumberDataPoint, kind: MetricKind, unit: str
    ) -> None:
        if point.flags & _NO_RECORDED_VALUE:
            value = STALE_NAN
        else:
            which = point.WhichOneof("value")
            if which == "as_double":
                value = point.as_double
                if value - value != 0.0:  # NaN or an infinity
                    problem = value_problem(value)
                    if problem:
                        raise Refused(problem)
            elif which == "as_int":
                value = float(point.as_int)
            else:
                raise Refused("data point has no value")
        self.builder.add(name, labels, ts, value, kind, unit)

    def _histogram(
        self, name: str, labels: Mapping[str, str], ts: int, point: pb.HistogramDataPoint, kind: MetricKind, unit: str
    ) -> None:
        bounds = list(point.explicit_bounds)
        counts = list(point.bucket_counts)
        if counts and len(counts) != len(bounds) + 1:
            raise Refused(f"{len(counts)} bucket counts for {len(bounds)} bounds (needs {len(bounds) + 1})")
        for lower, upper in itertools.pairwise(bounds):
            if not lower < upper:
                raise Refused(f"explicit bounds are not strictly increasing ({lower!r} then {upper!r})")
        if bounds and not (math.isfinite(bounds[0]) and math.isfinite(bounds[-1])):
            raise Refused("explicit bounds must be finite")
        if sum(counts) > point.count:
            raise Refused(f"bucket counts add up to more than the point's count {point.count}")
        buckets = list(zip(bounds, counts, strict=False))
        self._buckets(name, labels, ts, point, buckets, kind, unit)

    def _exponential(
        self,
        name: str,
        labels: Mapping[str, str],
        ts: int,
        point: pb.ExponentialHistogramDataPoint,
        kind: MetricKind,
        unit: str,
    ) -> None:
        self._buckets(name, labels, ts, point, _exponential_buckets(point), kind, unit)

    def _buckets(
        self,
        name: str,
        labels: Mapping[str, str],
        ts: int,
        point: pb.HistogramDataPoint | pb.ExponentialHistogramDataPoint,
        buckets: list[tuple[float, int]],
        kind: MetricKind,
        unit: str,
    ) -> None:
        """Cumulative ``_bucket`` series from (upper bound, count) pairs, then ``+Inf``, ``_sum``, ``_count``."""
        if "le" in labels:
            raise Refused("attribute 'le' clashes with the histogram's bucket label")
        if len(buckets) > self.max_series:
            raise InvalidPayloadError(
                f"a histogram point has {len(buckets)} buckets, more than the limit of {self.max_series} series "
                "per request",
                413,
            )
        count = point.count
        if sum(c for _, c in buckets) > count:
            raise Refused(f"bucket counts add up to more than the point's count {count}")
        stale = bool(point.flags & _NO_RECORDED_VALUE)
        total_sum = point.sum if point.HasField("sum") else None
        if total_sum is not None and not stale:
            problem = value_problem(total_sum)
            if problem:
                raise Refused(f"sum: {problem}")
        add = self.builder.add
        bucket_name = f"{name}_bucket"
        cumulative = 0
        for bound, bucket_count in buckets:
            cumulative += bucket_count
            add(bucket_name, {**labels, "le": _bound_label(bound)}, ts, STALE_NAN if stale else cumulative, kind, unit)
        add(bucket_name, {**labels, "le": "+Inf"}, ts, STALE_NAN if stale else count, kind, unit)
        if total_sum is not None:
            add(f"{name}_sum", labels, ts, STALE_NAN if stale else total_sum, kind, unit)
        add(f"{name}_count", labels, ts, STALE_NAN if stale else count, kind, unit)

    def _summary(
        self, name: str, labels: Mapping[str, str], ts: int, point: pb.SummaryDataPoint, kind: MetricKind, unit: str
    ) -> None:
        if "quantile" in labels:
            raise Refused("attribute 'quantile' clashes with the summary's quantile label")
        stale = bool(point.flags & _NO_RECORDED_VALUE)
        samples: list[tuple[dict[str, str], float]] = []
        for quantile in point.quantile_values:
            q, value = quantile.quantile, quantile.value
            if not 0.0 <= q <= 1.0:
                raise Refused(f"quantile {q!r} is outside 0..1")
            if stale:
                value = STALE_NAN
            elif math.isnan(value):
                continue  # no observations yet: the summary has no quantile to report
            else:
                problem = value_problem(value)
                if problem:
                    raise Refused(f"quantile {q!r}: {problem}")
            samples.append(({**labels, "quantile": _bound_label(q)}, value))
        problem = None if stale else value_problem(point.sum)
        if problem:
            raise Refused(f"sum: {problem}")
        add = self.builder.add
        for quantile_labels, value in samples:
            add(name, quantile_labels, ts, value, kind, unit)
        add(f"{name}_sum", labels, ts, STALE_NAN if stale else point.sum, kind, unit)
        add(f"{name}_count", labels, ts, STALE_NAN if stale else point.count, kind, unit)


def _exponential_buckets(point: pb.ExponentialHistogramDataPoint) -> list[tuple[float, int]]:
    """(upper bound, count) pairs in ascending bound order: negative buckets, zero bucket, positive buckets."""
    scale = point.scale
    if not -10 <= scale <= 20:
        raise Refused(f"exponential histogram scale {scale} is outside -10..20")
    threshold = point.zero_threshold
    if not (math.isfinite(threshold) and threshold >= 0):
        raise Refused(f"zero_threshold {threshold!r} is not a finite number >= 0")
    log2_base = 2.0**-scale

    def power(index: int) -> float:
        exponent = index * log2_base
        if exponent >= 1024:
            raise Refused(f"bucket index {index} at scale {scale} is beyond the range of a double")
        return float(2.0**exponent)

    negative, positive = point.negative, point.positive
    entries = [(-power(negative.offset + k), c) for k, c in enumerate(negative.bucket_counts)]
    entries.append((threshold, point.zero_count))
    entries.extend((power(positive.offset + k + 1), c) for k, c in enumerate(positive.bucket_counts))
    entries.sort(key=itemgetter(0))
    merged: list[tuple[float, int]] = []
    for bound, count in entries:
        if merged and merged[-1][0] == bound:  # bounds that round to the same double are one bucket
            merged[-1] = (merged[-1][0], merged[-1][1] + count)
        else:
            merged.append((bound + 0.0, count))  # + 0.0 turns -0.0 into 0.0
    return merged
