"""Whether an execution helped: its series back inside the band, and staying there, before the time is up. Pure."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Outcome", "Verdict", "assess", "inside"]


class Outcome(enum.StrEnum):
    RECOVERED = "recovered"
    NOT_RECOVERED = "not_recovered"
    WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    detail: str
    last_value: float | None = None
    inside_since_ms: int | None = None


def inside(value: float, lower: float | None, upper: float | None) -> bool:
    if math.isnan(value):
        return False
    return (lower is None or value >= lower) and (upper is None or value <= upper)


def _band(lower: float | None, upper: float | None) -> str:
    if lower is None:
        return f"<= {upper:g}"
    if upper is None:
        return f">= {lower:g}"
    return f"in [{lower:g}, {upper:g}]"


def assess(
    series: Sequence[tuple[str, Sequence[tuple[int, float]]]],
    *,
    name: str,
    lower: float | None,
    upper: float | None,
    for_s: float,
    started_ms: int,
    deadline_ms: int,
    now_ms: int,
) -> Verdict:
    """``series``: (key, points) of every series the check matches, points since the steps ran. Recovered when
    every series' latest samples have been inside the band for ``for_s`` (by their own timestamps); not
    recovered when the deadline passed first (or no sample came at all); else waiting."""
    band = _band(lower, upper)
    late = now_ms >= deadline_ms
    seen = [(key, [p for p in points if p[0] >= started_ms]) for key, points in series]
    seen = [(key, points) for key, points in seen if points]
    if not seen:
        if late:
            return Verdict(Outcome.NOT_RECOVERED, f"no sample of {name} came in the verification time")
        return Verdict(Outcome.WAITING, f"waiting for samples of {name}")
    since_all: list[int] = []
    worst: tuple[str, float] | None = None
    for key, points in seen:
        last_ts, last_value = points[-1]
        if not inside(last_value, lower, upper):
            worst = worst or (key, last_value)
            continue
        since = last_ts
        for ts, value in reversed(points):
            if not inside(value, lower, upper):
                break
            since = ts
        held_s = (last_ts - since) / 1000
        if held_s >= for_s:
            since_all.append(since)
        else:
            worst = worst or (key, last_value)
    last_value = seen[0][1][-1][1]
    if worst is None:
        since_ms = max(since_all)
        return Verdict(
            Outcome.RECOVERED, f"{name} {band} for {for_s:g} s or more", last_value=last_value, inside_since_ms=since_ms
        )
    key, value = worst
    if late:
        return Verdict(
            Outcome.NOT_RECOVERED,
            f"{key} was {value:g}, not {band} for {for_s:g} s, when the verification time ran out",
            last_value=value,
        )
    return Verdict(
        Outcome.WAITING, f"{key} is {value:g}; waiting for it to be {band} for {for_s:g} s", last_value=value
    )
