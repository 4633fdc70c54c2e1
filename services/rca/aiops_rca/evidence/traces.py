"""Trace evidence: which services the traces of the window first failed in (seed 003's trace RCA)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiops_rca.case import TraceOrigin

__all__ = ["OriginShare", "origin_shares"]


@dataclass(frozen=True, slots=True)
class OriginShare:
    origin: TraceOrigin
    share: float
    """Its part of all failing traces of the window, in [0, 1]."""


def origin_shares(origins: Iterable[TraceOrigin]) -> dict[str, OriginShare]:
    """Per service, the traces whose first failing span is there and their share of all failing traces.

    >>> shares = origin_shares([TraceOrigin("db", 30), TraceOrigin("api", 10)])
    >>> shares["db"].share
    0.75
    """
    merged: dict[str, TraceOrigin] = {}
    for origin in origins:
        if origin.count <= 0:
            continue
        kept = merged.get(origin.service)
        if kept is None:
            merged[origin.service] = origin
        else:
            merged[origin.service] = TraceOrigin(
                origin.service, kept.count + origin.count, kept.trace_id or origin.trace_id, kept.span or origin.span
            )
    total = sum(o.count for o in merged.values())
    return {s: OriginShare(o, o.count / total) for s, o in merged.items()} if total else {}
