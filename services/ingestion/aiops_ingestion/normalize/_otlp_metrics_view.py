"""A wire-compatible view of OTLP's metrics export request that leaves resources, scopes and metrics as bytes.

The view is ``opentelemetry/proto/metrics/v1/metrics.proto`` copied under another
package with the resource, the instrumentation scope, each metric of a scope and
the data points of gauges and sums declared as ``bytes`` instead of messages: the
same length-delimited fields on the wire, read without building a message for each.
Reading a metric and its point through the protobuf API costs more than the rest of
its ingestion; as bytes they identify its series across requests (the series
cache's key) and are parsed, as a :data:`MetricView`, only when not seen before.
Histogram and summary points stay messages.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

__all__ = ["ExportMetricsView", "MetricView"]

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
