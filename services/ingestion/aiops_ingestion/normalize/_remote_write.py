"""Prometheus remote write 1.0: the snappy body into a WriteRequest, and its series into a metric batch."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import cramjam
from aiops_common.prompb.types_pb2 import MetricMetadata, TimeSeries
from aiops_common.schemas import STALE_NAN, MetricBatchBuilder, MetricKind, SeriesMeta, series_key
from google.protobuf.message import DecodeError

from aiops_ingestion.normalize._enricher import Enricher
from aiops_ingestion.normalize._errors import InvalidPayloadError, Refused, Rejections
from aiops_ingestion.normalize._labels import LabelChecker
from aiops_ingestion.normalize._limits import Limits
from aiops_ingestion.normalize._remote_write_histograms import bound_label, histogram_count, native_buckets
from aiops_ingestion.normalize._remote_write_view import RawWriteRequest, single_sample_tails
from aiops_ingestion.normalize._sample_values import is_stale_marker, value_problem
from aiops_ingestion.normalize._series_cache import SeriesCache

__all__ = [
    "RemoteWriteCounts",
    "inflate_remote_write",
    "metric_kind",
    "metric_name_problem",
    "normalize_remote_write",
    "parse_remote_write",
]

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
_NO_FAMILIES: Mapping[str, MetricKind] = MappingProxyType({})


@dataclasses.dataclass(slots=True)
class RemoteWriteCounts:
    """What one request wrote, for the 2.0 ``X-Prometheus-Remote-Write-*-Written`` response headers.

    ``exemplars`` counts the exemplars that were stored: always 0, the metric
    record schema has no place for them (``exemplars_received`` counts those sent).
    """

    samples: int = 0
    histograms: int = 0
    exemplars: int = 0
    exemplars_received: int = 0

    def headers(self) -> dict[str, str]:
        return {
            "X-Prometheus-Remote-Write-Samples-Written": str(self.samples),
            "X-Prometheus-Remote-Write-Histograms-Written": str(self.histograms),
            "X-Prometheus-Remote-Write-Exemplars-Written": str(self.exemplars),
        }


def parse_remote_write(body: bytes, limits: Limits = _DEFAULT_LIMITS) -> Any:
    """A remote write body: snappy block format (not framed) around a ``prometheus.WriteRequest``.

    The uncompressed size the block declares is checked against
    ``limits.max_decompressed_bytes`` before anything is inflated (413 beyond it).
    The result is a :data:`RawWriteRequest`, the same message with each series left
    as its bytes: :func:`normalize_remote_write` parses a series only when it has not
    seen its labels before, so a malformed series is reported from there.
    """
    data = inflate_remote_write(body, limits)
    request = RawWriteRequest()
    try:
        request.ParseFromString(memoryview(data))
    except DecodeError as exc:
        raise InvalidPayloadError(f"remote write body is not a valid protobuf WriteRequest: {exc}") from None
    return request


def inflate_remote_write(body: bytes, limits: Limits = _DEFAULT_LIMITS) -> bytes:
    """The protobuf bytes of a remote write body (snappy block format), its declared size checked first (413)."""
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
    return bytes(data)


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
    request: Any,
    limits: Limits,
    enricher: Enricher,
    partitions: int,
    *,
    now_ms: int | None = None,
    cache: SeriesCache | None = None,
    counts: RemoteWriteCounts | None = None,
) -> MetricBatchBuilder:
    """Every sample of a remote write request, as flat series.

    ``__name__`` is the series name and every other label is kept (``job`` and
    ``instance`` included). A series without a ``service`` label gets one equal to
    its ``job``, so Prometheus-scraped targets join the service-level views and the
    enricher's metadata. Labels with an empty value are dropped: Prometheus treats
    them as absent. The kind comes from :func:`metric_kind`; a GAUGE guess for a
    series with a ``quantile`` label becomes SUMMARY. Stale markers are kept; a NaN
    quantile (a summary with no observations yet) is skipped. Native histograms
    become the ``_bucket``/``_sum``/``_count`` series of a classic one (see
    :meth:`_Writer.histograms`); exemplars are counted, not kept.

    ``request`` is what :func:`parse_remote_write` returns, or a
    ``prometheus.WriteRequest`` message. With a ``cache`` (one per server), a series
    whose label bytes were validated before is found there instead of being
    validated and normalized again; its samples are still checked one by one.

    Each ``TimeSeries`` entry counts toward ``max_series_per_request`` (413 beyond it).
    ``counts``, when given, is filled with what the request wrote.
    """
    if request.DESCRIPTOR is not RawWriteRequest.DESCRIPTOR:
        request = RawWriteRequest.FromString(request.SerializeToString())
    blobs: list[bytes] = request.timeseries[:]
    if len(blobs) > limits.max_series_per_request:
        raise InvalidPayloadError(
            f"request has {len(blobs)} series, more than the limit of {limits.max_series_per_request}; "
            "lower max_samples_per_send",
            413,
        )
    if cache is None:
        cache = SeriesCache(max(2 * len(blobs), 2))
    cache.bind(limits, enricher)
    writer = _Writer(limits, enricher, _families(request.metadata), cache, partitions, now_ms)
    window = writer.window
    oldest, newest = window.min_ms, window.max_ms
    tails = single_sample_tails(blobs)
    prefixes = [blob[:end] for blob, end in zip(blobs, tails.labels_end, strict=True)]
    series_id, retype = writer.builder.series_id, writer.retype if writer.families else None
    sids, times, values = writer.sids, writer.times, writer.values

    # The hot loop. A Prometheus series (one sample at the end of each TimeSeries entry)
    # whose label bytes are in the cache costs a slice, a lookup (both above) and three
    # appends; a new one parses only its labels. Anything else takes the full path.
    for blob, prefix, meta, ts, value in zip(
        blobs, prefixes, cache.get_many(prefixes), tails.ts_ms, tails.value, strict=True
    ):
        if meta is None:
            if not prefix:  # no sample tail found
                writer.series(blob)
                continue
            meta = writer.new_prefix(prefix, blob)
            if meta is None:
                continue
        if retype is not None:
            meta = retype(meta)
        if oldest <= ts <= newest and value - value == 0.0:
            sids.append(series_id(meta, meta.key))
            times.append(ts)
            values.append(value)
        else:
            writer.samples(meta, ((ts, value),))
    return writer.finish(len(blobs), counts)


class _Writer:
    """The state of one request: its builder, its refusals, and what is known about its series."""

    def __init__(
        self,
        limits: Limits,
        enricher: Enricher,
        families: Mapping[str, MetricKind],
        cache: SeriesCache,
        partitions: int,
        now_ms: int | None,
    ) -> None:
        self.window = limits.window(now_ms)
        self.families = families
        self.cache = cache
        self.builder = MetricBatchBuilder(partitions)
        self.sids: list[int] = []
        self.times: list[int] = []
        self.values: list[float] = []
        self.rejections = Rejections("series")
        self._label_problem = LabelChecker(limits).problem
        self._good_names: set[str] = set()
        self._enrich = enricher.labels_for if enricher else None
        self._kinds: dict[str, MetricKind] = {}
        self._retyped: dict[str, SeriesMeta] = {}
        self._derived: dict[tuple[str, str, str], SeriesMeta] = {}
        self.histogram_count = 0  # native histogram samples written
        self.derived_count = 0  # the samples of their _bucket/_sum/_count series
        self.exemplar_count = 0  # exemplars received (none are kept)

    def finish(self, series_count: int, counts: RemoteWriteCounts | None = None) -> MetricBatchBuilder:
        self.rejections.raise_if_any(series_count)
        self.builder.extend(self.sids, self.times, self.values)
        if counts is not None:
            counts.samples = len(self.sids) - self.derived_count
            counts.histograms = self.histogram_count
            counts.exemplars_received = self.exemplar_count
        return self.builder

    def new_prefix(self, prefix: bytes, blob: bytes) -> SeriesMeta | None:
        """The series whose labels are ``prefix``, the bytes of ``blob`` before its one sample.

        The prefix is cached only when it parses on its own into labels and no sample:
        then any series that starts with the same bytes and ends in one sample has
        these labels, and the cache lookup of the hot loop is exact. Otherwise the
        series takes the full path. None when the series was refused or fully handled.
        """
        meta = self.cache.get(prefix)  # sent twice in this request
        if meta is not None:
            return meta
        try:
            labels_only = TimeSeries.FromString(prefix)
        except DecodeError:
            labels_only = None
        if labels_only is None or labels_only.samples:
            self.series(blob)
            return None
        meta = self._new_series([(label.name, label.value) for label in labels_only.labels])
        if meta is not None:
            self.cache.put(prefix, meta)
        return meta

    def series(self, blob: bytes) -> None:
        """One serialized TimeSeries, parsed in full: its labels from the cache or checked, then its samples."""
        try:
            parsed = TimeSeries.FromString(blob)
        except DecodeError as exc:
            raise InvalidPayloadError(f"remote write body is not a valid protobuf WriteRequest: {exc}") from None
        # A key of another type than the prefixes of the hot loop: the label list as sent.
        key = tuple((label.name, label.value) for label in parsed.labels)
        self.exemplar_count += len(parsed.exemplars)
        meta = self.known_series(key)
        if meta is None:
            return
        if self.families:
            meta = self.retype(meta)
        self.samples(meta, ((sample.timestamp, sample.value) for sample in parsed.samples))
        if parsed.histograms:
            self.histograms(meta, parsed.histograms)

    def known_series(self, pairs: tuple[tuple[str, str], ...]) -> SeriesMeta | None:
        """The series of a label list, from the cache or checked and cached; None after recording a refusal."""
        meta = self.cache.get(pairs)
        if meta is None:
            meta = self._new_series(pairs)
            if meta is not None:
                self.cache.put(pairs, meta)
        return meta

    def _new_series(self, sent: Sequence[tuple[str, str]]) -> SeriesMeta | None:
        """The normalized series of a label list not seen before, or None after recording why it is refused."""
        labels = dict(sent)
        name = labels.pop("__name__", "")
        problem = None
        if len(labels) != len(sent) - 1 or name not in self._good_names:
            problem = _label_list_problem(sent) or metric_name_problem(name)
            if problem is None:
                self._good_names.add(name)
        if problem is None:
            if "" in labels.values():
                labels = {k: v for k, v in labels.items() if v}
            problem = self._label_problem(labels)
        if problem is not None:
            self.rejections.add(series_key(name, labels), problem)
            return None
        if "service" not in labels and "job" in labels:
            labels["service"] = labels["job"]
        if self._enrich is not None:
            for key, value in self._enrich(labels.get("service", "")).items():
                labels.setdefault(key, value)
        # The kind from the name alone: metadata, when a request carries it, applies to that request (retype).
        kind = metric_kind(name, _NO_FAMILIES)
        if kind is MetricKind.GAUGE and "quantile" in labels:
            kind = MetricKind.SUMMARY
        return SeriesMeta(name, labels, kind)

    def retype(self, meta: SeriesMeta) -> SeriesMeta:
        """``meta`` with the kind this request's metadata gives its family, where that differs."""
        name = meta.name
        kind = self._kinds.get(name)
        if kind is None:
            kind = self._kinds[name] = metric_kind(name, self.families)
        if kind is MetricKind.GAUGE and "quantile" in meta.labels and name not in self.families:
            kind = MetricKind.SUMMARY
        if kind is meta.kind:
            return meta
        retyped = self._retyped.get(meta.key)
        if retyped is None:
            retyped = self._retyped[meta.key] = dataclasses.replace(meta, kind=kind)
        return retyped

    def samples(self, meta: SeriesMeta, samples: Iterable[tuple[int, float]]) -> None:
        """Check and add the samples of one series; a bad one refuses the series."""
        window = self.window
        sid = self.builder.series_id(meta, meta.key)
        problem = None
        for ts, value in samples:
            if ts < window.min_ms or ts > window.max_ms:
                problem = window.problem_ms(ts)
                break
            if value - value != 0.0 and not is_stale_marker(value):  # NaN or an infinity
                if meta.kind is MetricKind.SUMMARY and math.isnan(value) and "quantile" in meta.labels:
                    continue  # no observations yet: the summary has no quantile to report
                problem = value_problem(value)
                break
            self.sids.append(sid)
            self.times.append(ts)
            self.values.append(value)
        if problem is not None:
            self.rejections.add(meta.key, problem)

    def histograms(self, meta: SeriesMeta, histograms: Iterable[Any]) -> None:
        """Native histogram samples as the series of a classic histogram: ``_bucket{le}``, ``_sum``, ``_count``.

        Bucket counts are made cumulative with ``le`` bounds (see :func:`native_buckets`),
        ``le="+Inf"`` is the count. A stale marker (the sum is the stale NaN) marks
        ``_sum`` and ``_count`` stale. Float histograms are taken as they are; the
        reset hint is not kept (the stream layer finds counter resets itself).
        A histogram that cannot be converted refuses its series, naming why.
        """
        if "le" in meta.labels:
            self.rejections.add(meta.key, "label 'le' clashes with the native histogram's bucket label")
            return
        window = self.window
        rows: list[tuple[SeriesMeta, int, float]] = []
        for histogram in histograms:
            ts = histogram.timestamp
            try:
                if ts < window.min_ms or ts > window.max_ms:
                    raise Refused(window.problem_ms(ts))
                count, total = histogram_count(histogram), histogram.sum
                if is_stale_marker(total):
                    rows.append((self._derive(meta, "_sum"), ts, STALE_NAN))
                    rows.append((self._derive(meta, "_count"), ts, STALE_NAN))
                    self.histogram_count += 1
                    continue
                problem = value_problem(total) or value_problem(count)
                if problem:
                    raise Refused(f"native histogram: {problem}")
                for bound, cumulative in native_buckets(histogram):
                    rows.append((self._derive(meta, "_bucket", bound_label(bound)), ts, cumulative))
            except Refused as exc:
                self.rejections.add(meta.key, str(exc))
                return
            rows.append((self._derive(meta, "_bucket", "+Inf"), ts, count))
            rows.append((self._derive(meta, "_sum"), ts, total))
            rows.append((self._derive(meta, "_count"), ts, count))
            self.histogram_count += 1
        series_id = self.builder.series_id
        for derived, ts, value in rows:
            self.sids.append(series_id(derived, derived.key))
            self.times.append(ts)
            self.values.append(value)
        self.derived_count += len(rows)

    def _derive(self, meta: SeriesMeta, suffix: str, le: str = "") -> SeriesMeta:
        """The ``_bucket``/``_sum``/``_count`` series of the native histogram ``meta``, kind HISTOGRAM."""
        memo_key = (meta.key, suffix, le)
        derived = self._derived.get(memo_key)
        if derived is None:
            labels = {**meta.labels, "le": le} if le else meta.labels
            derived = SeriesMeta(meta.name + suffix, dict(sorted(labels.items())), MetricKind.HISTOGRAM, meta.unit)
            self._derived[memo_key] = derived
        return derived


def _label_list_problem(sent: Iterable[tuple[str, str]]) -> str | None:
    """The duplicate-name or missing-name problem of a series' label list, if it has one."""
    seen: set[str] = set()
    for name, _value in sent:
        if name in seen:
            return f"duplicate label name {name!r}"
        seen.add(name)
    return None if "__name__" in seen else "series has no metric name (__name__ label)"
