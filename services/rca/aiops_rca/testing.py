"""Test support: correlation and RCA workers on one broker, and the shop's history and topology they analyse.

Shared by the RCA service's functional tests and the platform's fault tests. Services do not import the
``aiops`` command, so the worker launcher (``aiops_cli.testing.WorkerProcess.start``) and its environment
(``worker_env``) are handed in by the tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from aiops_common.broker import Publisher, free_port
from aiops_common.broker.publisher import Message
from aiops_common.broker.reader import read_to_end
from aiops_common.documents import open_document_store
from aiops_common.schemas import AnomalyRecord, IncidentRecord, MetricBatchBuilder, RcaResult
from aiops_common.testing.records import service_anomaly
from aiops_common.topics import Topics, TopicSpec
from aiops_common.topology import Dependency, Service, millis, open_topology_store
from aiops_common.tsdb import open_tsdb

__all__ = [
    "CHAINS",
    "SHOP_CALLS",
    "SHOP_SERVICES",
    "STEP_S",
    "Environment",
    "Launch",
    "Pipeline",
    "chain_calls",
    "chain_services",
    "fault_anomalies",
    "fault_history",
    "load_topology",
    "write_history",
]

W = TypeVar("W")
W_co = TypeVar("W_co", covariant=True)

STEP_S = 10
"""The stream's window: one point of every series per step."""
SHOP_SERVICES = ["frontend", "checkout", "payment", "db", "search"]
"""frontend -> checkout -> payment -> db; search stands alone."""
SHOP_CALLS = [("frontend", "checkout"), ("checkout", "payment"), ("payment", "db")]
CHAINS = [(f"web{i}", f"api{i}", f"store{i}") for i in range(3)]
"""Three chains of their own, for incidents that never group with one another."""


def chain_services() -> list[str]:
    return [name for chain in CHAINS for name in chain]


def chain_calls() -> list[tuple[str, str]]:
    return [(a, b) for chain in CHAINS for a, b in itertools.pairwise(chain)]


class Launch(Protocol[W_co]):
    """Starts ``python -m aiops_cli worker SERVICE`` with ``env``, its log at ``log_path``, probes on ``http_port``."""

    def __call__(self, service: str, env: Mapping[str, str], log_path: Path, http_port: int | None = None) -> W_co: ...


class Environment(Protocol):
    """A worker's environment for a broker, a topic prefix, a data folder and ``AIOPS_*`` settings."""

    def __call__(self, broker_url: str, topic_prefix: str, data_dir: Path, **settings: object) -> dict[str, str]: ...


@dataclass
class Pipeline(Generic[W]):
    """Correlation and RCA workers on one broker, under one topic prefix and data folder (SQLite stores)."""

    broker_url: str
    prefix: str
    data_dir: Path
    tmp: Path
    launch: Launch[W]
    environment: Environment
    started: list[W] = field(default_factory=list)

    @property
    def documents_path(self) -> Path:
        return self.data_dir / "documents.sqlite"

    @property
    def tsdb_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'tsdb.sqlite'}"

    @property
    def topology_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'topology.sqlite'}"

    def start(self, service: str, **settings: object) -> W:
        env = self.environment(self.broker_url, self.prefix, self.data_dir, **settings)
        log = self.tmp / f"{self.data_dir.name}-{service}-{len(self.started)}.log"
        worker = self.launch(service, env, log, free_port())
        self.started.append(worker)
        return worker

    def start_correlation(self, **settings: object) -> W:
        return self.start("correlation", correlate_tick_s=1, correlate_checkpoint_interval_s=1, **settings)

    def start_rca(self, **settings: object) -> W:
        return self.start("rca", **{"rca_debounce_s": 0.5, **settings})

    async def publish(self, spec: TopicSpec, messages: Iterable[tuple[bytes, bytes]]) -> None:
        """``(key, value)`` pairs onto a topic, acknowledged by the broker when this returns."""
        publisher = Publisher(self.broker_url, self.prefix)
        try:
            await publisher.publish([Message(spec, value, key=key) for key, value in messages])
        finally:
            await publisher.stop()

    async def publish_anomalies(self, anomalies: list[AnomalyRecord]) -> None:
        await self.publish(Topics.ANOMALIES, [(a.series_key.encode(), a.encode()) for a in anomalies])

    async def read(self, spec: TopicSpec) -> list[bytes]:
        """Every value on the topic up to its end as of now."""
        values: list[bytes] = []
        await read_to_end(self.broker_url, spec, self.prefix, values.append)
        return values

    async def incidents(self) -> dict[str, IncidentRecord]:
        """The newest revision of every incident on ``incidents`` so far."""
        newest: dict[str, IncidentRecord] = {}
        for incident in (IncidentRecord.decode(v) for v in await self.read(Topics.INCIDENTS)):
            if incident.id not in newest or incident.revision > newest[incident.id].revision:
                newest[incident.id] = incident
        return newest

    async def results(self) -> list[RcaResult]:
        return [RcaResult.decode(v) for v in await self.read(Topics.RCA_RESULTS)]

    async def documents(self, collection: str) -> dict[str, dict[str, Any]]:
        store = open_document_store(f"sqlite:///{self.documents_path}")
        try:
            page = await store.query(collection, limit=100)
            return {doc.id: doc.body for doc in page.documents}
        finally:
            await store.close()


async def load_topology(url: str, services: Iterable[str], calls: Iterable[tuple[str, str]], at: datetime) -> None:
    """The services and their call edges (source ``file``, seen from a day before ``at`` to ``at``)."""
    store = open_topology_store(url)
    try:
        await store.upsert_services(Service(name) for name in services)
        await store.upsert_dependencies(
            Dependency(a, b, frozenset({"file"}), at - timedelta(days=1), at) for a, b in calls
        )
    finally:
        await store.close()


def fault_anomalies(onset: datetime) -> list[AnomalyRecord]:
    """The fault's anomalies as detection raises them: payment's latency, then checkout's and frontend's."""
    return [
        service_anomaly("red.latency_s:value_10s", "payment", onset),
        service_anomaly("red.latency_s:value_10s", "checkout", onset + timedelta(seconds=20)),
        service_anomaly("red.latency_s:value_10s", "frontend", onset + timedelta(seconds=40)),
    ]


def fault_history(onset: datetime, now: datetime, services: Iterable[str] = SHOP_SERVICES) -> MetricBatchBuilder:
    """Two hours of 10 s RED and log series for the shop's services, as the stream writes them, then the fault:
    payment's latency and errors jump at onset; checkout's follow 20 s later and frontend's 40 s later, each
    amplified (they wait on payment and retry); db and search carry on."""
    rng = np.random.default_rng(11)
    start = millis(onset) - 2 * 3600_000
    ts = np.arange(start - start % 10_000, millis(now) + 1, STEP_S * 1000)
    lags = {"payment": 0, "checkout": 20_000, "frontend": 40_000}
    base = {"frontend": 0.12, "checkout": 0.08, "payment": 0.05, "db": 0.01, "search": 0.03}
    builder = MetricBatchBuilder()
    for service in services:
        latency = base[service] * (1 + 0.05 * rng.standard_normal(ts.size))
        errors = np.abs(0.002 * rng.standard_normal(ts.size))
        rate = 50 * (1 + 0.05 * rng.standard_normal(ts.size))
        logs = rng.poisson(0.2, ts.size).astype(float)
        if service in lags:
            hit = ts >= millis(onset) + lags[service]
            amplify = {"payment": 1.0, "checkout": 1.3, "frontend": 1.6}[service]
            latency[hit] += 0.8 * amplify * (1 + 0.05 * rng.standard_normal(int(hit.sum())))
            errors[hit] += 0.2 * amplify
            logs[hit] += rng.poisson(20 * amplify, int(hit.sum()))
        labels = {"service": service, "operation": f"{service} call"}
        for name, values in [
            ("red.latency_s:value_10s", latency),
            ("red.error_rate:value_10s", errors),
            ("red.request_rate:value_10s", rate),
        ]:
            for t, v in zip(ts.tolist(), values.tolist(), strict=True):
                builder.add(name, labels, t, v)
        for t, v in zip(ts.tolist(), logs.tolist(), strict=True):
            builder.add("log.errors:value_10s", {"service": service}, t, v)
    return builder


async def write_history(tsdb_url: str, onset: datetime, now: datetime, services: Iterable[str] = SHOP_SERVICES) -> None:
    """:func:`fault_history` into the TSDB ``tsdb_url`` names."""
    store = open_tsdb(tsdb_url)
    try:
        await store.write(fault_history(onset, now, services).build())
    finally:
        await store.close()
