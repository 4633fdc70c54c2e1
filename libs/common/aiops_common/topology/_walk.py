"""Breadth-first walks over call edges, shared by every backend so neighbourhoods and paths agree exactly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiops_common.topology._protocol import Dependency, Direction, Neighbour, Neighbourhood, Service

__all__ = ["Step", "nearest_parents", "neighbourhood", "shortest_path", "unwind_path"]

Step = Callable[[set[str], bool], Awaitable[list[Dependency]]]
"""``step(names, downstream)``: the edges leaving ``names`` (as callers when downstream, else as callees)."""


async def _walk(seeds: set[str], hops: int, downstream: bool, step: Step) -> tuple[dict[str, int], set[Dependency]]:
    seen = dict.fromkeys(seeds, 0)
    edges: set[Dependency] = set()
    frontier = set(seeds)
    for hop in range(1, hops + 1):
        if not frontier:
            break
        found: set[str] = set()
        for edge in await step(frontier, downstream):
            edges.add(edge)
            other = edge.callee if downstream else edge.caller
            if other not in seen:
                seen[other] = hop
                found.add(other)
        frontier = found
    return seen, edges


async def neighbourhood(
    seeds: Iterable[str],
    hops: int,
    direction: Direction,
    step: Step,
    services: Callable[[set[str]], Awaitable[dict[str, Service]]],
) -> Neighbourhood:
    """Walk ``hops`` edges each way asked from the seeds ``services`` knows; nodes carry their fewest hops."""
    if hops < 0:
        raise ValueError(f"hops must be >= 0, got {hops}")
    wanted = set(seeds)
    known = await services(wanted)
    start = wanted & set(known)
    down: dict[str, int] = {}
    up: dict[str, int] = {}
    edges: set[Dependency] = set()
    if direction in ("downstream", "both"):
        down, walked = await _walk(start, hops, True, step)
        edges |= walked
    if direction in ("upstream", "both"):
        up, walked = await _walk(start, hops, False, step)
        edges |= walked
    reached = set(down) | set(up) | start
    found = {**known, **await services(reached - set(known))}
    nodes = []
    for name in sorted(reached):
        if name in start:
            nodes.append(Neighbour(found[name], 0, "seed"))
        elif name in down and name in up:
            nodes.append(Neighbour(found[name], min(down[name], up[name]), "both"))
        elif name in down:
            nodes.append(Neighbour(found[name], down[name], "downstream"))
        else:
            nodes.append(Neighbour(found[name], up[name], "upstream"))
    return Neighbourhood(tuple(nodes), tuple(sorted(edges, key=lambda e: (e.caller, e.callee))))


async def shortest_path(a: str, b: str, directed: bool, max_hops: int, step: Step, known: set[str]) -> list[str] | None:
    """Fewest edges from ``a`` to ``b`` (``known``: which of the two the store holds); the parent of each
    node is the first by name among those one hop nearer, so ties resolve the same way everywhere."""
    if a not in known or b not in known:
        return None
    parent: dict[str, str | None] = {a: None}
    frontier = {a}
    for _ in range(max_hops):
        if b in parent or not frontier:
            break
        hops: list[tuple[str, str]] = []
        for downstream in [True] if directed else [True, False]:
            for edge in await step(frontier, downstream):
                hops.append((edge.caller, edge.callee) if downstream else (edge.callee, edge.caller))
        offers = nearest_parents(parent, hops)
        parent.update(offers)
        frontier = set(offers)
    return unwind_path(parent, b)


def nearest_parents(parent: Mapping[str, str | None], hops: Iterable[tuple[str, str]]) -> dict[str, str]:
    """One breadth-first step: of the ``(here, other)`` hops to nodes ``parent`` has not reached, each new
    node's parent, the first ``here`` by name (how every backend and the correlator break ties)."""
    offers: dict[str, str] = {}
    for here, other in hops:
        if other not in parent and (other not in offers or here < offers[other]):
            offers[other] = here
    return offers


def unwind_path(parent: Mapping[str, str | None], b: str) -> list[str] | None:
    """The path from the root of ``parent`` (the node whose parent is None) to ``b``; None if ``b`` was not reached."""
    if b not in parent:
        return None
    path = [b]
    while (prev := parent[path[-1]]) is not None:
        path.append(prev)
    return path[::-1]
