"""The topology as a networkx graph in process (``memory://``), optionally persisted to SQLite (``sqlite:///path``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import networkx as nx

from aiops_common.topology import _walk
from aiops_common.topology._protocol import (
    AttributeValue,
    Change,
    Dependency,
    Direction,
    Neighbourhood,
    Service,
    from_millis,
    millis,
)
from aiops_common.tsdb.sqlite import path_from_url

__all__ = ["NetworkxTopologyStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, attributes TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dependencies (
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    sources TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (caller, callee)
);
CREATE TABLE IF NOT EXISTS changes (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL,
    attributes TEXT NOT NULL
);
"""


class NetworkxTopologyStore:
    """A :class:`~aiops_common.topology.TopologyStore` held in a ``networkx.DiGraph``.

    With a ``sqlite:///path`` URL every write goes through to that file in the same call, and opening
    the file again loads the graph back, so the graph is the only thing queries read.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._graph: nx.DiGraph[str] = nx.DiGraph()
        self._changes: dict[str, Change] = {}
        self._db: sqlite3.Connection | None = None
        self._data_version = 0
        if url.startswith("sqlite:"):
            path = path_from_url(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            self._load(self._db)
            self._data_version = self._db.execute("PRAGMA data_version").fetchone()[0]

    def _sync(self) -> None:
        """Load the file again when another connection (``aiops topology load``, another worker) wrote it since
        this one last looked: the graph must not go stale, nor a merge here write over what that one wrote."""
        if self._db is None:
            return
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._graph.clear()
            self._changes.clear()
            self._load(self._db)
            self._data_version = version

    def _load(self, db: sqlite3.Connection) -> None:
        for name, attributes in db.execute("SELECT name, attributes FROM services"):
            self._graph.add_node(name, attributes=json.loads(attributes))
        for caller, callee, sources, first, last in db.execute("SELECT * FROM dependencies"):
            for name in (caller, callee):
                if name not in self._graph:
                    self._graph.add_node(name, attributes={})
            self._graph.add_edge(caller, callee, sources=frozenset(json.loads(sources)), first=first, last=last)
        for id_, service, at, kind, description, attributes in db.execute("SELECT * FROM changes"):
            self._changes[id_] = Change(id_, service, from_millis(at), kind, description, json.loads(attributes))

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self._db is not None and rows:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(sql, rows)

    def _ensure(self, name: str) -> list[tuple[Any, ...]]:
        if name in self._graph:
            return []
        self._graph.add_node(name, attributes={})
        return [(name, "{}")]

    async def upsert_services(self, services: Iterable[Service]) -> None:
        self._sync()
        rows: dict[str, tuple[Any, ...]] = {}
        for service in services:
            self._ensure(service.name)
            attributes: dict[str, AttributeValue] = self._graph.nodes[service.name]["attributes"]
            attributes.update(service.attributes)
            rows[service.name] = (service.name, json.dumps(attributes, sort_keys=True))
        self._write("INSERT OR REPLACE INTO services VALUES (?, ?)", list(rows.values()))

    async def upsert_dependencies(self, dependencies: Iterable[Dependency]) -> None:
        self._sync()
        nodes: list[tuple[Any, ...]] = []
        rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        for dep in dependencies:
            nodes += self._ensure(dep.caller) + self._ensure(dep.callee)
            first, last = millis(dep.first_seen), millis(dep.last_seen)
            if self._graph.has_edge(dep.caller, dep.callee):
                data = self._graph.edges[dep.caller, dep.callee]
                data["sources"] = data["sources"] | dep.sources
                data["first"] = min(data["first"], first)
                data["last"] = max(data["last"], last)
            else:
                self._graph.add_edge(dep.caller, dep.callee, sources=frozenset(dep.sources), first=first, last=last)
            data = self._graph.edges[dep.caller, dep.callee]
            rows[dep.caller, dep.callee] = (
                dep.caller,
                dep.callee,
                json.dumps(sorted(data["sources"])),
                data["first"],
                data["last"],
            )
        self._write("INSERT OR IGNORE INTO services VALUES (?, ?)", nodes)
        self._write("INSERT OR REPLACE INTO dependencies VALUES (?, ?, ?, ?, ?)", list(rows.values()))

    async def add_changes(self, changes: Iterable[Change]) -> None:
        self._sync()
        nodes: list[tuple[Any, ...]] = []
        rows: list[tuple[Any, ...]] = []
        for change in changes:
            nodes += self._ensure(change.service)
            at = millis(change.at)
            kept = Change(
                change.id, change.service, from_millis(at), change.kind, change.description, dict(change.attributes)
            )
            self._changes[change.id] = kept
            attributes = json.dumps(dict(change.attributes), sort_keys=True)
            rows.append((change.id, change.service, at, change.kind, change.description, attributes))
        self._write("INSERT OR IGNORE INTO services VALUES (?, ?)", nodes)
        self._write("INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?, ?, ?)", rows)

    def _service(self, name: str) -> Service:
        return Service(name, dict(self._graph.nodes[name]["attributes"]))

    def _dependency(self, caller: str, callee: str) -> Dependency:
        data = self._graph.edges[caller, callee]
        return Dependency(caller, callee, data["sources"], from_millis(data["first"]), from_millis(data["last"]))

    async def services(self) -> list[Service]:
        self._sync()
        return [self._service(name) for name in sorted(self._graph.nodes)]

    async def service(self, name: str) -> Service | None:
        self._sync()
        return self._service(name) if name in self._graph else None

    async def dependencies(self) -> list[Dependency]:
        self._sync()
        return [self._dependency(a, b) for a, b in sorted(self._graph.edges)]

    async def changes(self, since: datetime, until: datetime, services: Sequence[str] | None = None) -> list[Change]:
        self._sync()
        lo, hi = millis(since), millis(until)
        wanted = None if services is None else set(services)
        found = [
            c for c in self._changes.values() if lo <= millis(c.at) < hi and (wanted is None or c.service in wanted)
        ]
        return sorted(found, key=lambda c: (c.at, c.id))

    async def _step(self, names: set[str], downstream: bool) -> list[Dependency]:
        edges = self._graph.out_edges(names) if downstream else self._graph.in_edges(names)
        return [self._dependency(a, b) for a, b in edges]

    async def _services(self, names: set[str]) -> dict[str, Service]:
        return {name: self._service(name) for name in names if name in self._graph}

    async def neighbourhood(self, seeds: Iterable[str], hops: int, direction: Direction = "both") -> Neighbourhood:
        self._sync()
        return await _walk.neighbourhood(seeds, hops, direction, self._step, self._services)

    async def shortest_path(self, a: str, b: str, directed: bool = False, max_hops: int = 16) -> list[str] | None:
        self._sync()
        known = {name for name in (a, b) if name in self._graph}
        return await _walk.shortest_path(a, b, directed, max_hops, self._step, known)

    async def distance(self, a: str, b: str, directed: bool = False, max_hops: int = 16) -> int | None:
        path = await self.shortest_path(a, b, directed, max_hops)
        return None if path is None else len(path) - 1

    async def clear(self) -> None:
        self._graph.clear()
        self._changes.clear()
        if self._db is not None:
            with self._db:
                self._db.execute("BEGIN")
                for table in ("services", "dependencies", "changes"):
                    self._db.execute(f"DELETE FROM {table}")

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
