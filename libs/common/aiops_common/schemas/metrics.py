"""Columnar batches of metric samples: the value type of ``metrics.raw``.

Every OTLP metric type and every Prometheus series normalizes into flat series
(Prometheus naming: histograms become ``_bucket``/``_sum``/``_count``) so that
one sample is always ``(series, timestamp, value)``. A batch stores the series
table once and the samples as three numpy columns, so tens of thousands of
samples cost one Kafka message and one decode.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from aiops_common.schemas._codec import SchemaError, decode_envelope, encode_envelope_with_rows

__all__ = [
    "STALE_NAN",
    "MetricBatch",
    "MetricBatchBuilder",
    "MetricKind",
    "SeriesMeta",
    "is_stale_marker",
    "series_key",
    "shard_of",
]

SCHEMA = "metrics.batch"
VERSION = 1

_STALE_BYTES = struct.pack("<Q", 0x7FF0000000000002)

STALE_NAN: float = struct.unpack("<d", _STALE_BYTES)[0]
"""Prometheus' stale marker: a NaN with this exact bit pattern means "the series ended here".

It is kept bit for bit (numpy columns and the batch codec copy the bits), so the
stream layer can close the series instead of treating the NaN as a value.
"""


def is_stale_marker(value: float) -> bool:
    """True for :data:`STALE_NAN` and no other value (any other NaN is a plain NaN)."""
    return struct.pack("<d", value) == _STALE_BYTES


class MetricKind(enum.StrEnum):
    """What a series measures, which decides how the stream layer aggregates it."""

    GAUGE = "gauge"
    COUNTER = "counter"  # monotonic cumulative: rate/increase with reset handling
    DELTA = "delta"  # per-interval increments (OTLP delta temporality)
    HISTOGRAM = "histogram"  # one of a histogram's _bucket/_sum/_count series
    SUMMARY = "summary"  # one of a summary's quantile/_sum/_count series
    UNKNOWN = "unknown"


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """Stable identity of a series: ``name{k="v",...}`` with labels sorted, values escaped as Prometheus does.

    >>> series_key("up", {"job": 'a"b', "env": "prod"})
    'up{env="prod",job="a\\\\"b"}'
    """
    inner = ",".join(f'{k}="{_escape(labels[k])}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


def shard_of(key: str, partitions: int) -> int:
    """Partition a series always lands on (crc32 is stable across processes)."""
    return zlib.crc32(key.encode()) % partitions


class _Memo:
    """What a SeriesMeta computes on first use: its key, the key's crc32, its packed table row."""

    __slots__ = ("crc", "key", "row")

    def __init__(self, key: str) -> None:
        self.key = key
        self.crc = zlib.crc32(key.encode())
        self.row: bytes | None = None


@dataclass(frozen=True, slots=True)
class SeriesMeta:
    """One series: its name, labels, kind and unit.

    Its key, the key's crc32 and its packed row of a batch's series table are
    computed on first use and kept, so a series that a producer reuses across
    batches (the ingestion service's series cache) pays for them once, while
    decoding, which builds thousands of these, pays for none of them.
    ``labels`` must not change after construction.
    """

    name: str
    labels: Mapping[str, str]
    kind: MetricKind = MetricKind.GAUGE
    unit: str = ""
    _memo: _Memo | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def key(self) -> str:
        memo = self._memo
        return (memo or self._memoize()).key

    def shard(self, partitions: int) -> int:
        """The partition of this series among ``partitions``: ``shard_of(self.key, partitions)``."""
        memo = self._memo
        return (memo or self._memoize()).crc % partitions

    def _packed_row(self, pack: Callable[[object], bytes]) -> bytes:
        """This series as one row of a batch's series table, packed by ``pack`` (a msgpack packer's) once."""
        memo = self._memo or self._memoize()
        row = memo.row
        if row is None:
            row = memo.row = pack([self.name, dict(self.labels), self.kind.value, self.unit])
        return row

    def _memoize(self, key: str | None = None) -> _Memo:
        """Compute and keep the memo; ``key`` when the caller has ``series_key`` of this series already."""
        memo = _Memo(series_key(self.name, self.labels) if key is None else key)
        object.__setattr__(self, "_memo", memo)
        return memo


_KINDS = {kind.value: kind for kind in MetricKind}


def _series_from_row(row: bytes) -> SeriesMeta:
    """One packed row of a batch's series table: ``[name, labels, kind, unit]``."""
    try:
        name, labels, kind, unit = msgpack.unpackb(row, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise SchemaError(f"malformed {SCHEMA} series row: {exc}") from exc
    if not (isinstance(name, str) and isinstance(labels, dict) and isinstance(unit, str)) or kind not in _KINDS:
        raise SchemaError(f"malformed {SCHEMA} series row: {name!r}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise SchemaError(f"malformed {SCHEMA} series row: {name!r} has labels that are not strings")
    return SeriesMeta(name, labels, _KINDS[kind], unit)


class _SeriesRows:
    """Decoded series by their packed row, kept across batches, at most about ``2 * capacity`` of them.

    A producer sends the same series with every batch, and a row's bytes are the same
    every time (the producer packs each series once), so a consumer decodes each
    series once too, and gets the same ``SeriesMeta``, with its key and shard computed,
    batch after batch. Two generations: a full young one becomes the old one, and rows
    still in use move back to the young one when they are next seen.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._young: dict[bytes, SeriesMeta] = {}
        self._old: dict[bytes, SeriesMeta] = {}

    def get(self, row: bytes) -> SeriesMeta:
        meta = self._young.get(row)
        if meta is None:
            meta = self._old.pop(row, None) or _series_from_row(row)
            if len(self._young) >= self.capacity:
                self._old, self._young = self._young, {}
            self._young[row] = meta
        return meta


_DECODED_SERIES = _SeriesRows(100_000)


def _same_series(meta: SeriesMeta, name: str, labels: Mapping[str, str]) -> bool:
    return meta.name == name and meta.labels == labels


@dataclass(slots=True)
class MetricBatch:
    """Samples of many series: ``series[sid[i]]`` had ``value[i]`` at ``ts_ms[i]``."""

    series: list[SeriesMeta]
    sid: npt.NDArray[np.uint32]
    ts_ms: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.sid.shape[0])

    def samples(self) -> Iterator[tuple[SeriesMeta, int, float]]:
        for s, t, v in zip(self.sid.tolist(), self.ts_ms.tolist(), self.value.tolist(), strict=True):
            yield self.series[s], t, v

    def encode(self) -> bytes:
        # The series table is spliced in from each series' packed row: a producer that
        # keeps its SeriesMeta objects across batches packs each series once.
        body: dict[str, Any] = {
            "sid": self.sid.astype("<u4").tobytes(),
            "ts": self.ts_ms.astype("<i8").tobytes(),
            "val": self.value.astype("<f8").tobytes(),
        }
        pack = msgpack.Packer(use_bin_type=True).pack
        rows = [m._packed_row(pack) for m in self.series]
        return encode_envelope_with_rows(SCHEMA, VERSION, "series", rows, body)

    @classmethod
    def decode(cls, data: bytes) -> MetricBatch:
        _, body = decode_envelope(data, SCHEMA, (VERSION,), rows_field="series", rows=_DECODED_SERIES.get)
        try:
            series = body["series"]
            sid = np.frombuffer(body["sid"], dtype="<u4")
            ts = np.frombuffer(body["ts"], dtype="<i8")
            val = np.frombuffer(body["val"], dtype="<f8")
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"malformed {SCHEMA}: {exc}") from exc
        if not (sid.shape == ts.shape == val.shape):
            raise SchemaError(f"malformed {SCHEMA}: column lengths differ")
        if sid.size and int(sid.max()) >= len(series):
            raise SchemaError(f"malformed {SCHEMA}: series index out of range")
        return cls(series, sid, ts, val)


@dataclass(slots=True)
class MetricBatchBuilder:
    """Accumulates samples and splits them into one batch per partition.

    Two ways in, which can be mixed. :meth:`add` takes a name and labels per sample
    and finds the series itself. The bulk path is for a producer that keeps its
    series: it gets an id once per series with :meth:`series_id` (passing
    ``meta.key``, or a key of its own that tells series apart) and adds samples by
    id with :meth:`append` or :meth:`extend`.

    >>> b = MetricBatchBuilder(partitions=4)
    >>> up = SeriesMeta("up", {"job": "api"})
    >>> sid = b.series_id(up, up.key)
    >>> b.extend([sid, sid], [1_000, 2_000], [1.0, 0.0])
    >>> b.add("up", {"job": "api"}, 3_000, 1.0)
    >>> [(m.name, t, v) for m, t, v in b.build().samples()]
    [('up', 1000, 1.0), ('up', 2000, 0.0), ('up', 3000, 1.0)]
    """

    partitions: int = 1
    _index: dict[Hashable, int] = field(default_factory=dict)
    _series: list[SeriesMeta] = field(default_factory=list)
    _sid: list[int] = field(default_factory=list)
    _ts: list[int] = field(default_factory=list)
    _val: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._sid)

    @property
    def series_count(self) -> int:
        return len(self._series)

    def add(
        self,
        name: str,
        labels: Mapping[str, str],
        ts_ms: int,
        value: float,
        kind: MetricKind = MetricKind.GAUGE,
        unit: str = "",
    ) -> None:
        key = series_key(name, labels)
        sid = self._index.get(key)
        if sid is None or not _same_series(self._series[sid], name, labels):
            meta = SeriesMeta(name, dict(sorted(labels.items())), kind, unit)
            meta._memoize(key)
            sid = self.series_id(meta, key)
        self._sid.append(sid)
        self._ts.append(ts_ms)
        self._val.append(value)

    def series_id(self, meta: SeriesMeta, key: Hashable) -> int:
        """The id of the series ``key`` names, adding ``meta`` as that series if it is new.

        Series keys are not quite unique (a label value may contain ``",``), so when
        ``key`` already names a series with other labels, the exact label set decides.
        """
        sid = self._index.get(key)
        if sid is None:
            sid = self._index[key] = len(self._series)
            self._series.append(meta)
            return sid
        known = self._series[sid]
        if known is meta or _same_series(known, meta.name, meta.labels):
            return sid
        return self.series_id(meta, (meta.name, tuple(sorted(meta.labels.items()))))

    def append(self, sid: int, ts_ms: int, value: float) -> None:
        """One sample of the series :meth:`series_id` returned ``sid`` for."""
        self._sid.append(sid)
        self._ts.append(ts_ms)
        self._val.append(value)

    def extend(self, sids: Sequence[int], ts_ms: Sequence[int], values: Sequence[float]) -> None:
        """Many samples at once: ``values[i]`` of series ``sids[i]`` at ``ts_ms[i]``."""
        if not len(sids) == len(ts_ms) == len(values):
            raise ValueError(f"column lengths differ: {len(sids)} ids, {len(ts_ms)} times, {len(values)} values")
        self._sid.extend(sids)
        self._ts.extend(ts_ms)
        self._val.extend(values)

    def build(self) -> MetricBatch:
        sid = np.asarray(self._sid, dtype=np.int64)
        if sid.size and (int(sid.min()) < 0 or int(sid.max()) >= len(self._series)):
            raise ValueError("a sample refers to a series id this builder did not hand out")
        return MetricBatch(
            list(self._series),
            sid.astype(np.uint32),
            np.asarray(self._ts, dtype=np.int64),
            np.asarray(self._val, dtype=np.float64),
        )

    def by_partition(self) -> dict[int, MetricBatch]:
        """One batch per partition that has samples, each holding the series hashed to it."""
        whole = self.build()
        if self.partitions <= 1 or not whole.series:
            return {0: whole} if len(whole) else {}
        partitions, series = self.partitions, whole.series
        shard = np.fromiter((m.shard(partitions) for m in series), dtype=np.int64, count=len(series))
        # One stable sort of the series and one of the samples group both by partition
        # (keeping their order), so each batch is a slice whatever the partition count.
        series_order = np.argsort(shard, kind="stable")
        series_count = np.bincount(shard, minlength=partitions)
        series_end = np.cumsum(series_count)
        local = np.empty(len(series), dtype=np.uint32)
        local[series_order] = np.arange(len(series)) - np.repeat(series_end - series_count, series_count)
        sample_shard = shard[whole.sid]
        sample_order = np.argsort(sample_shard, kind="stable")
        sample_end = np.cumsum(np.bincount(sample_shard, minlength=partitions))
        sid, ts, value = local[whole.sid[sample_order]], whole.ts_ms[sample_order], whole.value[sample_order]
        ordered = [series[i] for i in series_order.tolist()]
        out: dict[int, MetricBatch] = {}
        for part in np.flatnonzero(np.bincount(sample_shard, minlength=partitions)).tolist():
            first, last = (int(sample_end[part - 1]) if part else 0), int(sample_end[part])
            series_first, series_last = int(series_end[part] - series_count[part]), int(series_end[part])
            out[part] = MetricBatch(
                ordered[series_first:series_last], sid[first:last], ts[first:last], value[first:last]
            )
        return out
