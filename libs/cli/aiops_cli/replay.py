"""``aiops replay``: send a CSV of timestamped values through the ingestion API, as an agent catching up would.

Each value column becomes one series. The samples go to ``POST /api/v1/metrics/write``
in time order, in requests of ``batch`` samples, each acknowledged (written to the
broker) before the next is sent; a 429 or 503 is retried after its ``Retry-After``,
any other refusal stops the replay with the server's message. By default the times
are moved forward by a whole number of minutes so that the last sample lands in
the current minute: the stream layer's windows then line up with the file's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
from aiops_common.schemas.prometheus_names import prometheus_name

__all__ = [
    "ReplayError",
    "ReplaySeries",
    "describe",
    "post_samples",
    "read_series",
    "sample_requests",
    "send",
    "shift_to_end",
]

_MINUTE_MS = 60_000


class ReplayError(Exception):
    """The file cannot be read as series, or the server refused a request."""


@dataclass(frozen=True, slots=True)
class ReplaySeries:
    name: str
    labels: dict[str, str]
    ts_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    skipped: int
    """Rows of the file without a finite value in this column."""


def _times_ms(column: object) -> npt.NDArray[np.int64]:
    import pandas as pd

    series = pd.Series(column)
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        # Unix seconds, or milliseconds when too large to be seconds of this era.
        scale = 1.0 if float(numeric.abs().max()) > 1e11 else 1000.0
        return np.asarray(np.round(numeric.to_numpy(dtype=np.float64) * scale), dtype=np.int64)
    try:
        parsed = pd.to_datetime(series, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise ReplayError(f"the time column does not hold times: {exc}") from None
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise ReplayError(f"the time column has no time in data row {row + 1}")
    # Whatever unit pandas parsed into (seconds to nanoseconds), counted in milliseconds.
    return np.asarray((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1), dtype=np.int64)


def read_series(
    path: Path,
    time_column: str = "timestamp",
    value_columns: Sequence[str] = (),
    name: str | None = None,
    labels: dict[str, str] | None = None,
) -> list[ReplaySeries]:
    """The series of a CSV file: one per value column (every other numeric column when none are named).

    Names: ``name`` (or the file's stem) for a single column; ``<name>_<column>`` for several.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from None
    if time_column not in frame.columns:
        raise ReplayError(f"{path} has no column {time_column!r} (columns: {', '.join(map(str, frame.columns))})")
    columns = list(value_columns) or [
        str(c) for c in frame.columns if c != time_column and pd.api.types.is_numeric_dtype(frame[c])
    ]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReplayError(f"{path} has no column {missing[0]!r}")
    if not columns:
        raise ReplayError(f"{path} has no numeric column besides {time_column!r}")
    ts = _times_ms(frame[time_column])
    base = prometheus_name(name or path.stem)
    out = []
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        keep = np.isfinite(values)
        order = np.argsort(ts[keep], kind="stable")
        out.append(
            ReplaySeries(
                name=base if len(columns) == 1 else f"{base}_{prometheus_name(column)}",
                labels=dict(labels or {}),
                ts_ms=ts[keep][order],
                values=values[keep][order],
                skipped=int((~keep).sum()),
            )
        )
    return out


def shift_to_end(series: Sequence[ReplaySeries], end_ms: int) -> list[ReplaySeries]:
    """Move every time forward (or back) by whole minutes so that the latest sample falls in ``end_ms``'s minute."""
    latest = max((int(s.ts_ms[-1]) for s in series if s.ts_ms.size), default=None)
    if latest is None:
        return list(series)
    shift = (end_ms // _MINUTE_MS - latest // _MINUTE_MS) * _MINUTE_MS
    return [ReplaySeries(s.name, s.labels, s.ts_ms + shift, s.values, s.skipped) for s in series]


def sample_requests(series: Sequence[ReplaySeries], batch: int) -> Iterator[list[dict[str, object]]]:
    """The samples of all series in time order, ``batch`` per request body."""
    if batch <= 0:
        raise ValueError("batch must be positive")
    ts = np.concatenate([s.ts_ms for s in series]) if series else np.zeros(0, np.int64)
    which = np.concatenate([np.full(s.ts_ms.size, i) for i, s in enumerate(series)]) if series else ts
    position = np.concatenate([np.arange(s.ts_ms.size) for s in series]) if series else ts
    order = np.argsort(ts, kind="stable")
    for first in range(0, order.size, batch):
        rows = []
        for i in order[first : first + batch].tolist():
            s = series[int(which[i])]
            j = int(position[i])
            rows.append({"name": s.name, "labels": s.labels, "value": float(s.values[j]), "timestamp": int(s.ts_ms[j])})
        yield rows


def _retry_after_s(response: httpx.Response) -> float:
    try:
        return max(0.1, min(30.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


def post_samples(client: httpx.Client, base_url: str, rows: list[dict[str, object]], attempts: int = 20) -> None:
    """Post one request body to the JSON metrics API and return once it is acknowledged.

    A 429 or 503 is retried after its ``Retry-After``, an unreachable server after 1 s;
    any other refusal raises :class:`ReplayError` with the server's message.
    """
    url = base_url.rstrip("/") + "/api/v1/metrics/write"
    for attempt in range(attempts):
        try:
            response = client.post(url, json={"samples": rows})
        except httpx.TransportError as exc:
            if attempt + 1 == attempts:
                raise ReplayError(f"cannot reach {url}: {exc}") from None
            time.sleep(1.0)
            continue
        if response.status_code in (429, 503) and attempt + 1 < attempts:
            time.sleep(_retry_after_s(response))
            continue
        if response.status_code >= 300:
            raise ReplayError(f"{url} answered {response.status_code}: {_message(response)}")
        return


def send(
    base_url: str,
    requests: Iterator[list[dict[str, object]]],
    progress: Callable[[int], object] | None = None,
    timeout_s: float = 30.0,
) -> int:
    """Post every request body, each after the previous one was acknowledged; the samples sent."""
    sent = 0
    with httpx.Client(timeout=timeout_s) as client:
        for rows in requests:
            post_samples(client, base_url, rows)
            sent += len(rows)
            if progress is not None:
                progress(len(rows))
    return sent


def _message(response: httpx.Response) -> str:
    """The server's whole refusal: its ``error`` text when that is all the body holds, else the body as sent."""
    try:
        body = response.json()
    except ValueError:
        return response.text or "(empty body)"
    if isinstance(body, dict) and set(body) == {"error"}:
        return str(body["error"])
    return response.text


def describe(series: Sequence[ReplaySeries]) -> str:
    """One line per series: name, samples, time span, rows skipped."""
    lines = []
    for s in series:
        if s.ts_ms.size:
            span_h = (int(s.ts_ms[-1]) - int(s.ts_ms[0])) / 3_600_000
            first = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(s.ts_ms[0]) / 1000))
            line = f"{s.name}: {s.ts_ms.size} samples over {span_h:.1f} h from {first}"
        else:
            line = f"{s.name}: no samples"
        if s.skipped:
            line += f" ({s.skipped} rows without a value skipped)"
        lines.append(line)
    return "\n".join(lines)
