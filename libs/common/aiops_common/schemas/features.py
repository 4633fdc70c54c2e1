"""Columnar batches of windowed feature vectors: the value type of ``features``."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from aiops_common.schemas._codec import SchemaError, decode_envelope, encode_envelope_with_rows
from aiops_common.schemas.metrics import MetricKind, SeriesMeta

__all__ = ["FEATURE_COLUMNS", "FeatureBatch", "FeatureRow", "window_length_ms_of", "window_series_name"]


def window_series_name(name: str, stat: str, length_ms: int) -> str:
    """The TSDB series the stream writes a feature series' ``stat`` of each window under: ``name:stat_<seconds>s``.

    >>> window_series_name("red.latency_s", "p95", 300_000)
    'red.latency_s:p95_300s'
    """
    return f"{name}:{stat}_{length_ms // 1000}s"


_WINDOW_SERIES = re.compile(r":[A-Za-z0-9]+_(\d+)s$")


def window_length_ms_of(name: str) -> int | None:
    """The window length of a series named by :func:`window_series_name` (one sample per window); None if not one.

    >>> window_length_ms_of("red.latency_s:p95_300s"), window_length_ms_of("cpu_seconds")
    (300000, None)
    """
    match = _WINDOW_SERIES.search(name)
    return int(match.group(1)) * 1000 if match else None


SCHEMA = "features.batch"
VERSION = 1

FEATURE_COLUMNS: tuple[str, ...] = (
    "value",  # the headline number: mean for gauges, rate for counters, the ratio/rate of derived series
    "count",  # real samples in the window (stale markers excluded)
    "sum",
    "mean",
    "min",
    "max",
    "stddev",  # population standard deviation
    "p50",
    "p95",
    "p99",
    "last",  # value of the latest sample by timestamp
    "rate",  # counters: increase / window seconds; NaN for other kinds
    "increase",  # counters: reset-aware increase since the last sample before the window
    "absent",  # 1.0: the series has no data in this window (stale marker or silent), every stat NaN
)


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """One row, for people and tests; detectors should read the columns."""

    series: SeriesMeta
    start_ms: int
    length_ms: int
    values: Mapping[str, float]

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.series.key, self.start_ms, self.length_ms)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.length_ms


@dataclass(slots=True)
class FeatureBatch:
    """Feature rows of many series and windows, the statistics as one ``(columns, rows)`` matrix.

    One row is one series over one tumbling window: ``series[sid[i]]`` between
    ``start_ms[i]`` and ``start_ms[i] + length_ms[i]``. The statistics sit in one
    float64 matrix, one column per name in :data:`FEATURE_COLUMNS`, so a detector
    reads ``batch.column("p95")`` as a vector over every series of the batch.

    Rows are identified by ``(series key, start_ms, length_ms)``; a producer that is
    restarted may deliver rows again (at-least-once), always with the same numbers
    and mostly in a batch with the same ``id``, so consumers deduplicate on rows.

    >>> from aiops_common.schemas.metrics import SeriesMeta
    >>> b = FeatureBatch.from_rows([SeriesMeta("up", {"job": "api"})], [0], [0], [10_000], {"mean": [1.0]})
    >>> FeatureBatch.decode(b.encode()).column("mean").tolist()
    [1.0]
    """

    series: list[SeriesMeta]
    sid: npt.NDArray[np.uint32]
    start_ms: npt.NDArray[np.int64]
    length_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    columns: tuple[str, ...] = FEATURE_COLUMNS
    id: str = ""
    """Deterministic: a batch delivered again after a restart carries the same id and rows."""
    source: str = ""
    """The stage that produced it, e.g. ``metrics``, ``red``, ``logs``."""
    watermark_ms: int = 0
    """The producer's event-time watermark when the batch was closed."""
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = int(self.sid.shape[0])
        if not (self.start_ms.shape == self.length_ms.shape == (n,)):
            raise SchemaError(f"malformed {SCHEMA}: row columns differ in length")
        if self.values.shape != (len(self.columns), n):
            raise SchemaError(f"malformed {SCHEMA}: values shape {self.values.shape} != {(len(self.columns), n)}")
        self._index = {name: i for i, name in enumerate(self.columns)}

    def __len__(self) -> int:
        return int(self.sid.shape[0])

    @property
    def end_ms(self) -> npt.NDArray[np.int64]:
        return self.start_ms + self.length_ms

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """One statistic for every row; all-NaN for a column this batch does not carry."""
        i = self._index.get(name)
        if i is None:
            return np.full(len(self), np.nan)
        column: npt.NDArray[np.float64] = self.values[i]
        return column

    def keys(self) -> list[tuple[str, int, int]]:
        """``(series key, start_ms, length_ms)`` of every row: the identity to deduplicate on."""
        skeys = [m.key for m in self.series]
        return [
            (skeys[s], t, n)
            for s, t, n in zip(self.sid.tolist(), self.start_ms.tolist(), self.length_ms.tolist(), strict=True)
        ]

    def rows(self) -> Iterator[FeatureRow]:
        matrix = self.values.T.tolist()
        for i, (s, t, n) in enumerate(
            zip(self.sid.tolist(), self.start_ms.tolist(), self.length_ms.tolist(), strict=True)
        ):
            yield FeatureRow(self.series[s], t, n, dict(zip(self.columns, matrix[i], strict=True)))

    def encode(self) -> bytes:
        # Series rows are packed once per SeriesMeta and kept: a stage that emits the same series every
        # window (the stream layer keeps its SeriesMeta objects) packs each of them once.
        pack = msgpack.Packer(use_bin_type=True).pack
        rows = [m._packed_row(pack) for m in self.series]
        body: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "watermark_ms": self.watermark_ms,
            "sid": self.sid.astype("<u4").tobytes(),
            "start": self.start_ms.astype("<i8").tobytes(),
            "length": self.length_ms.astype("<i8").tobytes(),
            "columns": list(self.columns),
            "values": np.ascontiguousarray(self.values, dtype="<f8").tobytes(),
        }
        return encode_envelope_with_rows(SCHEMA, VERSION, "series", rows, body)

    @classmethod
    def decode(cls, data: bytes) -> FeatureBatch:
        _, body = decode_envelope(data, SCHEMA, (VERSION,))
        try:
            series = [SeriesMeta(name, labels, MetricKind(kind), unit) for name, labels, kind, unit in body["series"]]
            sid = np.frombuffer(body["sid"], dtype="<u4")
            start = np.frombuffer(body["start"], dtype="<i8")
            length = np.frombuffer(body["length"], dtype="<i8")
            columns = tuple(str(c) for c in body["columns"])
            values = np.frombuffer(body["values"], dtype="<f8").reshape(len(columns), sid.shape[0])
            batch = cls(
                series,
                sid,
                start,
                length,
                values,
                columns,
                id=str(body.get("id", "")),
                source=str(body.get("source", "")),
                watermark_ms=int(body.get("watermark_ms", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"malformed {SCHEMA}: {exc}") from exc
        if sid.size and int(sid.max()) >= len(series):
            raise SchemaError(f"malformed {SCHEMA}: series index out of range")
        return batch

    @classmethod
    def from_rows(
        cls,
        series: Sequence[SeriesMeta],
        sid: Sequence[int],
        start_ms: Sequence[int],
        length_ms: Sequence[int],
        columns: Mapping[str, Sequence[float]],
        *,
        id: str = "",
        source: str = "",
        watermark_ms: int = 0,
    ) -> FeatureBatch:
        """Build a batch from plain lists; columns not given are NaN."""
        n = len(sid)
        values = np.full((len(FEATURE_COLUMNS), n), np.nan)
        for name, col in columns.items():
            if name not in FEATURE_COLUMNS:
                raise ValueError(f"unknown feature column {name!r}")
            values[FEATURE_COLUMNS.index(name)] = np.asarray(col, dtype=np.float64)
        return cls(
            list(series),
            np.asarray(sid, dtype=np.uint32),
            np.asarray(start_ms, dtype=np.int64),
            np.asarray(length_ms, dtype=np.int64),
            values,
            FEATURE_COLUMNS,
            id=id,
            source=source,
            watermark_ms=watermark_ms,
        )
