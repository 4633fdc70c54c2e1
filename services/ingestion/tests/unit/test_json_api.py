"""The JSON write APIs for metrics and logs validate with readable messages and normalize like the other paths."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiops_common.schemas import LogRecord
from aiops_ingestion.normalize import Enricher, InvalidPayloadError, Limits, parse_logs_write, parse_metrics_write

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000
NOW_NS = NOW_MS * 1_000_000


def metrics(body: Any, limits: Limits | None = None, enricher: Enricher | None = None) -> list[tuple[Any, ...]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    builder = parse_metrics_write(raw, limits or Limits(), enricher or Enricher(), 2, now_ms=NOW_MS)
    return [(m.name, dict(m.labels), m.kind.value, ts, v, m.unit) for m, ts, v in builder.build().samples()]


def logs(body: Any, limits: Limits | None = None, enricher: Enricher | None = None) -> list[LogRecord]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_logs_write(raw, limits or Limits(), enricher or Enricher(), now_ms=NOW_MS)


def refused(call: Any, body: Any) -> InvalidPayloadError:
    with pytest.raises(InvalidPayloadError) as caught:
        call(body)
    assert caught.value.status_code == 400
    return caught.value


# Metrics ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "ts_ms"),
    [
        ("2023-11-14T22:13:20Z", NOW_MS),
        ("2023-11-14T23:13:19.5+01:00", NOW_MS - 500),
        (1_700_000_000, NOW_MS),
        (1_699_999_999.25, NOW_MS - 750),
        (NOW_MS - 3, NOW_MS - 3),
        ("1700000000", NOW_MS),
        (None, NOW_MS),
    ],
)
def test_sample_timestamps_accept_rfc3339_unix_seconds_and_milliseconds(timestamp: Any, ts_ms: int) -> None:
    sample: dict[str, Any] = {"name": "cpu", "labels": {"service": "api"}, "value": 0.5}
    if timestamp is not None:
        sample["timestamp"] = timestamp
    assert metrics({"samples": [sample]}) == [("cpu", {"service": "api"}, "gauge", ts_ms, 0.5, "")]


def test_kind_is_explicit_or_inferred_and_labels_are_enriched() -> None:
    body = {
        "samples": [
            {"name": "orders_total", "labels": {"service": "shop"}, "value": 3},
            {"name": "temperature", "value": 21, "kind": "gauge", "unit": "Cel", "labels": {"service": "shop"}},
            {"name": "items", "value": 2, "kind": "delta"},
        ]
    }
    got = metrics(body, enricher=Enricher.from_mapping({"shop": {"team": "retail"}}))
    assert got == [
        ("orders_total", {"service": "shop", "team": "retail"}, "counter", NOW_MS, 3.0, ""),
        ("temperature", {"service": "shop", "team": "retail"}, "gauge", NOW_MS, 21.0, "Cel"),
        ("items", {}, "delta", NOW_MS, 2.0, ""),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "invalid metrics write body: body: Invalid JSON"),
        ({"samples": [{"labels": {}, "value": 1}]}, "samples[0].name: Field required"),
        ({"samples": [{"name": "", "value": 1}]}, "samples[0].name: String should have at least 1 character"),
        ({"samples": [{"name": "cpu", "value": "NaN"}]}, "samples[0].value: Input should be a finite number"),
        ({"samples": [{"name": "cpu", "value": 1, "timestamp": "yesterday"}]}, "neither RFC 3339 nor a Unix time"),
        ({"samples": [{"name": "cpu", "value": 1, "timestamp": "2023-11-14T22:13:20"}]}, "has no UTC offset"),
        ({"samples": [{"name": "cpu", "value": 1, "timestamp": 1e15}]}, "send Unix seconds or milliseconds"),
        ({"samples": [{"name": "cpu", "value": 1, "timestamp": 0}]}, "not a positive Unix time"),
        ({"samples": [{"name": "cpu", "value": 1, "timestamp": True}]}, "RFC 3339 string or a Unix time"),
        ({"samples": [{"name": "cpu", "value": 1, "kind": "meter"}]}, "samples[0].kind: Input should be"),
        ({"samples": [{"name": "cpu", "value": 1, "colour": "red"}]}, "samples[0].colour: Extra inputs"),
        ({"sample": []}, "samples: Field required"),
    ],
)
def test_malformed_metric_bodies_name_the_field(body: Any, message: str) -> None:
    assert message in refused(metrics, body).message


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({"name": "cpu usage", "value": 1}, "metric name 'cpu usage' is invalid"),
        ({"name": "cpu", "value": 1, "labels": {"host-name": "a"}}, "label name 'host-name' is invalid"),
        ({"name": "cpu", "value": 1, "timestamp": NOW_MS + 3_600_000}, "ahead of the server clock"),
    ],
)
def test_invalid_samples_refuse_the_request(sample: dict[str, Any], message: str) -> None:
    error = refused(metrics, {"samples": [{"name": "ok", "value": 1}, sample]})
    assert "1 of 2 samples invalid" in error.message and "samples[1]" in error.message and message in error.message


def test_label_values_that_are_numbers_become_strings() -> None:
    assert metrics({"samples": [{"name": "cpu", "value": 1, "labels": {"core": 3}}]})[0][1] == {"core": "3"}


def test_too_many_series_is_413() -> None:
    body = {"samples": [{"name": "cpu", "value": 1, "labels": {"i": str(i)}} for i in range(4)]}
    with pytest.raises(InvalidPayloadError) as caught:
        metrics(body, Limits(max_series_per_request=3))
    assert caught.value.status_code == 413


def test_non_json_content_type_is_415() -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        parse_metrics_write(b"{}", Limits(), Enricher(), 1, content_type="text/csv")
    assert caught.value.status_code == 415


# Logs ------------------------------------------------------------------------------------------------


def test_log_entries_map_onto_log_records() -> None:
    body = {
        "logs": [
            {
                "service": "api",
                "message": "card declined",
                "level": "error",
                "timestamp": "2023-11-14T22:13:20.25Z",
                "labels": {"order": "o-1"},
                "trace_id": "5B8EFFF798038103D269B633813FC60C",
                "span_id": "eee19b7ec3c1b174",
            },
            {"service": "api", "body": {"event": "login", "user": 7}, "severity": 13},
            {"service": "api", "message": "started"},
        ]
    }
    first, second, third = logs(body, enricher=Enricher.from_mapping({"api": {"team": "web"}}))
    assert first == LogRecord(
        ts_ns=NOW_NS + 250_000_000,
        service="api",
        body="card declined",
        severity="ERROR",
        severity_number=17,
        labels={"order": "o-1", "team": "web"},
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b174",
    )
    assert (second.body, second.severity, second.ts_ns) == ('{"event":"login","user":7}', "WARN", NOW_NS)
    assert (third.severity, third.severity_number) == ("INFO", 9)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"service": "api"}, "exactly one of 'message' or 'body'"),
        ({"service": "api", "message": "a", "body": "b"}, "exactly one of 'message' or 'body'"),
        ({"service": "api", "message": "a", "level": "info", "severity": 9}, "at most one of 'level' or 'severity'"),
        ({"service": "api", "message": "a", "level": "loud"}, "unknown level 'loud'"),
        ({"service": "api", "message": "a", "severity": 30}, "outside 1..24"),
        ({"service": "", "message": "a"}, "logs[0].service"),
        ({"service": "api", "message": "a", "trace_id": "xyz"}, "logs[0].trace_id: String should match pattern"),
    ],
)
def test_malformed_log_entries_name_the_problem(entry: dict[str, Any], message: str) -> None:
    assert message in refused(logs, {"logs": [entry]}).message


def test_log_outside_the_time_window_refuses_the_request() -> None:
    error = refused(logs, {"logs": [{"service": "api", "message": "a", "timestamp": "2020-01-01T00:00:00Z"}]})
    assert "logs[0] of service 'api'" in error.message and "older than the accepted" in error.message
    assert (
        f"(AIOPS_INGEST_MAX_SAMPLE_AGE_S={Limits().max_sample_age_s:.15g}; 0 turns the age check off)" in error.message
    )
