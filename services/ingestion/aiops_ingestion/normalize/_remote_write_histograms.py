"""Prometheus native histograms (remote write 1.0 and 2.0) as the cumulative ``le`` buckets of a classic histogram."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from aiops_ingestion.normalize._errors import Refused

__all__ = ["CUSTOM_BUCKETS_SCHEMA", "bound_label", "histogram_count", "native_buckets"]

CUSTOM_BUCKETS_SCHEMA = -53
"""The schema of a histogram whose ``custom_values`` are its bucket bounds (as a classic histogram's ``le``)."""

_EXPONENTIAL_SCHEMAS = range(-4, 9)
_INF = math.inf


class _Span(Protocol):
    offset: int
    length: int


def bound_label(bound: float) -> str:
    """An ``le`` label value as Prometheus 3 writes it (and the OTLP path here): ``0.5``, ``1.0``, ``+Inf``."""
    return "+Inf" if bound == _INF else repr(bound)


def histogram_count(histogram: Any) -> float:
    """The number of observations, sent as an integer or (float histograms) as a float."""
    if histogram.WhichOneof("count") == "count_float":
        return float(histogram.count_float)
    return float(histogram.count_int)


def native_buckets(histogram: Any) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) pairs in ascending bound order, the ``+Inf`` bucket left out.

    ``histogram`` is a ``prometheus.Histogram`` (1.0) or ``io.prometheus.write.v2.Histogram``
    (2.0); both have the same fields. With an exponential schema ``s`` (-4..8),
    positive bucket ``i`` ends at ``base**i`` and negative bucket ``i`` at
    ``-base**(i-1)``, ``base = 2**(2**-s)``; the zero bucket ends at
    ``zero_threshold``. With schema -53 positive bucket ``i`` ends at
    ``custom_values[i]`` (at ``+Inf`` for ``i == len(custom_values)``). Raises
    :class:`Refused` naming what is not supported or not consistent.
    """
    schema = histogram.schema
    if schema == CUSTOM_BUCKETS_SCHEMA:
        buckets = _custom_buckets(histogram)
    elif schema in _EXPONENTIAL_SCHEMAS:
        buckets = _exponential_buckets(histogram, schema)
    else:
        raise Refused(
            f"native histogram schema {schema} is not supported (exponential schemas -4..8 and custom buckets -53 are)"
        )
    buckets.sort(key=lambda bucket: bucket[0])
    cumulative: list[tuple[float, float]] = []
    total = 0.0
    for bound, group in itertools.groupby(buckets, key=lambda bucket: bucket[0]):
        total += sum(count for _, count in group)
        cumulative.append((bound, total))
    if total > histogram_count(histogram):
        raise Refused(
            f"native histogram buckets add up to {total:g}, more than its count {histogram_count(histogram):g}"
        )
    return cumulative


def _custom_buckets(histogram: Any) -> list[tuple[float, float]]:
    bounds = list(histogram.custom_values)
    if not all(math.isfinite(bound) for bound in bounds):
        raise Refused("native histogram custom_values must be finite")
    for lower, upper in itertools.pairwise(bounds):
        if not lower < upper:
            raise Refused(f"native histogram custom_values are not strictly increasing ({lower!r} then {upper!r})")
    if histogram.negative_spans or histogram.negative_deltas or histogram.negative_counts:
        raise Refused("a custom-bucket native histogram (schema -53) cannot have negative buckets")
    buckets: list[tuple[float, float]] = []
    for index, count in _indexed_counts(
        histogram.positive_spans, histogram.positive_deltas, histogram.positive_counts, "positive"
    ):
        if not 0 <= index <= len(bounds):
            raise Refused(f"native histogram bucket index {index} is outside its {len(bounds)} custom_values")
        if index < len(bounds):  # the bucket past the last bound is +Inf, which the count already gives
            buckets.append((bounds[index], count))
    return buckets


def _exponential_buckets(histogram: Any, schema: int) -> list[tuple[float, float]]:
    threshold = histogram.zero_threshold
    if not (math.isfinite(threshold) and threshold >= 0):
        raise Refused(f"native histogram zero_threshold {threshold!r} is not a finite number >= 0")
    log2_base = 2.0**-schema

    def power(index: int) -> float:
        exponent = index * log2_base
        if abs(exponent) >= 1024:
            raise Refused(f"native histogram bucket index {index} at schema {schema} is beyond the range of a double")
        return float(2.0**exponent)

    buckets = [
        (-power(index - 1), count)
        for index, count in _indexed_counts(
            histogram.negative_spans, histogram.negative_deltas, histogram.negative_counts, "negative"
        )
    ]
    zero = histogram.zero_count_float if histogram.WhichOneof("zero_count") == "zero_count_float" else None
    buckets.append((threshold, float(histogram.zero_count_int if zero is None else zero)))
    buckets.extend(
        (power(index), count)
        for index, count in _indexed_counts(
            histogram.positive_spans, histogram.positive_deltas, histogram.positive_counts, "positive"
        )
    )
    return buckets


def _indexed_counts(
    spans: Sequence[_Span], deltas: Sequence[int], counts: Sequence[float], side: str
) -> Iterator[tuple[int, float]]:
    """(bucket index, count) of one side: spans give the indexes, deltas (integer) or counts (float) the counts."""
    if deltas and counts:
        raise Refused(f"native histogram has both {side}_deltas and {side}_counts")
    values: list[float] = list(itertools.accumulate(deltas)) if deltas else list(counts)
    if any(value < 0 or value != value for value in values):
        raise Refused(f"native histogram has a negative or NaN {side} bucket count")
    declared = sum(span.length for span in spans)
    if declared != len(values):
        raise Refused(f"native histogram {side} spans declare {declared} buckets but {len(values)} counts were sent")
    index = 0
    position = 0
    for span in spans:
        index += span.offset  # the first span's offset is its start; later ones are gaps after the previous span
        for _ in range(span.length):
            yield index, float(values[position])
            index += 1
            position += 1
