"""Columnar batches of metric samples: the value type of ``metrics.raw``.

Every OTLP metric type and every Prometheus series normalizes into flat series
(Prometheus naming: histograms become ``_bucket``/``_sum``/``_count``) so that
one sample is always ``(series, timestamp, value)``. A batch stores the series
table once and the samples as three numpy columns, so tens of thousands of
samples cost one Kafka message and one decode.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from aiops_common.schemas._codec import SchemaError, decode_envelope, encode_envelope

__all__ = ["MetricBatch", "MetricBatchBuilder", "MetricKind", "SeriesMeta", "series_key", "shard_of"]

SCHEMA = "metrics.batch"
VERSION = 1


class MetricKind(enum.StrEnum):
    """What a series measures, which decides how the stream layer aggregates it."""

    GAUGE = "gauge"
    COUNTER = "counter"  # monotonic cumulative: rate/increase with reset handling
    DELTA = "delta"  # per-interval increments (OTLP delta temporality)
    HISTOGRAM = "histogram"  # one of a histogram's _bucket/_sum/_count series
    SUMMARY = "summary"  # one of a summary's quantile/_sum/_count series
    UNKNOWN = "unknown"


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """Stable identity of a series: ``name{k="v",...}`` with labels sorted."""
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


def shard_of(key: str, partitions: int) -> int:
    """Partition a series always lands on (crc32 is stable across processes)."""
    return zlib.crc32(key.encode()) % partitions


@dataclass(frozen=True, slots=True)
class SeriesMeta:
    name: str
    labels: Mapping[str, str]
    kind: MetricKind = MetricKind.GAUGE
    unit: str = ""

    @property
    def key(self) -> str:
        return series_key(self.name, self.labels)


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
        body: dict[str, Any] = {
            "series": [[m.name, dict(m.labels), m.kind.value, m.unit] for m in self.series],
            "sid": self.sid.astype("<u4").tobytes(),
            "ts": self.ts_ms.astype("<i8").tobytes(),
            "val": self.value.astype("<f8").tobytes(),
        }
        return encode_envelope(SCHEMA, VERSION, body)

    @classmethod
    def decode(cls, data: bytes) -> MetricBatch:
        _, body = decode_envelope(data, SCHEMA, (VERSION,))
        try:
            series = [SeriesMeta(name, labels, MetricKind(kind), unit) for name, labels, kind, unit in body["series"]]
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
    """Accumulates samples and splits them into one batch per partition."""

    partitions: int = 1
    _index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = field(default_factory=dict)
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
        ident = (name, tuple(sorted(labels.items())))
        idx = self._index.get(ident)
        if idx is None:
            idx = len(self._series)
            self._index[ident] = idx
            self._series.append(SeriesMeta(name, dict(ident[1]), kind, unit))
        self._sid.append(idx)
        self._ts.append(ts_ms)
        self._val.append(value)

    def build(self) -> MetricBatch:
        return MetricBatch(
            list(self._series),
            np.asarray(self._sid, dtype=np.uint32),
            np.asarray(self._ts, dtype=np.int64),
            np.asarray(self._val, dtype=np.float64),
        )

    def by_partition(self) -> dict[int, MetricBatch]:
        """One batch per partition, each holding only the series hashed to it."""
        whole = self.build()
        if self.partitions <= 1 or not whole.series:
            return {0: whole} if len(whole) else {}
        shard = np.fromiter(
            (shard_of(m.key, self.partitions) for m in whole.series), dtype=np.int64, count=len(whole.series)
        )
        sample_shard = shard[whole.sid]
        out: dict[int, MetricBatch] = {}
        for part in np.unique(sample_shard).tolist():
            mask = sample_shard == part
            used = np.flatnonzero(shard == part)
            remap = np.full(len(whole.series), -1, dtype=np.int64)
            remap[used] = np.arange(used.size)
            out[int(part)] = MetricBatch(
                [whole.series[i] for i in used.tolist()],
                remap[whole.sid[mask]].astype(np.uint32),
                whole.ts_ms[mask],
                whole.value[mask],
            )
        return out
