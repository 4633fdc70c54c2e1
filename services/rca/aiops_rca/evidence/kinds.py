"""What kind of failure a series' name points to (latency, errors, traffic, saturation, crash)."""

from __future__ import annotations

import re

from aiops_common.schemas import CauseKind

__all__ = ["kind_of"]

# First match wins: a name is checked against these in order (word parts, any case).
_PATTERNS: tuple[tuple[CauseKind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        (CauseKind.CRASH, r"restart|oom|crash|kill"),
        (CauseKind.SATURATION, r"cpu|mem|saturat|utili[sz]|disk|throttl|heap|\bfd\b|file_?desc|queue_?depth"),
        (CauseKind.ERRORS, r"error|fail|availab|5xx|exception|fault"),
        (CauseKind.LATENCY, r"latency|duration|response_?time|_seconds|_s\b|_s:|\bp9\d|delay"),
        (CauseKind.TRAFFIC, r"request|rate|rps|throughput|count|calls|sum\b"),
    )
)


def kind_of(metric: str) -> CauseKind:
    """The failure kind a metric's name suggests; ``unknown`` when none.

    >>> kind_of("red.latency_s:value_10s").value, kind_of("availability:Average").value
    ('latency', 'errors')
    >>> kind_of("container_cpu_utilisation").value, kind_of("kube_pod_container_status_restarts_total").value
    ('saturation', 'crash')
    """
    for kind, pattern in _PATTERNS:
        if pattern.search(metric):
            return kind
    return CauseKind.UNKNOWN
