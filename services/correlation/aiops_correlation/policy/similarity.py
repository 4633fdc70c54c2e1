"""How strongly two signals are related: topology relation, time gap and label/attribute similarity, as scores."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from itertools import pairwise

from aiops_common.topology import AttributeValue

from aiops_correlation.policy.topology_view import TopologyView

__all__ = [
    "IGNORED_LABELS",
    "attribute_pairs",
    "discriminating_pairs",
    "jaccard",
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
# evidence. Two callers of one callee alerting together point at that callee (failing before it says so),
# when few others call it; two callees of one caller failing together point at nothing in particular, so
# that alone never joins (0.45 < the default join score).
_WEIGHTS = {
    "same": 1.0,
    "calls": 0.9,
    "called_by": 0.9,
    "chain_down": 0.75,
    "chain_up": 0.75,
    "common_callee": 0.6,
    "common_caller": 0.45,
}
_FAR_WEIGHT = 0.6
_FAR_DECAY = 0.75
_CHAIN_DECAY = 0.8


def time_factor(gap_ms: int, window_ms: int, decay: float) -> float:
    """1 for signals at the same instant, falling linearly to ``1 - decay`` at the window's edge."""
    return 1.0 - decay * min(1.0, abs(gap_ms) / window_ms) if window_ms > 0 else 1.0


def topology_weight(view: TopologyView, a: str, b: str, distance: int) -> tuple[float, str, list[str]]:
    """Weight of the relation between services ``a`` and ``b`` (``distance`` hops apart), its kind and the
    services from ``a`` to ``b`` along it.

    A shared callee (or caller) ``m`` counts less the more services share it: ``0.6 / log2(fan)`` once
    more than two do, so a database every service calls does not tie every pair of them together.
    Beyond two hops, a chain of calls one way keeps ``0.75 x 0.8`` per extra hop, any other path
    ``0.6 x 0.75`` per extra hop.
    """
    if distance > 2:
        path = view.path(a, b, distance) or [a, b]
        steps = list(pairwise(path))
        if steps and all(view.calls(x, y) for x, y in steps):
            return _WEIGHTS["chain_down"] * _CHAIN_DECAY ** (distance - 2), "chain_down", path
        if steps and all(view.calls(y, x) for x, y in steps):
            return _WEIGHTS["chain_up"] * _CHAIN_DECAY ** (distance - 2), "chain_up", path
        return _FAR_WEIGHT * _FAR_DECAY ** (distance - 2), "far", path
    kind, via = view.relation(a, b)
    if kind == "far":
        return _FAR_WEIGHT, kind, [a, b]
    weight = _WEIGHTS[kind]
    if kind == "common_callee":
        weight /= max(1.0, math.log2(len(view.callers(via))))
    elif kind == "common_caller":
        weight /= max(1.0, math.log2(len(view.callees(via))))
    if kind == "same":
        return weight, kind, [a]
    return weight, kind, [a, via, b] if via else [a, b]


def topology_text(kind: str, path: list[str]) -> str:
    """A phrase for people saying how the last service of ``path`` (the joining signal's) relates to the
    first (the member's it joins), e.g. ``checkout calls payment (1 hop)``."""
    a, b = path[0], path[-1]
    hops = len(path) - 1
    match kind:
        case "same":
            return f"same service {a}"
        case "calls":
            return f"{a} calls {b} (1 hop)"
        case "called_by":
            return f"{b} calls {a} (1 hop)"
        case "chain_down":
            return f"{' calls '.join(path)} ({hops} hops)"
        case "chain_up":
            return f"{' calls '.join(reversed(path))} ({hops} hops)"
        case "common_callee":
            return f"{a} and {b} both call {path[1]} (2 hops)"
        case "common_caller":
            return f"{path[1]} calls both {a} and {b} (2 hops)"
    return f"{' - '.join(path)} ({hops} hops)"


def discriminating_pairs(labels: Mapping[str, str], ignored: Collection[str]) -> list[tuple[str, str]]:
    """The label pairs that can be evidence of a shared cause (e.g. ``node``, ``volume``, ``db``), sorted."""
    return sorted((k, v) for k, v in labels.items() if k not in ignored and v)


def attribute_pairs(
    attributes: Mapping[str, AttributeValue], attribute_keys: Collection[str]
) -> frozenset[tuple[str, str]]:
    """The chosen topology attributes of a service (``tier``, ``zone``, ``team``) as pairs."""
    return frozenset((k, str(attributes[k])) for k in attribute_keys if k in attributes)


def jaccard(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> float:
    """Jaccard similarity of two pair sets (0 when both are empty)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def label_similarity(
    labels: tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]],
    attributes: tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]],
    attribute_share: float = 0.2,
) -> float:
    """Similarity in [0, 1] of two signals: Jaccard of their discriminating labels, and for
    ``attribute_share`` of it the Jaccard of their services' attributes (when either has any), so a shared
    zone or team adds to shared labels but two services of different teams sharing a label still match.

    >>> node_1, node_2 = frozenset({("node", "n1")}), frozenset({("node", "n2")})
    >>> same, other = frozenset({("zone", "a")}), frozenset({("zone", "b")})
    >>> label_similarity((node_1, node_1), (same, same)), label_similarity((node_1, node_1), (same, other))
    (1.0, 0.8)
    >>> label_similarity((node_1, node_2), (same, same))
    0.2
    """
    by_labels = jaccard(*labels)
    if not (attributes[0] or attributes[1]):
        return by_labels
    return (1 - attribute_share) * by_labels + attribute_share * jaccard(*attributes)
