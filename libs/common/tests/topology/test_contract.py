"""One contract for every topology store backend: networkx in memory, networkx persisted to SQLite, and Bolt
(FalkorDB in a namespace of its own; real Neo4j when ``AIOPS_TEST_NEO4J_URL`` is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_common.settings import CommonSettings
from aiops_common.topology import (
    TOPOLOGY_BACKENDS,
    Change,
    Dependency,
    Neighbour,
    Service,
    TopologyFileError,
    TopologyStore,
    load_topology,
    open_topology_store,
)
from aiops_common.topology import bolt as bolt_module

pytestmark = pytest.mark.functional

AT = datetime(2026, 1, 1, tzinfo=UTC)
NEO4J_URL = os.environ.get("AIOPS_TEST_NEO4J_URL", "")

Opener = Callable[[], TopologyStore]


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("falkordb", marks=pytest.mark.integration),
        pytest.param("neo4j", marks=pytest.mark.integration),
    ]
)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens the backend's store; a second call reaches the same data through a new connection (or file open)."""
    if request.param == "memory":
        only = open_topology_store("memory://")
        urls: list[str] = []
    elif request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'topology.sqlite'}"]
    elif request.param == "falkordb":
        url: str = request.getfixturevalue("falkordb_url")
        urls = [f"{url}?database=t{uuid.uuid4().hex[:12]}"]
    else:
        if not NEO4J_URL:
            pytest.skip("set AIOPS_TEST_NEO4J_URL to run the contract against Neo4j")
        urls = [NEO4J_URL]
    opened: list[TopologyStore] = []

    def open_store() -> TopologyStore:
        store = only if not urls else open_topology_store(urls[0])
        opened.append(store)
        return store

    first = open_store()
    await first.clear()  # a shared Neo4j keeps what an earlier run wrote
    yield open_store
    for store in {id(s): s for s in opened}.values():
        await store.clear()
        await store.close()


@pytest.fixture
async def store(opener: Opener) -> TopologyStore:
    return opener()


def edge(
    caller: str, callee: str, first_min: int = 0, last_min: int | None = None, source: str = "traces"
) -> Dependency:
    last = first_min if last_min is None else last_min
    return Dependency(
        caller, callee, frozenset({source}), AT + timedelta(minutes=first_min), AT + timedelta(minutes=last)
    )


async def chain(store: TopologyStore) -> None:
    """web -> api -> {db, cache}; web2 -> api; worker -> db; db -> disk."""
    for a, b in [("web", "api"), ("web2", "api"), ("api", "db"), ("api", "cache"), ("worker", "db"), ("db", "disk")]:
        await store.upsert_dependencies([edge(a, b)])


def test_every_scheme_is_covered() -> None:
    assert TOPOLOGY_BACKENDS.schemes == ["bolt", "bolt+s", "memory", "neo4j", "neo4j+s", "sqlite"], (
        "add the new backend to the opener fixture's params"
    )


def test_settings_default_to_sqlite_under_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AIOPS_TOPOLOGY_URL", raising=False)
    assert CommonSettings(data_dir=tmp_path).topology_url == f"sqlite:///{tmp_path / 'topology.sqlite'}"
    monkeypatch.setenv("AIOPS_TOPOLOGY_URL", "bolt://127.0.0.1:7687")
    assert CommonSettings(data_dir=tmp_path).topology_url == "bolt://127.0.0.1:7687"


async def test_services_merge_attributes(store: TopologyStore) -> None:
    assert isinstance(store, TopologyStore)
    await store.upsert_services(
        [Service("api", {"tier": "backend", "zone": "eu-1"}), Service("db", {"tier": "data", "replicas": 3})]
    )
    await store.upsert_services([Service("api", {"zone": "eu-2", "team": "payments"}), Service("api", {"on": True})])
    api = await store.service("api")
    assert api == Service("api", {"tier": "backend", "zone": "eu-2", "team": "payments", "on": True})
    assert (api.tier, api.zone, api.team) == ("backend", "eu-2", "payments")
    assert await store.service("nope") is None
    assert [s.name for s in await store.services()] == ["api", "db"]
    assert (await store.service("db")) == Service("db", {"tier": "data", "replicas": 3})


async def test_dependencies_merge_sources_and_seen_span(store: TopologyStore) -> None:
    await store.upsert_services([Service("api", {"tier": "backend"})])
    await store.upsert_dependencies([edge("api", "db", 10, 20, "file")])
    # Seen earlier and later by traces, in one batch with a duplicate: first = min, last = max.
    await store.upsert_dependencies([edge("api", "db", 5, 12), edge("api", "db", 15, 30), edge("web", "api", 1)])
    await store.upsert_dependencies([edge("api", "db", 11, 19, "file")])  # inside the span: nothing moves
    assert await store.dependencies() == [
        Dependency("api", "db", frozenset({"file", "traces"}), AT + timedelta(minutes=5), AT + timedelta(minutes=30)),
        edge("web", "api", 1),
    ]
    # Edges bring their services, without attributes; known attributes stay.
    assert await store.services() == [Service("api", {"tier": "backend"}), Service("db"), Service("web")]


async def test_reopened_store_sees_everything(opener: Opener) -> None:
    store = opener()
    await store.upsert_services([Service("api", {"tier": "backend"})])
    await store.upsert_dependencies([edge("api", "db", 1, 2, "file")])
    await store.add_changes([Change("c1", "api", AT + timedelta(seconds=1.5), "deployment", "v2.4.1", {"v": "2"})])
    again = opener()
    assert await again.services() == [Service("api", {"tier": "backend"}), Service("db")]
    assert await again.dependencies() == [edge("api", "db", 1, 2, "file")]
    assert await again.changes(AT, AT + timedelta(hours=1)) == [
        Change("c1", "api", AT + timedelta(seconds=1.5), "deployment", "v2.4.1", {"v": "2"})
    ]


async def test_many_edges_cross_batches(store: TopologyStore) -> None:
    count = bolt_module.BATCH * 2 + 100
    await store.upsert_dependencies(edge(f"s{i:05d}", f"s{i + 1:05d}", i) for i in range(count))
    padding = "x" * 1000  # rows larger than one Bolt chunk all together
    await store.upsert_services(Service(f"s{i:05d}", {"note": padding}) for i in range(200))
    deps = await store.dependencies()
    assert len(deps) == count
    assert deps[-1] == edge(f"s{count - 1:05d}", f"s{count:05d}", count - 1)
    assert await store.distance("s00000", "s00010") == 10
    assert (await store.service("s00199")) == Service("s00199", {"note": padding})


async def test_load_topology_file(store: TopologyStore) -> None:
    payload = {
        "services": [
            {"name": "web", "tier": "frontend", "zone": "eu-1", "team": "shop"},
            {"name": "api", "tier": "backend", "replicas": 3},
            {"name": "db"},
        ],
        "dependencies": [{"from": "web", "to": "api"}, {"from": "api", "to": "db"}, {"from": "web", "to": "api"}],
    }
    loaded = await load_topology(store, payload, AT)
    assert [s.name for s in loaded.services] == ["web", "api", "db"]
    assert await store.service("web") == Service("web", {"tier": "frontend", "zone": "eu-1", "team": "shop"})
    assert await store.dependencies() == [edge("api", "db", source="file"), edge("web", "api", source="file")]
    # Loading again later keeps first_seen and moves last_seen.
    await load_topology(store, payload, AT + timedelta(minutes=7))
    assert (await store.dependencies())[0] == edge("api", "db", 0, 7, "file")


async def test_invalid_topology_file_names_each_bad_item_and_writes_nothing(store: TopologyStore) -> None:
    payload = {
        "services": [{"name": "web"}, {"tier": "backend"}, {"name": "web"}, {"name": "db", "tags": ["a"]}, "x"],
        "dependencies": [{"from": "web", "to": "ghost"}, {"from": "web"}, {"from": "db", "to": "db"}, {"to": "web"}],
        "extra": 1,
    }
    with pytest.raises(TopologyFileError) as raised:
        await load_topology(store, payload, AT)
    assert raised.value.problems == [
        "unknown top-level keys ['extra'] (expected 'services' and 'dependencies')",
        "services[1].name: missing or not a non-empty string",
        "services[2] (web): declared twice",
        "services[3] (db).tags: must be a string, number or boolean, not list",
        "services[4]: must be an object with a 'name'",
        "dependencies[0].to: 'ghost' is not a service in this file",
        "dependencies[1].to: missing or not a non-empty string",
        "dependencies[2]: 'db' calls itself",
        "dependencies[3].from: missing or not a non-empty string",
    ]
    with pytest.raises(TopologyFileError, match="must be an object"):
        await load_topology(store, [], AT)
    assert await store.services() == []


async def test_changes_in_a_time_range(store: TopologyStore) -> None:
    await store.add_changes(
        [
            Change("d1", "api", AT + timedelta(minutes=1), "deployment", "api v2.4.1"),
            Change("c1", "db", AT + timedelta(minutes=2), "config", "pool size 50"),
            Change("d0", "api", AT + timedelta(minutes=2), "deployment", "api v2.4.2"),
            Change("d2", "web", AT + timedelta(minutes=5)),
        ]
    )
    since, until = AT + timedelta(minutes=1), AT + timedelta(minutes=5)
    assert [c.id for c in await store.changes(since, until)] == ["d1", "c1", "d0"]  # until is excluded
    assert [c.id for c in await store.changes(since, until, ["api", "web"])] == ["d1", "d0"]
    assert await store.changes(since, until, []) == []
    # A second delivery of an id replaces it, here moving it to another service and time.
    await store.add_changes([Change("d1", "web", AT + timedelta(minutes=3), "rollback", "back to v2.4.0")])
    assert [c.id for c in await store.changes(since, until, ["api"])] == ["d0"]
    assert await store.changes(since, until, ["web"]) == [
        Change("d1", "web", AT + timedelta(minutes=3), "rollback", "back to v2.4.0")
    ]
    assert [s.name for s in await store.services()] == ["api", "db", "web"]


async def test_neighbourhood_up_and_downstream(store: TopologyStore) -> None:
    await chain(store)
    await store.upsert_services([Service("api", {"tier": "backend"})])
    near = await store.neighbourhood(["api", "unknown"], 1)
    assert near.nodes == (
        Neighbour(Service("api", {"tier": "backend"}), 0, "seed"),
        Neighbour(Service("cache"), 1, "downstream"),
        Neighbour(Service("db"), 1, "downstream"),
        Neighbour(Service("web"), 1, "upstream"),
        Neighbour(Service("web2"), 1, "upstream"),
    )  # worker calls db, a sibling of api's: neither up- nor downstream of api
    assert [(e.caller, e.callee) for e in near.edges] == [
        ("api", "cache"),
        ("api", "db"),
        ("web", "api"),
        ("web2", "api"),
    ]
    down = await store.neighbourhood(["web"], 2, "downstream")
    assert {n.service.name: n.distance for n in down.nodes} == {"web": 0, "api": 1, "db": 2, "cache": 2}
    up = await store.neighbourhood(["disk"], 5, "upstream")
    assert {n.service.name: (n.distance, n.direction) for n in up.nodes} == {
        "disk": (0, "seed"),
        "db": (1, "upstream"),
        "api": (2, "upstream"),
        "worker": (2, "upstream"),
        "web": (3, "upstream"),
        "web2": (3, "upstream"),
    }
    assert (await store.neighbourhood(["api"], 0)).names() == {"api"}
    assert (await store.neighbourhood(["ghost"], 3)).nodes == ()
    with pytest.raises(ValueError, match="hops"):
        await store.neighbourhood(["api"], -1)


async def test_neighbourhood_of_several_seeds_and_a_cycle(store: TopologyStore) -> None:
    await store.upsert_dependencies([edge("a", "b"), edge("b", "c"), edge("c", "a"), edge("x", "y")])
    near = await store.neighbourhood(["a", "x"], 1)
    assert {n.service.name: (n.distance, n.direction) for n in near.nodes} == {
        "a": (0, "seed"),
        "b": (1, "downstream"),
        "c": (1, "upstream"),
        "x": (0, "seed"),
        "y": (1, "downstream"),
    }
    wider = await store.neighbourhood(["a"], 2)
    assert {n.service.name: (n.distance, n.direction) for n in wider.nodes} == {
        "a": (0, "seed"),
        "b": (1, "both"),  # a -> b, and b -> c -> a
        "c": (1, "both"),
    }


async def test_shortest_path_and_distance(store: TopologyStore) -> None:
    await chain(store)
    assert await store.shortest_path("web", "worker") == ["web", "api", "db", "worker"]
    assert await store.distance("web", "worker") == 3
    assert await store.shortest_path("web", "worker", directed=True) is None
    assert await store.shortest_path("web", "disk", directed=True) == ["web", "api", "db", "disk"]
    assert await store.distance("disk", "web", directed=True) is None
    assert await store.distance("disk", "web") == 3
    assert await store.distance("web", "worker", max_hops=2) is None
    assert await store.distance("api", "api") == 0
    assert await store.distance("api", "ghost") is None
    # Two equally short ways: the path goes through the first by name.
    await store.upsert_dependencies([edge("web", "cache"), edge("cache", "db")])
    assert await store.shortest_path("web", "db") == ["web", "api", "db"]
    assert await store.shortest_path("web2", "disk") == ["web2", "api", "db", "disk"]


async def test_clear(store: TopologyStore) -> None:
    await chain(store)
    await store.add_changes([Change("d1", "api", AT)])
    await store.clear()
    assert await store.services() == []
    assert await store.dependencies() == []
    assert await store.changes(AT, AT + timedelta(days=1)) == []
