"""An immutable, in-memory snapshot of the topology store that clustering queries per signal without I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import ClassVar

from aiops_common.topology import AttributeValue, Dependency, Service, nearest_parents, unwind_path

__all__ = ["TopologyView"]

_NO_ATTRIBUTES: Mapping[str, AttributeValue] = MappingProxyType({})


class TopologyView:
    """Services, caller -> callee edges and the depth of each service, built once and read many times.

    The correlator refreshes it from the store every ``correlate_topology_refresh_s``; queries are
    answered from adjacency tables (and cached neighbourhoods), so a storm never waits on the store.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> view = TopologyView.build([Service("db", {"tier": "data"})], [
    ...     Dependency("web", "api", frozenset({"file"}), t, t), Dependency("api", "db", frozenset({"file"}), t, t)])
    >>> view.path("web", "db", 2), view.calls("api", "db"), view.depth("db"), view.depth("web")
    (['web', 'api', 'db'], True, 2, 0)
    """

    EMPTY: ClassVar[TopologyView]

    def __init__(
        self,
        attributes: Mapping[str, Mapping[str, AttributeValue]],
        callees: Mapping[str, tuple[str, ...]],
        callers: Mapping[str, tuple[str, ...]],
    ) -> None:
        self._attributes = attributes
        self._callees = callees
        self._callers = callers
        self._names = frozenset(attributes) | frozenset(callees) | frozenset(callers)
        self._depth = _depths(self._names, callees, callers)
        # Neighbourhoods are asked for again and again in a storm (every pod of a service); the view is
        # immutable, so a cache never goes stale: a refresh builds a new view with an empty cache.
        self._within: dict[tuple[str, int], Mapping[str, int]] = {}
        self._relations: dict[tuple[str, str], tuple[str, str]] = {}

    @classmethod
    def build(cls, services: Iterable[Service], dependencies: Iterable[Dependency]) -> TopologyView:
        attributes: dict[str, Mapping[str, AttributeValue]] = {}
        for service in services:
            attributes[service.name] = MappingProxyType(dict(service.attributes))
        callees: dict[str, set[str]] = {}
        callers: dict[str, set[str]] = {}
        for edge in dependencies:
            if edge.caller == edge.callee:
                continue
            callees.setdefault(edge.caller, set()).add(edge.callee)
            callers.setdefault(edge.callee, set()).add(edge.caller)
        return cls(
            attributes,
            {name: tuple(sorted(found)) for name, found in sorted(callees.items())},
            {name: tuple(sorted(found)) for name, found in sorted(callers.items())},
        )

    def __contains__(self, service: object) -> bool:
        return service in self._names

    def __len__(self) -> int:
        return len(self._names)

    def services(self) -> list[str]:
        return sorted(self._names)

    def callees(self, service: str) -> tuple[str, ...]:
        """Services ``service`` calls, sorted by name."""
        return self._callees.get(service, ())

    def callers(self, service: str) -> tuple[str, ...]:
        """Services that call ``service``, sorted by name."""
        return self._callers.get(service, ())

    def calls(self, caller: str, callee: str) -> bool:
        return callee in self._callees.get(caller, ())

    def depth(self, service: str) -> int:
        """Longest chain of calls from an entry point (a service nobody calls) to ``service``: a callee is
        deeper than each of its callers (outside cycles); unknown services are at depth 0."""
        return self._depth.get(service, 0)

    def attributes(self, service: str) -> Mapping[str, AttributeValue]:
        return self._attributes.get(service, _NO_ATTRIBUTES)

    def within(self, service: str, hops: int) -> Mapping[str, int]:
        """Services within ``hops`` call edges of ``service`` either way, with their distance (itself at 0)."""
        key = (service, hops)
        found = self._within.get(key)
        if found is None:
            distance = {service: 0}
            frontier = [service]
            for step in range(1, hops + 1):
                nxt: list[str] = []
                for here in frontier:
                    for other in (*self._callees.get(here, ()), *self._callers.get(here, ())):
                        if other not in distance:
                            distance[other] = step
                            nxt.append(other)
                frontier = nxt
            found = self._within[key] = MappingProxyType(distance)
        return found

    def relation(self, a: str, b: str) -> tuple[str, str]:
        """How ``b`` relates to ``a`` within two hops: ``("same", a)``, ``("calls", "")`` (a calls b),
        ``("called_by", "")``, ``("chain_down", m)`` (a calls m calls b), ``("chain_up", m)``,
        ``("common_callee", m)`` (both call m), ``("common_caller", m)`` (m calls both), or ``("far", "")``.
        Where several services connect them, the first by name is given."""
        key = (a, b)
        found = self._relations.get(key)
        if found is None:
            found = self._relations[key] = self._relation(a, b)
        return found

    def _relation(self, a: str, b: str) -> tuple[str, str]:
        if a == b:
            return ("same", a)
        down_a, up_a = self._callees.get(a, ()), self._callers.get(a, ())
        down_b, up_b = self._callees.get(b, ()), self._callers.get(b, ())
        if b in down_a:
            return ("calls", "")
        if b in up_a:
            return ("called_by", "")
        for kind, left, right in (
            ("chain_down", down_a, up_b),
            ("chain_up", up_a, down_b),
            ("common_callee", down_a, down_b),
            ("common_caller", up_a, up_b),
        ):
            shared = set(left).intersection(right)
            if shared:
                return (kind, min(shared))
        return ("far", "")

    def path(self, a: str, b: str, max_hops: int) -> list[str] | None:
        """Services from ``a`` to ``b`` along the fewest call edges in either direction, both ends included;
        each node's predecessor is the first by name among those one hop nearer to ``a`` (as the stores
        break ties). ``[a]`` when ``a == b``; None when not connected within ``max_hops``."""
        if a == b:
            return [a]
        if a not in self._names or b not in self._names:
            return None
        parent: dict[str, str | None] = {a: None}
        frontier = [a]
        for _ in range(max_hops):
            if b in parent or not frontier:
                break
            hops = [
                (here, other)
                for here in frontier
                for other in (*self._callees.get(here, ()), *self._callers.get(here, ()))
            ]
            offers = nearest_parents(parent, hops)
            parent.update(offers)
            frontier = sorted(offers)
        return unwind_path(parent, b)


def _depths(
    names: frozenset[str], callees: Mapping[str, tuple[str, ...]], callers: Mapping[str, tuple[str, ...]]
) -> dict[str, int]:
    """Longest path from the entry points, in topological order (Kahn); services on a cycle are placed
    by name once no acyclic service is left, one deeper than their deepest placed caller."""
    waiting = {name: len(callers.get(name, ())) for name in names}
    depth: dict[str, int] = {}
    ready = sorted(name for name, n in waiting.items() if n == 0)
    for name in ready:
        depth[name] = 0
    while len(depth) < len(names):
        while ready:
            nxt: list[str] = []
            for name in ready:
                for callee in callees.get(name, ()):
                    if callee in depth:
                        continue
                    waiting[callee] -= 1
                    if waiting[callee] == 0:
                        depth[callee] = 1 + max(depth[c] for c in callers[callee] if c in depth)
                        nxt.append(callee)
            ready = sorted(nxt)
        if len(depth) < len(names):
            # A cycle: break it at the first unplaced service by name that some placed service calls
            # (or the first unplaced one at all), then continue the walk from it.
            unplaced = sorted(names - depth.keys())
            start = next((n for n in unplaced if any(c in depth for c in callers.get(n, ()))), unplaced[0])
            placed = [depth[c] for c in callers.get(start, ()) if c in depth]
            depth[start] = 1 + max(placed) if placed else 0
            ready = [start]
    return depth


TopologyView.EMPTY = TopologyView({}, {}, {})
