"""The topology view: paths with the stores' tie-breaking, call edges, depth, neighbourhoods, relations."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime

import pytest
from aiops_common.topology import Dependency, Service
from aiops_correlation.policy import similarity, topology_view
from aiops_correlation.policy.topology_view import TopologyView

pytestmark = pytest.mark.unit

T = datetime(2026, 1, 1, tzinfo=UTC)


def view(*edges: str, services: tuple[Service, ...] = ()) -> TopologyView:
    pairs = [e.split(">") for e in edges]
    return TopologyView.build(services, [Dependency(a, b, frozenset({"file"}), T, T) for a, b in pairs])


def test_path_is_the_shortest_either_way_with_ties_broken_by_name() -> None:
    # web calls api-b and api-a, both call db: two shortest paths, the stores pick api-a.
    v = view("web>api-b", "web>api-a", "api-a>db", "api-b>db", "db>disk")
    assert v.path("web", "db", 4) == ["web", "api-a", "db"]
    assert v.path("db", "web", 4) == ["db", "api-a", "web"]
    assert v.path("disk", "web", 2) is None, "three hops away"
    assert v.path("disk", "web", 3) == ["disk", "db", "api-a", "web"]
    assert v.path("web", "web", 0) == ["web"]
    assert v.path("unknown", "unknown", 2) == ["unknown"]
    assert v.path("web", "unknown", 5) is None


def test_calls_is_directed_and_depth_puts_callees_below_their_callers() -> None:
    v = view("web>api", "api>db", "web>db", "batch>db")
    assert v.calls("web", "api") and not v.calls("api", "web")
    # db is reached in one hop from web but two from web via api: the longest chain sets its depth.
    assert [v.depth(s) for s in ("web", "batch", "api", "db")] == [0, 0, 1, 2]
    assert v.depth("nowhere") == 0
    assert v.callers("db") == ("api", "batch", "web") and v.callees("web") == ("api", "db")


def test_depth_terminates_on_cycles_and_keeps_callees_below_the_entry() -> None:
    v = view("web>a", "a>b", "b>a", "b>c")
    assert v.depth("web") == 0
    assert v.depth("a") >= 1 and v.depth("c") > v.depth("b")
    loop = view("x>y", "y>x")
    assert {loop.depth("x"), loop.depth("y")} == {0, 1}


def test_attributes_come_from_the_services_and_unknown_ones_are_empty() -> None:
    v = view("web>api", services=(Service("api", {"tier": "backend", "zone": "a"}),))
    assert dict(v.attributes("api")) == {"tier": "backend", "zone": "a"}
    assert dict(v.attributes("web")) == {} and dict(v.attributes("nowhere")) == {}
    assert "api" in v and "web" in v and "nowhere" not in v and len(v) == 2


def test_within_gives_distances_both_ways_and_relation_names_how_two_services_meet() -> None:
    v = view("web>api", "api>db", "batch>db", "web>cache")
    assert dict(v.within("api", 1)) == {"api": 0, "web": 1, "db": 1}
    assert dict(v.within("api", 2)) == {"api": 0, "web": 1, "db": 1, "batch": 2, "cache": 2}
    assert v.relation("web", "api") == ("calls", "")
    assert v.relation("api", "web") == ("called_by", "")
    assert v.relation("web", "db") == ("chain_down", "api")
    assert v.relation("db", "web") == ("chain_up", "api")
    assert v.relation("api", "batch") == ("common_callee", "db")
    assert v.relation("api", "cache") == ("common_caller", "web")
    assert v.relation("web", "batch") == ("far", "")
    assert v.relation("db", "db") == ("same", "db")


def test_the_empty_view_knows_nothing() -> None:
    assert len(TopologyView.EMPTY) == 0
    assert TopologyView.EMPTY.path("a", "b", 3) is None
    assert dict(TopologyView.EMPTY.within("a", 2)) == {"a": 0}


def test_self_calls_are_ignored() -> None:
    v = view("a>a", "a>b")
    assert v.callees("a") == ("b",) and not v.calls("a", "a")


@pytest.mark.parametrize("module", [topology_view, similarity])
def test_docstring_examples_run(module: object) -> None:
    failed, _ = doctest.testmod(module)  # type: ignore[arg-type]
    assert failed == 0
