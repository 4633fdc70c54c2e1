"""The topology store protocol: services, the call edges between them, and the changes made to them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "AttributeValue",
    "Change",
    "Dependency",
    "Direction",
    "Neighbour",
    "Neighbourhood",
    "Service",
    "TopologyStore",
    "from_millis",
    "millis",
]

AttributeValue = str | int | float | bool
Direction = Literal["upstream", "downstream", "both"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def millis(at: datetime) -> int:
    """Milliseconds since the epoch, what every backend keeps (a naive time is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - _EPOCH) // timedelta(milliseconds=1)


def from_millis(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True, slots=True)
class Service:
    """A service and its attributes (``tier``, ``zone``, ``team``, anything else the topology file says)."""

    name: str
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)

    @property
    def tier(self) -> AttributeValue | None:
        return self.attributes.get("tier")

    @property
    def zone(self) -> AttributeValue | None:
        return self.attributes.get("zone")

    @property
    def team(self) -> AttributeValue | None:
        return self.attributes.get("team")


@dataclass(frozen=True, slots=True)
class Dependency:
    """``caller`` calls ``callee``, as ``sources`` say (``file``, ``traces``), seen ``first_seen`` to ``last_seen``.

    The store keeps one edge per (caller, callee): a second sighting adds its source and widens the time span.
    """

    caller: str
    callee: str
    sources: frozenset[str]
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """A deployment or other change made to ``service`` at ``at``; ``id`` makes a second delivery a no-op."""

    id: str
    service: str
    at: datetime
    kind: str = "deployment"
    description: str = ""
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A service reached from the seeds: fewest hops and which way (``seed`` for the seeds themselves).

    ``upstream`` services call towards a seed, ``downstream`` ones are called from one; ``both`` is reached
    either way (a cycle, or a seed that is both caller and callee of another).
    """

    service: Service
    distance: int
    direction: Literal["seed", "upstream", "downstream", "both"]


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """The services within k hops of the seeds and the edges walked to reach them, sorted by name."""

    nodes: tuple[Neighbour, ...]
    edges: tuple[Dependency, ...]

    def names(self) -> set[str]:
        return {n.service.name for n in self.nodes}


@runtime_checkable
class TopologyStore(Protocol):
    """Services, caller -> callee edges and changes; written by the topology loader, the trace edge agent
    and the changes agent, read by correlation (topology distance, shared changes) and RCA (neighbourhoods).
    Times are kept to the millisecond.
    """

    url: str

    async def upsert_services(self, services: Iterable[Service]) -> None:
        """Add services, or merge attributes into known ones (a given key replaces the stored value)."""

    async def upsert_dependencies(self, dependencies: Iterable[Dependency]) -> None:
        """Add edges (and their services, without attributes), or merge into known ones: sources are
        united, ``first_seen`` is the earliest and ``last_seen`` the latest of the stored and given."""

    async def add_changes(self, changes: Iterable[Change]) -> None:
        """Attach changes to their services (a missing service is added); a known ``id`` is replaced."""

    async def services(self) -> list[Service]:
        """Every service, sorted by name."""

    async def service(self, name: str) -> Service | None: ...

    async def dependencies(self) -> list[Dependency]:
        """Every edge, sorted by (caller, callee)."""

    async def changes(self, since: datetime, until: datetime, services: Sequence[str] | None = None) -> list[Change]:
        """Changes at ``since <= at < until`` (of the given services, or all), oldest first, then by id."""

    async def neighbourhood(self, seeds: Iterable[str], hops: int, direction: Direction = "both") -> Neighbourhood:
        """The services within ``hops`` call edges of the seeds, following edges downstream (callees),
        upstream (callers) or both ways (each walk in its own direction, so siblings are not included).
        Seeds the store does not know are left out."""

    async def shortest_path(self, a: str, b: str, directed: bool = False, max_hops: int = 16) -> list[str] | None:
        """Service names from ``a`` to ``b`` along the fewest edges (any direction unless ``directed``, then
        caller -> callee only), both ends included; None when not connected within ``max_hops``.
        Ties are broken by name, so every backend returns the same path."""

    async def distance(self, a: str, b: str, directed: bool = False, max_hops: int = 16) -> int | None:
        """Edges on the shortest path (0 for the same known service), or None."""

    async def clear(self) -> None:
        """Forget every service, edge and change."""

    async def close(self) -> None: ...
