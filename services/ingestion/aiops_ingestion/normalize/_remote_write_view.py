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

# Imported for its side effect too: it registers prometheus.Sample and MetricMetadata, which the views reuse.
from aiops_common.prompb import types_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

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
# millisecond time from 1971 to 2109). The two tails, as (mask, expected) byte patterns
# of the last 18 bytes of a series; varint bytes are only checked for their top bit:
#   with a value:    12 10 | 09 <8 bytes little-endian double> | 10 <6-byte varint>
#   value 0 omitted:                             12 07 | 10 <6-byte varint>
_TAIL = 18
_SHORT_TAIL = 9
_VARINT = (0x80,) * 5 + (0x80,)
_WITH_VALUE = (
    np.array((0xFF, 0xFF, 0xFF, *(0,) * 8, 0xFF, *_VARINT), dtype=np.uint8),
    np.array((0x12, 0x10, 0x09, *(0,) * 8, 0x10, *(0x80,) * 5, 0), dtype=np.uint8),
)
_WITHOUT_VALUE = (
    np.array((*(0,) * 9, 0xFF, 0xFF, 0xFF, *_VARINT), dtype=np.uint8),
    np.array((*(0,) * 9, 0x12, 0x07, 0x10, *(0x80,) * 5, 0), dtype=np.uint8),
)
_VARINT_WEIGHTS = 1 << np.arange(0, 42, 7, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class SampleTails:
    """Per series of a request: where its labels end (0: not decoded here), and its sample."""

    labels_end: list[int]
    ts_ms: list[int]
    value: list[float]


def single_sample_tails(series: Sequence[bytes]) -> SampleTails:
    """Decode the sample at the end of each serialized ``TimeSeries``, all series at once.

    ``labels_end[i]`` is the length of ``series[i]`` without that sample, or 0 when
    the series does not end in one of the two tails above (no sample, exemplars, an
    unusual timestamp): such a series must be parsed in full. The bytes before a
    tail are only labels when they parse on their own into labels and no sample;
    the caller must check that (once per label list: see ``SeriesCache``).
    """
    count = len(series)
    if not count:
        return SampleTails([], [], [])
    lengths = np.fromiter(map(len, series), dtype=np.int64, count=count)
    data = np.frombuffer(b"".join(series), dtype=np.uint8)
    offsets = np.cumsum(lengths)[:, None] + np.arange(-_TAIL, 0)
    if int(lengths.min()) >= _TAIL:
        tails = data[offsets]
    else:  # bytes before a short series' start belong to the previous one: zero them
        starts = (np.cumsum(lengths) - lengths)[:, None]
        tails = np.where(offsets >= starts, data[np.maximum(offsets, 0)], 0).astype(np.uint8)
    with_value = ((tails & _WITH_VALUE[0]) == _WITH_VALUE[1]).all(axis=1) & (lengths >= _TAIL)
    without_value = ((tails & _WITHOUT_VALUE[0]) == _WITHOUT_VALUE[1]).all(axis=1) & (lengths >= _SHORT_TAIL)
    ts = (tails[:, -6:] & 0x7F).astype(np.int64) @ _VARINT_WEIGHTS
    value = np.where(with_value, tails[:, 3:11].copy().view("<f8")[:, 0], 0.0)
    labels_end: npt.NDArray[np.int64] = np.where(
        with_value, lengths - _TAIL, np.where(without_value, lengths - _SHORT_TAIL, 0)
    )
    return SampleTails(labels_end.tolist(), ts.tolist(), value.tolist())
