"""OTLP resource, scope and data attributes as string labels with Prometheus-safe names."""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = [
    "RESOURCE_LABELS",
    "UNKNOWN_SERVICE",
    "AttributeConflict",
    "attribute_labels",
    "label_name",
    "render_value",
    "resource_labels",
    "service_and_labels",
]

RESOURCE_LABELS = {
    "service.name": "service",
    "service.namespace": "namespace",
    "service.instance.id": "instance",
    "deployment.environment": "env",
    "deployment.environment.name": "env",
    "host.name": "host",
}
"""Well-known resource attributes and the short label each becomes; other keys go through :func:`label_name`."""

UNKNOWN_SERVICE = "unknown_service"
"""Service of logs and spans whose resource has no ``service.name`` (the OpenTelemetry default)."""

_NOT_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


class AttributeConflict(ValueError):
    """Two attributes of one list map to the same label name with different values."""


@functools.lru_cache(maxsize=8192)
def label_name(key: str) -> str:
    """``k8s.pod.name`` -> ``k8s_pod_name``: every character outside ``[a-zA-Z0-9_]`` becomes ``_``.

    A key starting with a digit gets a ``key_`` prefix (as in OpenTelemetry's
    Prometheus compatibility rules), so the result is always a valid label name.
    """
    name = _NOT_LABEL_CHAR.sub("_", key)
    return f"key_{name}" if name[:1].isdigit() else name


@functools.lru_cache(maxsize=1024)
def _resource_label_name(key: str) -> str:
    return RESOURCE_LABELS.get(key) or label_name(key)


def render_value(value: AnyValue) -> str:
    """An attribute value as a label string: strings as they are, arrays and maps as compact JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind is None:
        return ""
    if kind in ("array_value", "kvlist_value"):
        return json.dumps(_to_python(value), separators=(",", ":"), ensure_ascii=False)
    scalar = _to_python(value)
    if isinstance(scalar, bool):
        return "true" if scalar else "false"
    return str(scalar)


def _to_python(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_to_python(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _to_python(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)


def attribute_labels(attributes: Sequence[KeyValue], resource: bool = False) -> dict[str, str]:
    """Labels from an attribute list; ``resource=True`` applies :data:`RESOURCE_LABELS` first.

    Two keys that map to one label name (``a.b`` and ``a_b``, or a key sent twice)
    are fine when their values agree and an :class:`AttributeConflict` otherwise.
    """
    rename = _resource_label_name if resource else label_name
    # A non-empty string_value means the value is a string: the common case skips WhichOneof.
    labels = {rename(kv.key): kv.value.string_value or render_value(kv.value) for kv in attributes}
    if len(labels) != len(attributes):
        _check_agreement(attributes, rename)
    return labels


def _check_agreement(attributes: Iterable[KeyValue], rename: Callable[[str], str]) -> None:
    seen: dict[str, str] = {}
    for kv in attributes:
        name, text = rename(kv.key), render_value(kv.value)
        previous = seen.setdefault(name, text)
        if previous != text:
            raise AttributeConflict(
                f"attributes map to label {name!r} twice with different values ({previous[:40]!r}, {text[:40]!r})"
            )


def resource_labels(attributes: Sequence[KeyValue]) -> dict[str, str]:
    """Resource attributes as labels: ``service.name`` -> ``service``, ``host.name`` -> ``host``, ..."""
    return attribute_labels(attributes, resource=True)


def service_and_labels(attributes: Sequence[KeyValue]) -> tuple[str, dict[str, str]]:
    """For logs and spans, which carry the service in a field of its own: ``(service, other labels)``."""
    labels = resource_labels(attributes)
    return labels.pop("service", "") or UNKNOWN_SERVICE, labels
