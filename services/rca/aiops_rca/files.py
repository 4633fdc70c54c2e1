"""The files of ``aiops rca analyze``: a topology, metrics as CSV and changes as JSON, read into a case's parts."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiops_rca.case import CaseChange, SeriesKey

__all__ = [
    "CaseFileError",
    "load_changes",
    "load_metrics",
    "load_topology",
    "parse_time",
    "series_key",
]

TIMESTAMP = "timestamp"
_CHANGE_KEYS = ("ts", "service", "version", "kind", "id")
# Past this many seconds (the year 5138) a Unix time is almost surely in milliseconds.
_MAX_UNIX_S = 1e11


class CaseFileError(ValueError):
    """A file that cannot be read into a case; the message names the file, where in it, and what is wrong."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)


def parse_time(text: str) -> int:
    """Milliseconds since the epoch of Unix seconds (fractional too) or an RFC 3339 time (UTC when it names no zone).

    >>> parse_time("1767225600.25"), parse_time("2026-01-01T00:00:00Z"), parse_time("2026-01-01T01:00:00+01:00")
    (1767225600250, 1767225600000, 1767225600000)
    >>> parse_time("yesterday")
    Traceback (most recent call last):
    ...
    ValueError: not a time: 'yesterday' (Unix seconds such as 1767225600.5, or RFC 3339 such as 2026-01-01T12:00:00Z)
    """
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return _unix_ms(seconds, text)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (Unix seconds such as 1767225600.5, or RFC 3339 such as 2026-01-01T12:00:00Z)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return round(at.timestamp() * 1000)


def _unix_ms(seconds: float, text: str) -> int:
    if not math.isfinite(seconds):
        raise ValueError(f"not a time: {text!r} (Unix seconds must be a finite number)")
    if abs(seconds) >= _MAX_UNIX_S:
        raise ValueError(f"not a time: {text!r} is past the year 5000 in Unix seconds; milliseconds? give seconds")
    return round(seconds * 1000)


def series_key(name: str, services: Collection[str]) -> SeriesKey:
    """``SERVICE:METRIC`` as a key, where both may hold ':': the service is the longest prefix before a ':' that is
    one of ``services``, else the part before the first ':'.

    >>> series_key("petInfo_AWS::DynamoDB::Table:red.latency_s:p95", {"petInfo_AWS::DynamoDB::Table"})
    SeriesKey(service='petInfo_AWS::DynamoDB::Table', metric='red.latency_s:p95')
    >>> series_key("payment:red.latency_s:p95", set())
    SeriesKey(service='payment', metric='red.latency_s:p95')
    """
    name = name.strip()
    if ":" not in name:
        raise ValueError(f"{name!r} is not SERVICE:METRIC (no ':')")
    cut = -1
    at = name.rfind(":")
    while at > 0:
        if name[:at] in services:
            cut = at
            break
        at = name.rfind(":", 0, at)
    if cut < 0:
        cut = name.index(":")
    service, metric = name[:cut], name[cut + 1 :]
    if not service:
        raise ValueError(f"{name!r} names no service before its ':'")
    if not metric:
        raise ValueError(f"{name!r} names no metric after service {service!r}")
    return SeriesKey(service, metric)


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: a spreadsheet's export starts with a byte order mark.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaseFileError(path, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CaseFileError(path, f"cannot read: {exc.strerror or exc}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise CaseFileError(path, f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None


def load_topology(path: Path | str) -> tuple[list[str], list[tuple[str, str]]]:
    """The services and call edges ``(caller, callee)`` of a topology file in the format of ``aiops topology load``."""
    from aiops_common.topology import TopologyFileError, parse_topology_file

    path = Path(path)
    try:
        parsed = parse_topology_file(_read_json(path))
    except TopologyFileError as exc:
        raise CaseFileError(path, str(exc)) from None
    return [s.name for s in parsed.services], list(parsed.dependencies)


def load_metrics(
    path: Path | str, services: Collection[str] = ()
) -> tuple[npt.NDArray[np.int64], dict[SeriesKey, npt.NDArray[np.float64]]]:
    """The time grid (ms, ascending) and every series on it from a CSV: a ``timestamp`` column (Unix seconds or
    RFC 3339) and one column per series named ``SERVICE:METRIC`` (see :func:`series_key`). Empty cells are NaN;
    rows may come in any order, but no time twice."""
    path = Path(path)
    rows = [(n, row) for n, row in _csv_rows(path) if any(cell.strip() for cell in row)]
    if not rows:
        raise CaseFileError(path, "empty: expected a header line with 'timestamp' and SERVICE:METRIC columns")
    header_line, header = rows[0]
    names = [cell.strip() for cell in header]
    where = f"line {header_line}"
    stamps = [i for i, name in enumerate(names) if name.lower() == TIMESTAMP]
    if len(stamps) != 1:
        found = "no" if not stamps else "more than one"
        raise CaseFileError(path, f"{where}: {found} {TIMESTAMP!r} column in the header {names}")
    time_col = stamps[0]
    keys: dict[int, SeriesKey] = {}
    seen: dict[SeriesKey, str] = {}
    for i, name in enumerate(names):
        if i == time_col:
            continue
        if not name:
            raise CaseFileError(path, f"{where}, column {i + 1}: no name (expected SERVICE:METRIC)")
        try:
            key = series_key(name, services)
        except ValueError as exc:
            raise CaseFileError(path, f"{where}, column {name!r}: {exc}") from None
        if key in seen:
            raise CaseFileError(path, f"{where}, column {name!r}: series {key} appears twice (also as {seen[key]!r})")
        keys[i] = key
        seen[key] = name
    if not keys:
        raise CaseFileError(path, f"{where}: no SERVICE:METRIC column beside {TIMESTAMP!r}")
    if len(rows) == 1:
        raise CaseFileError(path, "no rows after the header")

    times: list[int] = []
    columns = list(keys)
    values = np.full((len(rows) - 1, len(columns)), np.nan)
    line_of: dict[int, int] = {}
    for r, (line, row) in enumerate(rows[1:]):
        if len(row) != len(names):
            raise CaseFileError(path, f"line {line}: {len(row)} fields where the header has {len(names)}")
        try:
            ts = parse_time(row[time_col])
        except ValueError as exc:
            raise CaseFileError(path, f"line {line}, column {TIMESTAMP!r}: {exc}") from None
        if ts in line_of:
            raise CaseFileError(
                path, f"line {line}: timestamp {row[time_col].strip()} again (first on line {line_of[ts]})"
            )
        line_of[ts] = line
        times.append(ts)
        try:
            values[r] = [float(row[i]) if row[i] else math.nan for i in columns]
        except ValueError:
            # The slow path only where the fast one failed: blank cells, and the cell to name.
            for c, i in enumerate(columns):
                cell = row[i].strip()
                try:
                    values[r, c] = float(cell) if cell else math.nan
                except ValueError:
                    raise CaseFileError(path, f"line {line}, column {names[i]!r}: not a number: {cell!r}") from None
    order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
    grid = np.asarray(times, dtype=np.int64)[order]
    return grid, {keys[i]: np.ascontiguousarray(values[order, c]) for c, i in enumerate(columns)}


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    out: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            out.append((reader.line_num, row))
    except csv.Error as exc:
        raise CaseFileError(path, f"line {reader.line_num}: not CSV: {exc}") from None
    return out


def load_changes(path: Path | str) -> list[CaseChange]:
    """Deployments and config changes from a JSON list of ``{"ts", "service", "version", "kind"?, "id"?}``
    (``ts`` Unix seconds or RFC 3339; ``kind`` ``deployment`` unless given), oldest first."""
    path = Path(path)
    payload = _read_json(path)
    if not isinstance(payload, list):
        raise CaseFileError(
            path, f'must be a JSON list of {{"ts", "service", "version"}}, not {type(payload).__name__}'
        )
    changes: list[CaseChange] = []
    for i, item in enumerate(payload):
        where = f"[{i}]"
        if not isinstance(item, dict):
            raise CaseFileError(path, f'{where}: must be an object {{"ts", "service", "version"}}')
        unknown = sorted(set(item) - set(_CHANGE_KEYS))
        if unknown:
            raise CaseFileError(path, f"{where}: unknown keys {unknown} (known: {', '.join(_CHANGE_KEYS)})")
        for key in ("ts", "service", "version"):
            if key not in item:
                raise CaseFileError(path, f"{where}.{key}: missing")
        ts = item["ts"]
        try:
            if isinstance(ts, str):
                ts_ms = parse_time(ts)
            elif isinstance(ts, int | float) and not isinstance(ts, bool):
                ts_ms = _unix_ms(float(ts), str(ts))
            else:
                raise ValueError(f"must be Unix seconds or an RFC 3339 string, not {type(ts).__name__}")
        except ValueError as exc:
            raise CaseFileError(path, f"{where}.ts: {exc}") from None
        text: dict[str, str] = {}
        for key in ("service", "version", "kind", "id"):
            value = item.get(key, "")
            if not isinstance(value, str):
                raise CaseFileError(path, f"{where}.{key}: must be a string, not {type(value).__name__}")
            text[key] = value.strip()
        if not text["service"]:
            raise CaseFileError(path, f"{where}.service: empty")
        changes.append(CaseChange(ts_ms, text["service"], text["version"], text["kind"] or "deployment", text["id"]))
    return sorted(changes, key=lambda c: c.ts_ms)
