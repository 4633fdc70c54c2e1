"""The Prometheus name rule: how a metric or label name from elsewhere becomes a valid series name."""

from __future__ import annotations

import functools
import re

__all__ = ["prometheus_name"]

_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_:]")


@functools.lru_cache(maxsize=8192)
def prometheus_name(name: str) -> str:
    """The series name of an OTLP metric (or a CSV column), made safe for Prometheus.

    Every character outside ``[a-zA-Z0-9_:]`` (dots, dashes, slashes) becomes ``_``
    and a leading digit gets a ``_`` prefix. Nothing else changes: no unit or
    ``_total`` suffix is added, so ``http.server.duration`` is ``http_server_duration``.

    >>> prometheus_name("http.server.duration"), prometheus_name("5xx-rate")
    ('http_server_duration', '_5xx_rate')
    """
    safe = _NOT_NAME_CHAR.sub("_", name)
    return f"_{safe}" if safe[:1].isdigit() else safe
