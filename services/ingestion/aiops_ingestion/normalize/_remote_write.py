"""Prometheus remote write 1.0: the snappy body into a WriteRequest, and its series into a metric batch."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from operator import attrgetter

import cramjam
from aiops_common.schemas import MetricBatchBuilder, MetricKind, series_key
from google.protobuf.message import DecodeError

# The generated modules build their classes at import time and ship no stubs; mypy cannot see the names.
from opentelemetry.exporter.prometheus_remote_write.gen.remote_pb2 import WriteRequest  # type: ignore[attr-defined]
from opentelemetry.exporter.prometheus_remote_write.gen.types_pb2 import (  # type: ignore[attr-defined]
    Label,
    MetricMetadata,
)

from aiops_ingestion.normalize._enricher import Enricher
from aiops_ingestion.normalize._errors import InvalidPayloadError, Rejections
from aiops_ingestion.normalize._labels import LabelChecker
from aiops_ingestion.normalize._limits import Limits
from aiops_ingestion.normalize._sample_values import is_stale_marker, value_problem

__all__ = ["metric_kind", "metric_name_problem", "normalize_remote_write", "parse_remote_write"]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MT = MetricMetadata.MetricType
_METADATA_KINDS = {
    _MT.COUNTER: MetricKind.COUNTER,
    _MT.GAUGE: MetricKind.GAUGE,
    _MT.HISTOGRAM: MetricKind.HISTOGRAM,
    _MT.GAUGEHISTOGRAM: MetricKind.HISTOGRAM,
    _MT.SUMMARY: MetricKind.SUMMARY,
    _MT.INFO: MetricKind.GAUGE,
    _MT.STATESET: MetricKind.GAUGE,
}
_SUFFIX_KINDS = (
    ("_total", MetricKind.COUNTER),
    ("_bucket", MetricKind.HISTOGRAM),
    ("_sum", MetricKind.HISTOGRAM),
    ("_count", MetricKind.HISTOGRAM),
)
_DEFAULT_LIMITS = Limits()
_TIME_AND_VALUE = attrgetter("timestamp", "value")


def parse_remote_write(body: bytes, limits: Limits = _DEFAULT_LIMITS) -> WriteRequest:
    """A remote write body: snappy block format (not framed) around a ``prometheus.WriteRequest``.

    The uncompressed size the block declares is checked against
    ``limits.max_decompressed_bytes`` before anything is inflated (413 beyond it).
    """
    if not body:
        raise InvalidPayloadError("remote write body is empty")
    try:
        size = cramjam.snappy.decompress_raw_len(body)
    except cramjam.DecompressionError as exc:
        raise InvalidPayloadError(f"remote write body is not snappy block data: {exc}") from None
    if size > limits.max_decompressed_bytes:
        raise InvalidPayloadError(
            f"remote write body inflates to {size} bytes, more than the limit of {limits.max_decompressed_bytes}",
            413,
        )
    try:
        data = cramjam.snappy.decompress_raw(body)
    except cramjam.DecompressionError as exc:
        raise InvalidPayloadError(f"remote write body is not valid snappy block data: {exc}") from None
    request = WriteRequest()
    try:
        request.ParseFromString(memoryview(data))
    except DecodeError as exc:
        raise InvalidPayloadError(f"remote write body is not a valid protobuf WriteRequest: {exc}") from None
    return request


def metric_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid Prometheus metric name, or None."""
    if not name:
        return "series has no metric name (__name__ label)"
    if not _METRIC_NAME.fullmatch(name):
        return f"metric name {name[:80]!r} is invalid (letters, digits, _ and : only, not starting with a digit)"
    return None


def metric_kind(name: str, families: Mapping[str, MetricKind]) -> MetricKind:
    """The kind of series ``name``: from the metadata of its family when sent, else from its suffix.

    ``families`` maps metric family names to kinds; a series matches its family by
    its own name (``http_requests_total``) or by its name without a ``_total``,
    ``_bucket``, ``_sum`` or ``_count`` suffix. Without metadata: ``_total`` is a
    COUNTER, ``_bucket``/``_sum``/``_count`` are HISTOGRAM, anything else a GAUGE.
    """
    kind = families.get(name)
    if kind is not None:
        return kind
    for suffix, suffix_kind in _SUFFIX_KINDS:
        if name.endswith(suffix):
            return families.get(name[: -len(suffix)], suffix_kind)
    return MetricKind.GAUGE


def _families(metadata: Iterable[MetricMetadata]) -> dict[str, MetricKind]:
    return {m.metric_family_name: _METADATA_KINDS[m.type] for m in metadata if m.type in _METADATA_KINDS}


def normalize_remote_write(
    request: WriteRequest,
    limits: Limits,
    enricher: Enricher,
    partitions: int,
    *,
    now_ms: int | None = None,
) -> MetricBatchBuilder:
    """Every sample of a remote write request, as flat series.

    ``__name__`` is the series name and every other label is kept (``job`` and
    ``instance`` included). A series without a ``service`` label gets one equal to
    its ``job``, so Prometheus-scraped targets join the service-level views and the
    enricher's metadata. Labels with an empty value are dropped: Prometheus treats
    them as absent. The kind comes from :func:`metric_kind`; a GAUGE guess for a
    series with a ``quantile`` label becomes SUMMARY. Stale markers are kept; a NaN
    quantile (a summary with no observations yet) is skipped.

    Each ``TimeSeries`` entry counts toward ``max_series_per_request`` (413 beyond it).
    """
    timeseries = request.timeseries
    if len(timeseries) > limits.max_series_per_request:
        raise InvalidPayloadError(
            f"request has {len(timeseries)} series, more than the limit of {limits.max_series_per_request}; "
            "lower max_samples_per_send",
            413,
        )
    window = limits.window(now_ms)
    oldest, newest = window.min_ms, window.max_ms
    families = _families(request.metadata)
    kinds: dict[str, MetricKind] = {}
    label_problem = LabelChecker(limits).problem
    good_names: set[str] = set()
    enrich = enricher.labels_for if enricher else None
    builder = MetricBatchBuilder(partitions)
    add = builder.add
    rejections = Rejections("series")
    summary, gauge = MetricKind.SUMMARY, MetricKind.GAUGE

    # The hot loop: one pass per series, labels read once into one dict that every
    # sample of the series shares; checks whose answer repeats (name validity, kind)
    # are cached per metric name.
    for series in timeseries:
        sent = series.labels
        labels = {label.name: label.value for label in sent}
        name = labels.pop("__name__", "")
        problem = None
        if len(labels) != len(sent) - 1 or name not in good_names:
            problem = _label_list_problem(sent) or metric_name_problem(name)
            if problem is None:
                good_names.add(name)
        if problem is None:
            if "" in labels.values():
                labels = {k: v for k, v in labels.items() if v}
            problem = label_problem(labels)
        if problem is not None:
            rejections.add(series_key(name, labels), problem)
            continue
        if "service" not in labels and "job" in labels:
            labels["service"] = labels["job"]
        if enrich is not None:
            for key, value in enrich(labels.get("service", "")).items():
                labels.setdefault(key, value)
        kind = kinds.get(name)
        if kind is None:
            kind = kinds[name] = metric_kind(name, families)
        if kind is gauge and "quantile" in labels and name not in families:
            kind = summary
        for ts, value in map(_TIME_AND_VALUE, series.samples):
            if ts < oldest or ts > newest:
                problem = window.problem_ms(ts)
                break
            if value - value != 0.0 and not is_stale_marker(value):  # NaN or an infinity
                if kind is summary and math.isnan(value) and "quantile" in labels:
                    continue  # no observations yet: the summary has no quantile to report
                problem = value_problem(value)
                break
            add(name, labels, ts, value, kind)
        if problem is not None:
            rejections.add(series_key(name, labels), problem)
    rejections.raise_if_any(len(timeseries))
    return builder


def _label_list_problem(sent: Iterable[Label]) -> str | None:
    """The duplicate-name or missing-name problem of a series' label list, if it has one."""
    seen: set[str] = set()
    for label in sent:
        if label.name in seen:
            return f"duplicate label name {label.name!r}"
        seen.add(label.name)
    return None if "__name__" in seen else "series has no metric name (__name__ label)"
