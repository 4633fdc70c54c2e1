"""How strongly two signals are related: topology relation, time gap and label/attribute similarity, as scores."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

from aiops_common.topology import AttributeValue

from aiops_correlation.policy.topology_view import TopologyView

__all__ = [
    "IGNORED_LABELS",
    "compared_pairs",
    "discriminating_pairs",
    "label_similarity",
    "time_factor",
    "topology_text",
    "topology_weight",
]

IGNORED_LABELS: tuple[str, ...] = (
    "alertname",
    "severity",
    "priority",
    "instance",
    "pod",
    "pod_name",
    "container",
    "endpoint",
    "uid",
    "replica",
    "job",
    "service",
    "service_name",
    "app",
    "application",
    "deployment",
    "namespace",
    "cluster",
    "region",
    "zone",
    "env",
    "environment",
    "prometheus",
    "monitor",
    "team",
    "__name__",
)
"""Labels that are no evidence of a shared cause: the alert's name and severity, which instance of which
service it is about (topology answers for services), and scopes so broad that unrelated faults share them."""

# Relation weights: a cascade travels along call edges, so a direct edge or a chain of calls is strong
# evidence; two services that merely share a callee (or a caller) are related only when few others do.
_WEIGHTS = {
    "same": 1.0,
    "calls": 0.9,
    "called_by": 0.9,
    "chain_down": 0.75,
    "chain_up": 0.75,
    "common_callee": 0.6,
    "common_caller": 0.6,
}
_FAR_WEIGHT = 0.6
_FAR_DECAY = 0.75


def time_factor(gap_ms: int, window_ms: int, decay: float) -> float:
    """1 for signals at the same instant, falling linearly to ``1 - decay`` at the window's edge."""
    return 1.0 - decay * min(1.0, abs(gap_ms) / window_ms) if window_ms > 0 else 1.0


def topology_weight(view: TopologyView, a: str, b: str, distance: int) -> tuple[float, str, str]:
    """Weight of the relation between services ``a`` and ``b`` (``distance`` hops apart), its kind and the
    service between them (for two-hop relations).

    A shared callee (or caller) ``m`` counts less the more services share it: ``0.6 / log2(fan)`` once
    more than two do, so a database every service calls does not tie every pair of them together.
    """
    if distance > 2:
        return _FAR_WEIGHT * _FAR_DECAY ** (distance - 2), "far", ""
    kind, via = view.relation(a, b)
    if kind == "far":
        return _FAR_WEIGHT * _FAR_DECAY ** max(0, distance - 2), kind, via
    weight = _WEIGHTS[kind]
    if kind == "common_callee":
        weight /= max(1.0, math.log2(len(view.callers(via))))
    elif kind == "common_caller":
        weight /= max(1.0, math.log2(len(view.callees(via))))
    return weight, kind, via


def topology_text(kind: str, a: str, b: str, via: str, path: list[str]) -> tuple[str, list[str]]:
    """A phrase for people saying how ``b`` (the joining signal's service) relates to ``a``, and the path."""
    match kind:
        case "same":
            return f"same service {a}", [a]
        case "calls":
            return f"{a} calls {b} (1 hop)", [a, b]
        case "called_by":
            return f"{b} calls {a} (1 hop)", [a, b]
        case "chain_down":
            return f"{a} calls {via} calls {b} (2 hops)", [a, via, b]
        case "chain_up":
            return f"{b} calls {via} calls {a} (2 hops)", [a, via, b]
        case "common_callee":
            return f"{a} and {b} both call {via} (2 hops)", [a, via, b]
        case "common_caller":
            return f"{via} calls both {a} and {b} (2 hops)", [a, via, b]
    hops = max(0, len(path) - 1)
    return f"{' - '.join(path)} ({hops} hops)", path


def discriminating_pairs(labels: Mapping[str, str], ignored: Collection[str]) -> list[tuple[str, str]]:
    """The label pairs that can be evidence of a shared cause (e.g. ``node``, ``volume``, ``db``), sorted."""
    return sorted((k, v) for k, v in labels.items() if k not in ignored and v)


def compared_pairs(
    labels: Mapping[str, str],
    attributes: Mapping[str, AttributeValue],
    attribute_keys: Collection[str],
    ignored: Collection[str],
) -> frozenset[tuple[str, str]]:
    """Discriminating labels plus the service's chosen topology attributes (as ``@zone`` and so on)."""
    pairs = {(k, v) for k, v in labels.items() if k not in ignored and v}
    pairs.update((f"@{k}", str(attributes[k])) for k in attribute_keys if k in attributes)
    return frozenset(pairs)


def label_similarity(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> float:
    """Jaccard similarity of two pair sets (0 when both are empty).

    >>> n1, n2 = frozenset({("node", "n1"), ("@zone", "a")}), frozenset({("node", "n2"), ("@zone", "a")})
    >>> label_similarity(n1, n1), round(label_similarity(n1, n2), 3)
    (1.0, 0.333)
    """
    union = len(a | b)
    return len(a & b) / union if union else 0.0
