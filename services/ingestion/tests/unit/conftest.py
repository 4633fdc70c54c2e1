"""Fixtures for the normalize tests: a fixed clock, default limits, OTLP attribute lists from dicts."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
from aiops_ingestion.normalize import Enricher, Limits
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

NOW_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
"""The server clock of every test (``now_ms=NOW_MS``), so time windows are deterministic."""


def _any_value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=_key_values(value)))
    return AnyValue(string_value=str(value))


def _key_values(values: Mapping[str, object]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any_value(v)) for k, v in values.items()]


@pytest.fixture
def now_ms() -> int:
    return NOW_MS


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
def no_enrichment() -> Enricher:
    return Enricher()


@pytest.fixture
def attrs() -> Callable[[Mapping[str, object]], list[KeyValue]]:
    """``attrs({"service.name": "api", "retries": 3})`` -> OTLP ``KeyValue`` list with typed values."""
    return _key_values
