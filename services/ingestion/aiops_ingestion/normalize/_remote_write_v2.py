"""Prometheus remote write 2.0: the snappy body into an ``io.prometheus.write.v2.Request``, its series into a batch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from aiops_common.prompb.io.prometheus.write.v2.types_pb2 import Metadata, Request
from aiops_common.schemas import MetricBatchBuilder, MetricKind, SeriesMeta
from google.protobuf.message import DecodeError

from aiops_ingestion.normalize._enricher import Enricher
from aiops_ingestion.normalize._errors import InvalidPayloadError
from aiops_ingestion.normalize._limits import Limits
from aiops_ingestion.normalize._remote_write import RemoteWriteCounts, _Writer, inflate_remote_write
from aiops_ingestion.normalize._series_cache import SeriesCache

__all__ = ["normalize_remote_write_v2", "parse_remote_write_v2"]

_MT = Metadata.MetricType
_METADATA_KINDS = {
    _MT.METRIC_TYPE_COUNTER: MetricKind.COUNTER,
    _MT.METRIC_TYPE_GAUGE: MetricKind.GAUGE,
    _MT.METRIC_TYPE_HISTOGRAM: MetricKind.HISTOGRAM,
    _MT.METRIC_TYPE_GAUGEHISTOGRAM: MetricKind.HISTOGRAM,
    _MT.METRIC_TYPE_SUMMARY: MetricKind.SUMMARY,
    _MT.METRIC_TYPE_INFO: MetricKind.GAUGE,
    _MT.METRIC_TYPE_STATESET: MetricKind.GAUGE,
}
_DEFAULT_LIMITS = Limits()


def parse_remote_write_v2(body: bytes, limits: Limits = _DEFAULT_LIMITS) -> Any:
    """A remote write 2.0 body: snappy block format around an ``io.prometheus.write.v2.Request`` (413 when too big)."""
    request = Request()
    try:
        request.ParseFromString(inflate_remote_write(body, limits))
    except DecodeError as exc:
        raise InvalidPayloadError(
            f"remote write body is not a valid protobuf io.prometheus.write.v2.Request: {exc}"
        ) from None
    return request


def normalize_remote_write_v2(
    request: Any,
    limits: Limits,
    enricher: Enricher,
    partitions: int,
    *,
    now_ms: int | None = None,
    cache: SeriesCache | None = None,
    counts: RemoteWriteCounts | None = None,
) -> MetricBatchBuilder:
    """Every sample of a remote write 2.0 request, as flat series, by the rules of 1.0's :func:`normalize_remote_write`.

    Labels are read through the symbols table (``labels_refs`` are index pairs into
    it). A reference outside the table, an odd number of label references, or a
    table that does not start with the empty string makes the request malformed
    (400). Each series' metadata sets its kind (counter, gauge, histogram and gauge
    histogram, summary; info and stateset are gauges; unspecified: from the name as
    in 1.0) and its unit. Help texts and created timestamps are read and checked but
    not kept: the metric record has no field for them. Native histograms become the
    series of a classic histogram; exemplars are counted, not kept. A series with
    both samples and histograms is refused, as the specification forbids it.

    Each ``TimeSeries`` counts toward ``max_series_per_request`` (413 beyond it).
    ``counts``, when given, is filled with what the request wrote.
    """
    symbols: Sequence[str] = list(request.symbols)
    if symbols and symbols[0] != "":
        raise InvalidPayloadError(
            f"remote write 2.0 symbols table must start with the empty string, not {symbols[0][:80]!r}"
        )
    series = request.timeseries
    if len(series) > limits.max_series_per_request:
        raise InvalidPayloadError(
            f"request has {len(series)} series, more than the limit of {limits.max_series_per_request}; "
            "lower max_samples_per_send",
            413,
        )
    if cache is None:
        cache = SeriesCache(max(2 * len(series), 2))
    cache.bind(limits, enricher)
    writer = _Writer(limits, enricher, {}, cache, partitions, now_ms)
    with_metadata: dict[tuple[str, MetricKind, str], SeriesMeta] = {}
    for index, entry in enumerate(series):
        pairs = _labels(symbols, entry.labels_refs, index, "labels_refs")
        for exemplar in entry.exemplars:
            _labels(symbols, exemplar.labels_refs, index, "exemplar labels_refs")
        writer.exemplar_count += len(entry.exemplars)
        metadata = entry.metadata
        help_ref, unit_ref = metadata.help_ref, metadata.unit_ref
        for field, ref in (("help_ref", help_ref), ("unit_ref", unit_ref)):
            if ref >= len(symbols):
                raise _bad_ref(index, field, ref, len(symbols))
        meta = writer.known_series(pairs)
        if meta is None:
            continue
        if entry.samples and entry.histograms:
            writer.rejections.add(meta.key, "a series carries both samples and histograms (send them as two series)")
            continue
        kind = _METADATA_KINDS.get(metadata.type, meta.kind)
        if kind is MetricKind.GAUGE and "quantile" in meta.labels and metadata.type == _MT.METRIC_TYPE_UNSPECIFIED:
            kind = MetricKind.SUMMARY
        unit = symbols[unit_ref] if unit_ref else meta.unit
        if kind is not meta.kind or unit != meta.unit:
            typed = with_metadata.get((meta.key, kind, unit))
            if typed is None:
                typed = with_metadata[(meta.key, kind, unit)] = dataclasses.replace(meta, kind=kind, unit=unit)
            meta = typed
        if entry.samples:
            writer.samples(meta, ((sample.timestamp, sample.value) for sample in entry.samples))
        if entry.histograms:
            writer.histograms(meta, entry.histograms)
    return writer.finish(len(series), counts)


def _labels(symbols: Sequence[str], refs: Sequence[int], index: int, field: str) -> tuple[tuple[str, str], ...]:
    """The (name, value) pairs that ``refs`` point at; a 400 when a reference is not in the table."""
    if len(refs) % 2:
        raise InvalidPayloadError(
            f"remote write 2.0 series {index}: {field} has {len(refs)} entries, not name/value pairs"
        )
    size = len(symbols)
    try:
        return tuple((symbols[refs[i]], symbols[refs[i + 1]]) for i in range(0, len(refs), 2))
    except IndexError:
        bad = next(ref for ref in refs if ref >= size)
        raise _bad_ref(index, field, bad, size) from None


def _bad_ref(index: int, field: str, ref: int, size: int) -> InvalidPayloadError:
    return InvalidPayloadError(
        f"remote write 2.0 series {index}: {field} points at symbol {ref}, but the symbols table has {size} entries"
    )
