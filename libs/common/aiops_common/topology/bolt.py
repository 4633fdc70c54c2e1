"""The topology in a Bolt graph database (``neo4j://``, ``bolt://``): Neo4j, or FalkorDB with its Bolt port.

The Cypher is kept to what both accept: parameters only, batched ``UNWIND ... MERGE``, times as epoch
milliseconds (FalkorDB has no ``datetime()``), each statement committed on its own (FalkorDB does not
roll back), indexes created without ``IF NOT EXISTS`` and an "already exists" answer ignored.
URL: ``bolt://[user:password@]host:port[?database=name][&batch_bytes=N][&timeout_s=S]``.

Every call is bounded: a server that is down, stopped or not answering makes it raise ``TimeoutError``
within ``timeout_s`` (default 10 s) instead of hanging its caller, so readers degrade and writers retry.
Within that bound a connection that cannot be opened (refused, or no answer to the handshake in
``CONNECT_S``) is tried again: every statement here is an idempotent upsert or a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from neo4j import AsyncDriver, AsyncGraphDatabase
from neo4j.exceptions import ClientError, DatabaseError, ServiceUnavailable, SessionExpired

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

__all__ = ["CONNECT_S", "TIMEOUT_S", "BoltTopologyStore"]

BATCH = 500
"""Most rows per ``UNWIND`` statement: enough to amortise a round trip, few enough for one transaction."""
BATCH_BYTES = 3_000
"""Most (JSON-measured) bytes of rows per statement by default: FalkorDB 4.16's Bolt server crashes on a
message over about 4 KiB. Against Neo4j raise it with ``?batch_bytes=``."""

TIMEOUT_S = 10.0
"""Longest one call may take by default (``?timeout_s=``), retries of a connection included."""
CONNECT_S = 3.0
"""Longest the driver waits for a connection (TCP and the Bolt handshake) before trying again. FalkorDB 4.16
leaves the first handshake after a client's GOODBYE unanswered until that connection is dropped."""
_RETRY_S = (0.1, 0.25, 0.5, 1.0)
"""Waits between the tries of one call when the server cannot be reached (the last one repeated)."""

_INDEXES = (
    "CREATE INDEX FOR (s:Service) ON (s.name)",
    "CREATE INDEX FOR (c:Change) ON (c.id)",
    "CREATE INDEX FOR (c:Change) ON (c.at)",
)
_UPSERT_SERVICES = """
UNWIND $rows AS row
MERGE (s:Service {name: row.name})
SET s += row.attributes
"""
_UPSERT_DEPENDENCIES = """
UNWIND $rows AS row
MERGE (a:Service {name: row.caller})
MERGE (b:Service {name: row.callee})
MERGE (a)-[r:CALLS]->(b)
ON CREATE SET r.sources = row.sources, r.first_seen = row.first, r.last_seen = row.last
ON MATCH SET
    r.sources = r.sources + [x IN row.sources WHERE NOT x IN r.sources],
    r.first_seen = CASE WHEN row.first < r.first_seen THEN row.first ELSE r.first_seen END,
    r.last_seen = CASE WHEN row.last > r.last_seen THEN row.last ELSE r.last_seen END
"""
_ADD_CHANGES = """
UNWIND $rows AS row
MERGE (s:Service {name: row.service})
MERGE (c:Change {id: row.id})
SET c.service = row.service, c.at = row.at, c.kind = row.kind, c.description = row.description,
    c.attributes = row.attributes
MERGE (c)-[:AFFECTS]->(s)
"""
_DETACH_MOVED_CHANGES = """
MATCH (c:Change)-[r:AFFECTS]->(s:Service)
WHERE c.id IN $ids AND s.name <> c.service
DELETE r
"""
_EDGE_FIELDS = "a.name AS caller, b.name AS callee, r.sources AS sources, r.first_seen AS first, r.last_seen AS last"


def _batches(rows: list[dict[str, Any]], limit: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row_size = len(json.dumps(row))
        if batch and (len(batch) == BATCH or size + row_size > limit):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch


def _service(properties: dict[str, Any]) -> Service:
    attributes = {k: v for k, v in properties.items() if k != "name"}
    return Service(properties["name"], attributes)


def _dependency(record: dict[str, Any]) -> Dependency:
    return Dependency(
        record["caller"],
        record["callee"],
        frozenset(record["sources"]),
        from_millis(record["first"]),
        from_millis(record["last"]),
    )


class BoltTopologyStore:
    """A :class:`~aiops_common.topology.TopologyStore` in a graph database the official ``neo4j`` driver reaches."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        host = parts.hostname or "127.0.0.1"
        netloc = f"{host}:{parts.port}" if parts.port else host
        query = parse_qs(parts.query)
        self._database = query.get("database", [None])[0]
        self._batch_bytes = int(query.get("batch_bytes", [BATCH_BYTES])[0])
        self._timeout_s = float(query.get("timeout_s", [TIMEOUT_S])[0])
        if not self._timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, not {self._timeout_s}")
        self._where = netloc
        connect_s = min(CONNECT_S, self._timeout_s)
        self._driver: AsyncDriver = AsyncGraphDatabase.driver(
            urlunsplit((parts.scheme, netloc, "", "", "")),
            auth=auth,
            connection_timeout=connect_s,
            connection_acquisition_timeout=connect_s,
        )
        self._indexed = False

    async def _run(self, query: str, **params: Any) -> list[dict[str, Any]]:
        # One deadline for the whole call, the first call's index statements included.
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        if not self._indexed:
            for statement in _INDEXES:
                # Raises when the index exists already (the two servers share no spelling of IF NOT EXISTS).
                with contextlib.suppress(ClientError, DatabaseError):
                    await self._execute(statement, {}, deadline)
            self._indexed = True  # only once the server answered them all
        return await self._execute(query, params, deadline)

    async def _execute(self, query: str, params: dict[str, Any], deadline: float) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        for attempt in itertools.count():
            try:
                async with asyncio.timeout_at(deadline):
                    return await self._once(query, params)
            except TimeoutError:
                raise TimeoutError(
                    f"topology store {self._where} did not answer within {self._timeout_s:g} s"
                ) from None
            except (ServiceUnavailable, SessionExpired):
                wait = _RETRY_S[min(attempt, len(_RETRY_S) - 1)]
                if loop.time() + wait >= deadline:
                    raise
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._driver.session(database=self._database) as session:
            result = await session.run(query, params)
            return await result.data()

    async def upsert_services(self, services: Iterable[Service]) -> None:
        merged: dict[str, dict[str, AttributeValue]] = {}
        for service in services:
            attributes = {k: v for k, v in service.attributes.items() if k != "name"}
            merged.setdefault(service.name, {}).update(attributes)
        rows = [{"name": name, "attributes": attributes} for name, attributes in merged.items()]
        for batch in _batches(rows, self._batch_bytes):
            await self._run(_UPSERT_SERVICES, rows=batch)

    async def upsert_dependencies(self, dependencies: Iterable[Dependency]) -> None:
        # One row per edge: MERGE does not always see a row written earlier in the same UNWIND.
        merged: dict[tuple[str, str], tuple[set[str], int, int]] = {}
        for dep in dependencies:
            first, last = millis(dep.first_seen), millis(dep.last_seen)
            if (known := merged.get((dep.caller, dep.callee))) is not None:
                known[0].update(dep.sources)
                first, last = min(first, known[1]), max(last, known[2])
                merged[dep.caller, dep.callee] = (known[0], first, last)
            else:
                merged[dep.caller, dep.callee] = (set(dep.sources), first, last)
        rows = [
            {"caller": a, "callee": b, "sources": sorted(sources), "first": first, "last": last}
            for (a, b), (sources, first, last) in merged.items()
        ]
        for batch in _batches(rows, self._batch_bytes):
            await self._run(_UPSERT_DEPENDENCIES, rows=batch)

    async def add_changes(self, changes: Iterable[Change]) -> None:
        latest = {change.id: change for change in changes}
        rows = [
            {
                "id": c.id,
                "service": c.service,
                "at": millis(c.at),
                "kind": c.kind,
                "description": c.description,
                "attributes": json.dumps(dict(c.attributes), sort_keys=True),
            }
            for c in latest.values()
        ]
        for batch in _batches(rows, self._batch_bytes):
            await self._run(_ADD_CHANGES, rows=batch)
            await self._run(_DETACH_MOVED_CHANGES, ids=[row["id"] for row in batch])

    async def services(self) -> list[Service]:
        records = await self._run("MATCH (s:Service) RETURN s ORDER BY s.name")
        return [_service(r["s"]) for r in records]

    async def _services(self, names: set[str]) -> dict[str, Service]:
        if not names:
            return {}
        records = await self._run("MATCH (s:Service) WHERE s.name IN $names RETURN s", names=sorted(names))
        found = [_service(r["s"]) for r in records]
        return {s.name: s for s in found}

    async def service(self, name: str) -> Service | None:
        return (await self._services({name})).get(name)

    async def dependencies(self) -> list[Dependency]:
        query = f"MATCH (a:Service)-[r:CALLS]->(b:Service) RETURN {_EDGE_FIELDS} ORDER BY caller, callee"
        return [_dependency(r) for r in await self._run(query)]

    async def changes(self, since: datetime, until: datetime, services: Sequence[str] | None = None) -> list[Change]:
        where = "c.at >= $since AND c.at < $until" + ("" if services is None else " AND c.service IN $services")
        query = (
            f"MATCH (c:Change) WHERE {where} RETURN c.id AS id, c.service AS service, c.at AS at, "
            "c.kind AS kind, c.description AS description, c.attributes AS attributes ORDER BY at, id"
        )
        params: dict[str, Any] = {"since": millis(since), "until": millis(until)}
        if services is not None:
            params["services"] = list(services)
        records = await self._run(query, **params)
        return [
            Change(
                r["id"], r["service"], from_millis(r["at"]), r["kind"], r["description"], json.loads(r["attributes"])
            )
            for r in records
        ]

    async def _step(self, names: set[str], downstream: bool) -> list[Dependency]:
        end = "a" if downstream else "b"
        query = f"MATCH (a:Service)-[r:CALLS]->(b:Service) WHERE {end}.name IN $names RETURN {_EDGE_FIELDS}"
        return [_dependency(r) for r in await self._run(query, names=sorted(names))]

    async def neighbourhood(self, seeds: Iterable[str], hops: int, direction: Direction = "both") -> Neighbourhood:
        return await _walk.neighbourhood(seeds, hops, direction, self._step, self._services)

    async def shortest_path(self, a: str, b: str, directed: bool = False, max_hops: int = 16) -> list[str] | None:
        known = set(await self._services({a, b}))
        return await _walk.shortest_path(a, b, directed, max_hops, self._step, known)

    async def distance(self, a: str, b: str, directed: bool = False, max_hops: int = 16) -> int | None:
        path = await self.shortest_path(a, b, directed, max_hops)
        return None if path is None else len(path) - 1

    async def clear(self) -> None:
        await self._run("MATCH (n) WHERE n:Service OR n:Change DETACH DELETE n")

    async def close(self) -> None:
        await self._driver.close()
