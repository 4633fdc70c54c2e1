"""The topology store: services, their call edges and changes, one protocol, one implementation per URL scheme.

>>> TOPOLOGY_BACKENDS.schemes
['bolt', 'bolt+s', 'memory', 'neo4j', 'neo4j+s', 'sqlite']
"""

from __future__ import annotations

from aiops_common.registry import BackendRegistry
from aiops_common.topology._file import TopologyFile, TopologyFileError, load_topology, parse_topology_file
from aiops_common.topology._protocol import (
    AttributeValue,
    Change,
    Dependency,
    Direction,
    Neighbour,
    Neighbourhood,
    Service,
    TopologyStore,
    from_millis,
    millis,
)
from aiops_common.topology._walk import nearest_parents, unwind_path

__all__ = [
    "TOPOLOGY_BACKENDS",
    "AttributeValue",
    "Change",
    "Dependency",
    "Direction",
    "Neighbour",
    "Neighbourhood",
    "Service",
    "TopologyFile",
    "TopologyFileError",
    "TopologyStore",
    "from_millis",
    "load_topology",
    "millis",
    "nearest_parents",
    "open_topology_store",
    "parse_topology_file",
    "unwind_path",
]

TOPOLOGY_BACKENDS: BackendRegistry[TopologyStore] = BackendRegistry("topology store")
TOPOLOGY_BACKENDS.register("memory", "aiops_common.topology.memory:NetworkxTopologyStore")
TOPOLOGY_BACKENDS.register("sqlite", "aiops_common.topology.memory:NetworkxTopologyStore")
for _scheme in ("bolt", "bolt+s", "neo4j", "neo4j+s"):
    TOPOLOGY_BACKENDS.register(_scheme, "aiops_common.topology.bolt:BoltTopologyStore")


def open_topology_store(url: str) -> TopologyStore:
    """The store a URL names: ``sqlite:///.aiops/topology.sqlite``, ``memory://``, ``neo4j://host:7687``."""
    return TOPOLOGY_BACKENDS.by_url(url)
