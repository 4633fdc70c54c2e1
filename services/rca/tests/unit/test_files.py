"""The loaders of ``aiops rca analyze``: every file read into a case's parts, every malformed one named exactly."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest
from aiops_rca import files
from aiops_rca.case import CaseChange, SeriesKey
from aiops_rca.files import CaseFileError, load_changes, load_metrics, load_topology, parse_time, series_key

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "rca"
T0 = 1767225600  # 2026-01-01T00:00:00Z
DYNAMO = "petInfo_AWS::DynamoDB::Table"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_docstring_examples() -> None:
    result = doctest.testmod(files)
    assert result.attempted > 0 and result.failed == 0


# parse_time


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1767225600", T0 * 1000),
        ("1767225600.125", T0 * 1000 + 125),
        (" 1767225600.5 ", T0 * 1000 + 500),
        ("2026-01-01T00:00:00Z", T0 * 1000),
        ("2026-01-01T00:00:00.250Z", T0 * 1000 + 250),
        ("2026-01-01T02:00:00+02:00", T0 * 1000),
        ("2026-01-01 00:00:10", T0 * 1000 + 10_000),  # no zone: UTC
    ],
)
def test_parse_time_reads_unix_seconds_and_rfc3339(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not a time: ''"),
        ("yesterday", "not a time: 'yesterday'"),
        ("2026-13-01T00:00:00Z", "not a time"),
        ("nan", "finite"),
        ("inf", "finite"),
        ("1767225600000", "milliseconds?"),
    ],
)
def test_parse_time_refuses_what_is_not_a_time(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("?", r"\?")):
        parse_time(text)


# series_key


def test_series_key_takes_the_longest_known_service_prefix() -> None:
    services = {"petInfo_AWS", DYNAMO}
    assert series_key(f"{DYNAMO}:red.latency_s:value_10s", services) == SeriesKey(DYNAMO, "red.latency_s:value_10s")
    assert series_key("petInfo_AWS:latency", services) == SeriesKey("petInfo_AWS", "latency")
    # No known prefix: split at the first ':' (the metric keeps the rest).
    assert series_key("cart:red.latency_s:p95", services) == SeriesKey("cart", "red.latency_s:p95")
    assert series_key(f"{DYNAMO}:x", set()) == SeriesKey("petInfo_AWS", ":DynamoDB::Table:x")
    # A known service that is the whole name is not a prefix: it leaves no metric.
    assert series_key("a:b", {"a:b", "a"}) == SeriesKey("a", "b")


@pytest.mark.parametrize(
    ("name", "says"),
    [("latency", "no ':'"), (":latency", "names no service"), ("payment:", "names no metric after service 'payment'")],
)
def test_series_key_refuses_a_name_that_is_not_service_metric(name: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        series_key(name, {"payment"})


# load_topology


def test_load_topology_reads_the_topology_load_format() -> None:
    services, edges = load_topology(EXAMPLES / "topology.json")
    assert services == ["frontend", "checkout", "catalog", "payment", "inventory", "postgres"]
    assert ("checkout", "payment") in edges and ("payment", "postgres") in edges and len(edges) == 6


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"services": [{"name": "a"}], "dependencies": [{"from": "a", "to": "b"}]}', "'b' is not a service"),
        ('{"services": [{"tier": "x"}]}', "services[0].name: missing"),
        ("[1, 2]", "must be an object"),
        ('{"services": [', "not JSON: Expecting value at line 1, column 15"),
    ],
)
def test_load_topology_errors_name_the_file_and_the_item(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, "topology.json", text)
    with pytest.raises(CaseFileError) as caught:
        load_topology(path)
    assert str(caught.value).startswith(f"{path}: ") and says in str(caught.value)
    assert caught.value.path == path


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(CaseFileError, match=f"{missing}: cannot read: No such file"):
        load_topology(missing)
    binary = tmp_path / "metrics.csv"
    binary.write_bytes(b"timestamp,a:b\n\xff\xfe,1\n")
    with pytest.raises(CaseFileError, match=f"{binary}: not UTF-8 text"):
        load_metrics(binary)
    with pytest.raises(CaseFileError, match="cannot read"):
        load_changes(tmp_path)  # a folder


# load_metrics


def test_load_metrics_reads_columns_sorts_rows_and_keeps_gaps(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "metrics.csv",
        f"timestamp,{DYNAMO}:red.latency_s:p95,checkout:red.error_rate\n"
        f"{T0 + 20},0.3, \n"
        f"{T0},0.1,0.01\n"
        "\n"
        f"2026-01-01T00:00:10Z, 0.2 ,NaN\n",
    )
    grid, series = load_metrics(path, ["checkout", DYNAMO])
    assert grid.dtype == np.int64 and grid.tolist() == [T0 * 1000, T0 * 1000 + 10_000, T0 * 1000 + 20_000]
    assert list(series) == [SeriesKey(DYNAMO, "red.latency_s:p95"), SeriesKey("checkout", "red.error_rate")]
    assert series[SeriesKey(DYNAMO, "red.latency_s:p95")].tolist() == [0.1, 0.2, 0.3]
    errors = series[SeriesKey("checkout", "red.error_rate")]
    assert errors.dtype == np.float64 and errors[0] == 0.01 and math.isnan(errors[1]) and math.isnan(errors[2])


def test_load_metrics_reads_fractional_seconds_a_bom_and_any_timestamp_column_place(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_bytes(f"\ufeffa:m,Timestamp\n1,{T0}.5\n2,{T0 + 1}.5\n".encode())
    grid, series = load_metrics(path)
    assert grid.tolist() == [T0 * 1000 + 500, T0 * 1000 + 1500]
    assert series[SeriesKey("a", "m")].tolist() == [1.0, 2.0]


def test_load_metrics_reads_the_example() -> None:
    services, _ = load_topology(EXAMPLES / "topology.json")
    grid, series = load_metrics(EXAMPLES / "metrics.csv", services)
    assert len(grid) == 720 and set(np.diff(grid).tolist()) == {10_000}
    assert len(series) == 24 and {k.service for k in series} == set(services)
    assert SeriesKey("payment", "red.latency_s:p95") in series


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty: expected a header line"),
        ("\n\n", "empty: expected a header line"),
        ("time,a:m\n1,2\n", "line 1: no 'timestamp' column in the header ['time', 'a:m']"),
        ("timestamp,a:m,timestamp\n1,2,3\n", "line 1: more than one 'timestamp' column"),
        ("timestamp\n1\n", "line 1: no SERVICE:METRIC column beside 'timestamp'"),
        ("timestamp,latency\n1,2\n", "line 1, column 'latency': 'latency' is not SERVICE:METRIC (no ':')"),
        ("timestamp,a:m,\n1,2,3\n", "line 1, column 3: no name"),
        ("timestamp,:m\n1,2\n", "column ':m': ':m' names no service"),
        ("timestamp,a:\n1,2\n", "column 'a:': 'a:' names no metric after service 'a'"),
        ("timestamp,a:m,a:m\n1,2,3\n", "column 'a:m': series a:m appears twice (also as 'a:m')"),
        ("timestamp,a:m\n", "no rows after the header"),
        ("timestamp,a:m\n1,2\n2\n", "line 3: 1 fields where the header has 2"),
        ("timestamp,a:m\n1,2\nsoon,3\n", "line 3, column 'timestamp': not a time: 'soon'"),
        ("timestamp,a:m\n1767225600000,3\n", "line 2, column 'timestamp': not a time: '1767225600000' is past"),
        ("timestamp,a:m\n1,2\n2,fast\n", "line 3, column 'a:m': not a number: 'fast'"),
        ("timestamp,a:m\n1,2\n\n1.0,3\n", "line 4: timestamp 1.0 again (first on line 2)"),
        ('timestamp,a:m\n1,"2\n', "line 2: not CSV: unexpected end of data"),
    ],
)
def test_load_metrics_errors_name_the_file_the_line_and_the_column(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, "metrics.csv", text)
    with pytest.raises(CaseFileError) as caught:
        load_metrics(path, ["a"])
    assert str(caught.value) == f"{path}: {says}" or (
        str(caught.value).startswith(f"{path}: ") and says in str(caught.value)
    ), str(caught.value)


# load_changes


def test_load_changes_reads_seconds_and_rfc3339_oldest_first(tmp_path: Path) -> None:
    payload = [
        {"ts": "2026-01-01T00:10:00Z", "service": "payment", "version": "v2.4.1", "id": "d-7"},
        {"ts": T0 + 0.5, "service": DYNAMO, "version": "", "kind": "config"},
        {"ts": str(T0 + 60), "service": " catalog ", "version": "v1.9.0"},
    ]
    path = write(tmp_path, "changes.json", json.dumps(payload))
    assert load_changes(path) == [
        CaseChange(T0 * 1000 + 500, DYNAMO, "", "config", ""),
        CaseChange((T0 + 60) * 1000, "catalog", "v1.9.0", "deployment", ""),
        CaseChange((T0 + 600) * 1000, "payment", "v2.4.1", "deployment", "d-7"),
    ]
    assert load_changes(write(tmp_path, "none.json", "[]")) == []


def test_load_changes_reads_the_example() -> None:
    changes = load_changes(EXAMPLES / "changes.json")
    assert [(c.service, c.version) for c in changes] == [("catalog", "v1.9.0"), ("payment", "v2.4.1")]


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"ts": 1}, 'must be a JSON list of {"ts", "service", "version"}, not dict'),
        ([1], '[0]: must be an object {"ts", "service", "version"}'),
        ([{"ts": 1, "service": "a"}], "[0].version: missing"),
        ([{"service": "a", "version": "v"}], "[0].ts: missing"),
        ([{"ts": 1, "version": "v"}], "[0].service: missing"),
        ([{"ts": 1, "service": "a", "version": "v", "when": 2}], "[0]: unknown keys ['when'] (known: ts, service"),
        ([{"ts": "soon", "service": "a", "version": "v"}], "[0].ts: not a time: 'soon'"),
        (
            [{"ts": True, "service": "a", "version": "v"}],
            "[0].ts: must be Unix seconds or an RFC 3339 string, not bool",
        ),
        ([{"ts": None, "service": "a", "version": "v"}], "[0].ts: must be Unix seconds"),
        ([{"ts": 1767225600000, "service": "a", "version": "v"}], "[0].ts: not a time: '1767225600000' is past"),
        ([{"ts": 1, "service": " ", "version": "v"}], "[0].service: empty"),
        ([{"ts": 1, "service": "a", "version": 2}], "[0].version: must be a string, not int"),
        ([{"ts": 1, "service": "a", "version": "v"}, {"ts": 1, "service": "b", "version": "v", "kind": 3}], "[1].kind"),
    ],
)
def test_load_changes_errors_name_the_file_the_item_and_the_field(tmp_path: Path, payload: object, says: str) -> None:
    path = write(tmp_path, "changes.json", json.dumps(payload))
    with pytest.raises(CaseFileError) as caught:
        load_changes(path)
    assert str(caught.value).startswith(f"{path}: {says}"), str(caught.value)


def test_load_changes_names_a_json_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "changes.json", '[{"ts": 1,\n "service": }]')
    with pytest.raises(CaseFileError, match=r"changes.json: not JSON: Expecting value at line 2, column 13"):
        load_changes(path)
