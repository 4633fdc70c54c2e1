"""A wire-compatible view of OTLP's metrics export request that leaves resources, scopes and metrics as bytes.

The view is ``opentelemetry/proto/metrics/v1/metrics.proto`` copied under another
package with the resource, the instrumentation scope, each metric of a scope and
the data points of gauges and sums declared as ``bytes`` instead of messages: the
same length-delimited fields on the wire, read without building a message for each.
Reading a metric and its point through the protobuf API costs more than the rest of
its ingestion; as bytes they identify its series across requests (the series
cache's key) and are parsed, as a :data:`MetricView`, only when not seen before.
Histogram and summary points stay messages. :func:`single_number_points` reads,
for all metrics of a request at once, where the one number point of a gauge or sum
(as SDKs send them) lies in its bytes, and its time and value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

__all__ = ["ExportMetricsView", "MetricView", "NumberPoints", "single_number_points"]

_PACKAGE = "aiops_ingestion.otlp_metrics_view"
_SOURCE_PACKAGE = metrics_pb2.DESCRIPTOR.package
_FIELD = descriptor_pb2.FieldDescriptorProto

# (message, field) pairs read as raw bytes; nested messages are named with dots.
_RAW_FIELDS = frozenset(
    {
        ("ResourceMetrics", "resource"),
        ("ScopeMetrics", "scope"),
        ("ScopeMetrics", "metrics"),
        ("Gauge", "data_points"),
        ("Sum", "data_points"),
    }
)


def _rewrite(messages: Any, scope: str) -> None:
    for message in messages:
        name = f"{scope}{message.name}"
        for field in message.field:
            if (name, field.name) in _RAW_FIELDS:
                field.type = _FIELD.TYPE_BYTES
                field.ClearField("type_name")
            elif field.type_name.startswith(f".{_SOURCE_PACKAGE}."):
                field.type_name = f".{_PACKAGE}.{field.type_name[len(_SOURCE_PACKAGE) + 2 :]}"
        _rewrite(message.nested_type, f"{name}.")


def _view_file() -> descriptor_pb2.FileDescriptorProto:
    view = descriptor_pb2.FileDescriptorProto()
    metrics_pb2.DESCRIPTOR.CopyToProto(view)
    view.name = "aiops_ingestion/otlp_metrics_view.proto"
    view.package = _PACKAGE
    view.ClearField("options")
    request = view.message_type.add()
    metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR.CopyToProto(request)
    _rewrite(view.message_type, "")
    return view


_file = descriptor_pool.Default().AddSerializedFile(_view_file().SerializeToString())

# Built at import time like a generated module's classes, so typed Any as those are.
ExportMetricsView: Any = message_factory.GetMessageClass(_file.message_types_by_name["ExportMetricsServiceRequest"])
"""``ExportMetricsServiceRequest`` with ``resource``, ``scope`` and each of ``metrics`` as their bytes."""

MetricView: Any = message_factory.GetMessageClass(_file.message_types_by_name["Metric"])
"""``Metric`` with gauge and sum ``data_points`` as their bytes: what each of a scope's ``metrics`` parses into."""

# A metric as encoders write it, every field in number order: its name (tag 0x0a), maybe
# a description (0x12) and a unit (0x1a), then, last, its gauge (0x2a) or sum (0x3a),
# whose first field is a data point (0x0a). The point leads with its start time (0x11,
# maybe left out), its time (0x19) and its value, a double (0x21) or an int (0x31), 8
# bytes each: the cut. What follows the cut (the point's attributes; a sum's temporality
# and monotonicity) is left to the caller. Lengths are varints of one or two bytes here.
_PAD = bytes(32)  # room for reads past the last metric
_EIGHT = np.arange(8)


@dataclass(frozen=True, slots=True)
class NumberPoints:
    """Per metric: where its one number point starts and where the point's cut ends (0: not read here), its sample."""

    start: list[int]
    cut: list[int]
    ts_ns: npt.NDArray[np.uint64]
    value: npt.NDArray[np.float64]


def single_number_points(metrics: Sequence[bytes]) -> NumberPoints:
    """Find the one number point of each serialized ``Metric`` laid out as above, all metrics at once.

    ``start[i]`` is the offset in ``metrics[i]`` of its point, ``cut[i]`` that of the
    point's fields after its value, or both 0 when the metric is laid out otherwise
    (another type, several points, fields in another order, a length that does not
    add up): such a metric must be parsed. Every offset is checked against the
    lengths around it, so ``metrics[i][:start[i]]`` and ``metrics[i][cut[i]:]`` are the
    metric's bytes without the point's start time, time and value. Whether those bytes
    parse into one point with attributes alone is for the caller to check (once per
    series: see ``SeriesCache``). Int values are returned as floats.
    """
    count = len(metrics)
    if not count:
        return NumberPoints([], [], np.zeros(0, np.uint64), np.zeros(0, np.float64))
    lengths = np.fromiter(map(len, metrics), dtype=np.int64, count=count)
    end = np.cumsum(lengths)
    first = end - lengths
    data = np.frombuffer(b"".join(metrics) + _PAD, dtype=np.uint8)
    last = len(data) - 3  # every offset is clipped here, so reads stay in the padded bytes

    def byte(at: Any) -> Any:
        return data[at].astype(np.int64)

    def length(at: Any) -> tuple[Any, Any, Any]:
        """The varint after the tag at ``at``: its value, where the bytes it measures start, whether it fits 2 bytes."""
        low, high = byte(at + 1), byte(at + 2)
        two = low >= 0x80
        return np.where(two, low - 0x80 + (high << 7), low), np.minimum(at + 2 + two, last), ~two | (high < 0x80)

    ok = byte(first) == 0x0A
    size, at, fits = length(first)
    ok &= fits
    at = np.minimum(at + size, last)
    tag = byte(at)
    for optional in (0x12, 0x1A):
        size, after, fits = length(at)
        here = tag == optional
        ok &= fits | ~here
        at = np.where(here, np.minimum(after + size, last), at)
        tag = byte(at)
    ok &= (tag == 0x2A) | (tag == 0x3A)
    size, at, fits = length(at)
    ok &= fits & (at + size == end) & (byte(at) == 0x0A)
    size, start, fits = length(at)
    point_end = start + size
    head = byte(start)
    ok &= fits & ((head == 0x19) | ((head == 0x11) & (byte(np.minimum(start + 9, last)) == 0x19)))
    cut = np.where(head == 0x19, start + 18, start + 27)
    ok &= (cut <= point_end) & (point_end <= end)
    cut = np.where(ok, cut, first + 17)
    value_tag = byte(cut - 9)
    doubles = value_tag == 0x21
    ok &= doubles | (value_tag == 0x31)
    ts_ns = data[(cut - 17)[:, None] + _EIGHT].view("<u8")[:, 0]
    fixed = data[(cut - 8)[:, None] + _EIGHT]
    value: npt.NDArray[np.float64] = np.where(doubles, fixed.view("<f8")[:, 0], fixed.view("<i8")[:, 0])
    return NumberPoints(np.where(ok, start - first, 0).tolist(), np.where(ok, cut - first, 0).tolist(), ts_ns, value)
