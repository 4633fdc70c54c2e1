"""How good a grouping is: alert reduction, pairwise precision/recall/F1, and the two baselines to compare with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from benchmarks.correlate.storm import Episode

__all__ = ["Grouping", "alertmanager_groups", "pair_scores", "window_groups"]


@dataclass(frozen=True, slots=True)
class Grouping:
    name: str
    incidents: int
    """Incidents (groups) the method showed an operator for the storm."""
    reduction: float
    precision: float
    recall: float
    f1: float


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pair_scores(truth: Mapping[str, str], predicted: Mapping[str, str]) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1: of the alert pairs put together, how many truly belong together,
    and of those that belong together, how many were put together (over the alerts of ``truth``)."""
    both = Counter((truth[u], predicted[u]) for u in truth)
    together = sum(_pairs(n) for n in Counter(predicted[u] for u in truth).values())
    belong = sum(_pairs(n) for n in Counter(truth.values()).values())
    right = sum(_pairs(n) for n in both.values())
    precision = right / together if together else 1.0
    recall = right / belong if belong else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def grouping(
    name: str, truth: Mapping[str, str], predicted: Mapping[str, str], incidents: int, alerts: int
) -> Grouping:
    precision, recall, f1 = pair_scores(truth, predicted)
    return Grouping(name, incidents, 1 - incidents / alerts, precision, recall, f1)


def window_groups(episodes: Sequence[Episode], window: timedelta) -> dict[str, str]:
    """Baseline: fixed (tumbling) time windows, every alert of a window in one incident."""
    start = min(e.alert.starts_at for e in episodes)
    return {e.uid: str((e.alert.starts_at - start) // window) for e in episodes}


def alertmanager_groups(episodes: Sequence[Episode]) -> dict[str, str]:
    """Baseline: Alertmanager's ``group_by: [alertname, service]``: a group lives while any of its alerts
    fires; an alert of that name and service joins the live group, or starts a new one."""
    ends: dict[tuple[str, str], tuple[str, float]] = {}
    out: dict[str, str] = {}
    for e in sorted(episodes, key=lambda e: (e.alert.starts_at, e.uid)):
        key = (e.alert.name, e.alert.service)
        at, end = e.alert.starts_at.timestamp(), e.ends_at.timestamp()
        live = ends.get(key)
        if live is None or live[1] < at:
            live = (f"{key[0]}/{key[1]}@{at}", end)
        ends[key] = (live[0], max(live[1], end))
        out[e.uid] = live[0]
    return out
