"""Wire-compatible views of remote write's WriteRequest that leave series and labels as their serialized bytes.

Parsing a ``prometheus.WriteRequest`` into full messages and reading every label
and sample through the protobuf API costs microseconds per series, more than
Prometheus spends storing it. These views read the same bytes with
``repeated bytes`` in place of the ``TimeSeries`` and ``Label`` messages (both
are length-delimited fields, so the wire format is identical): the request parses
into one bytes object per series, a series into one bytes object per label.
:func:`single_sample_tails` then decodes, for all series of a request at once, the
one sample at the end of each series as Prometheus sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# Imported for its side effect too: it registers prometheus.Sample and MetricMetadata, which the views reuse.
from opentelemetry.exporter.prometheus_remote_write.gen import types_pb2

__all__ = ["RawTimeSeries", "RawWriteRequest", "SampleTails", "single_sample_tails"]

_PACKAGE = "aiops_ingestion.remote_write_view"
_FIELD = descriptor_pb2.FieldDescriptorProto


def _repeated(
    name: str, number: int, kind: _FIELD.Type.ValueType, type_name: str | None = None
) -> descriptor_pb2.FieldDescriptorProto:
    field = _FIELD(name=name, number=number, label=_FIELD.LABEL_REPEATED, type=kind)
    if type_name is not None:
        field.type_name = type_name
    return field


def _view_file() -> descriptor_pb2.FileDescriptorProto:
    # Exemplars (TimeSeries field 3) are left as unknown fields: nothing reads them.
    return descriptor_pb2.FileDescriptorProto(
        name="aiops_ingestion/remote_write_view.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[types_pb2.DESCRIPTOR.name],
        message_type=[
            descriptor_pb2.DescriptorProto(
                name="RawTimeSeries",
                field=[
                    _repeated("labels", 1, _FIELD.TYPE_BYTES),
                    _repeated("samples", 2, _FIELD.TYPE_MESSAGE, ".prometheus.Sample"),
                ],
            ),
            descriptor_pb2.DescriptorProto(
                name="RawWriteRequest",
                field=[
                    _repeated("timeseries", 1, _FIELD.TYPE_BYTES),
                    _repeated("metadata", 3, _FIELD.TYPE_MESSAGE, ".prometheus.MetricMetadata"),
                ],
            ),
        ],
    )


_file = descriptor_pool.Default().AddSerializedFile(_view_file().SerializeToString())

# Built at import time like a generated module's classes, so typed Any as those are.
RawWriteRequest: Any = message_factory.GetMessageClass(_file.message_types_by_name["RawWriteRequest"])
"""``prometheus.WriteRequest`` with each ``timeseries`` entry as the bytes of one ``TimeSeries``."""

RawTimeSeries: Any = message_factory.GetMessageClass(_file.message_types_by_name["RawTimeSeries"])
"""``prometheus.TimeSeries`` with each label as the bytes of one ``Label``; samples as messages."""

# A sample is the last field of a series, as Prometheus (one TimeSeries per sample) and
# every protobuf encoder write it: field 2, then a Sample with field 1 (the double value,
# left out when it is 0) and field 2 (the timestamp, a varint of 6 bytes for every
# millisecond time from 1971 to 2109). The tails, with their lengths:
#   with a value:    12 10 | 09 <8 bytes little-endian double> | 10 <6-byte varint>   (18)
#   value 0 omitted: 12 07 | 10 <6-byte varint>                                       (9)
_TS_BYTES = 6
_WITH_VALUE = 2 + 1 + 8 + 1 + _TS_BYTES
_WITHOUT_VALUE = 2 + 1 + _TS_BYTES
_VARINT_SHIFTS = np.arange(0, 7 * _TS_BYTES, 7, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class SampleTails:
    """Per series of a request: where its labels end (0: not decoded here), and its sample."""

    labels_end: list[int]
    ts_ms: list[int]
    value: list[float]


def single_sample_tails(series: Sequence[bytes]) -> SampleTails:
    """Decode the one sample at the end of each serialized ``TimeSeries``, all series at once.

    ``labels_end[i]`` is the length of ``series[i]`` without its sample tail, or 0
    when the series does not end in one of the two tails above (several samples,
    exemplars, an unusual timestamp): such a series must be parsed in full. The
    bytes before a tail are only the labels when they are a well-formed label list;
    the caller must check that (a cache of label lists already seen does).
    """
    count = len(series)
    lengths = np.fromiter(map(len, series), dtype=np.int64, count=count)
    data = np.frombuffer(b"".join(series), dtype=np.uint8)
    ends = np.cumsum(lengths)
    # The last _WITH_VALUE bytes of every series, zeros where a series is shorter.
    offsets = ends[:, None] + np.arange(-_WITH_VALUE, 0)
    tails = np.where(offsets >= (ends - lengths)[:, None], data[np.clip(offsets, 0, None)], 0).astype(np.uint8)
    varint = tails[:, -_TS_BYTES:]
    varint_ok = (varint[:, :-1] >= 0x80).all(axis=1) & (varint[:, -1] < 0x80)
    ts_tag = tails[:, -_TS_BYTES - 1] == 0x10
    with_value = (
        varint_ok
        & ts_tag
        & (tails[:, 0] == 0x12)
        & (tails[:, 1] == _WITH_VALUE - 2)
        & (tails[:, 2] == 0x09)
        & (lengths >= _WITH_VALUE)
    )
    start = _WITH_VALUE - _WITHOUT_VALUE
    without_value = (
        varint_ok
        & ts_tag
        & (tails[:, start] == 0x12)
        & (tails[:, start + 1] == _WITHOUT_VALUE - 2)
        & (lengths >= _WITHOUT_VALUE)
        & ~with_value
    )
    ts = ((varint.astype(np.int64) & 0x7F) << _VARINT_SHIFTS).sum(axis=1)
    value = np.ascontiguousarray(tails[:, 3:11]).view("<f8").reshape(count)
    value = np.where(with_value, value, 0.0)
    labels_end: npt.NDArray[np.int64] = np.select(
        [with_value, without_value], [lengths - _WITH_VALUE, lengths - _WITHOUT_VALUE], 0
    )
    return SampleTails(labels_end.tolist(), ts.tolist(), value.tolist())
