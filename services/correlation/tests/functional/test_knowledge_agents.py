"""The knowledge agents in a real correlation worker: call edges and changes into the topology store, log records
into the document store; redeliveries are no-ops, the retention sweep deletes what is too old."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher, free_port
from aiops_common.broker.publisher import Message
from aiops_common.documents import DocumentFilter, open_document_store
from aiops_common.schemas import ChangeEvent, LogBatch, LogRecord, TopologyEdge
from aiops_common.topics import Topics
from aiops_common.topology import Dependency, open_topology_store

pytestmark = pytest.mark.functional

NOW = datetime.now(UTC).replace(microsecond=0)
T0_MS = int((NOW - timedelta(minutes=10)).timestamp() * 1000)
WINDOW_MS = 10_000


KNOWLEDGE_WORKER = Path(__file__).with_name("knowledge_worker.py")


def start_knowledge_worker(env: dict[str, str], log_path: Path) -> WorkerProcess:
    """Correlation's knowledge agents alone in a worker process, its probes on a free port."""
    port = free_port()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(KNOWLEDGE_WORKER)],
            env={**env, "AIOPS_WORKER_HTTP_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(proc, log_path, f"http://127.0.0.1:{port}")


def edge(caller: str, callee: str, window: int) -> TopologyEdge:
    return TopologyEdge(
        caller=caller,
        callee=callee,
        window_start_ms=T0_MS + window * WINDOW_MS,
        window_length_ms=WINDOW_MS,
        calls=5,
        errors=0,
        latency_mean_s=0.01,
        latency_p50_s=0.01,
        latency_p95_s=0.02,
        latency_p99_s=0.02,
        latency_max_s=0.03,
    )


def log_record(service: str, severity: str, body: str, seconds_ago: int) -> LogRecord:
    ts_ns = int((NOW - timedelta(seconds=seconds_ago)).timestamp()) * 1_000_000_000
    return LogRecord(ts_ns, service, body, severity, 17 if severity == "ERROR" else 9, {"pod": f"{service}-0"}, "t1")


def at_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition; 0 when the series is not there yet."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


@pytest.mark.parametrize("whole_service", [False, True], ids=["knowledge-agents", "aiops-worker-correlation"])
async def test_edges_changes_and_logs_reach_their_stores_once(
    broker_url: str, topic_prefix: str, publisher: Publisher, tmp_path: Path, whole_service: bool
) -> None:
    """Alone, and in ``aiops worker correlation`` beside the incident builder (the wiring in ``worker.py``)."""
    data = tmp_path / "data"
    topology_url = f"sqlite:///{data / 'topology.sqlite'}"
    documents_url = f"sqlite:///{data / 'documents.sqlite'}"

    # What was there before the worker: a declared edge, and a log line older than the retention bound.
    loaded_at = NOW - timedelta(days=1)
    topology = open_topology_store(topology_url)
    await topology.upsert_dependencies([Dependency("api", "db", frozenset({"file"}), loaded_at, loaded_at)])
    await topology.close()
    documents = open_document_store(documents_url)
    old = {"at": (NOW - timedelta(hours=2)).isoformat(), "services": ["api"], "severity": "error", "message": "old"}
    await documents.upsert("logs", "log-old", old)
    await documents.close()

    env = worker_env(
        broker_url,
        topic_prefix,
        data,
        topology_url=topology_url,
        documents_url=documents_url,
        logs_index_retention_s=3600,
        logs_index_min_severity="info",
    )
    if whole_service:
        worker = WorkerProcess.start("correlation", env, tmp_path / "correlation.log", http_port=free_port())
    else:
        worker = start_knowledge_worker(env, tmp_path / "knowledge.log")
    try:
        edges = [edge("api", "db", 1), edge("api", "db", 0), edge("web", "api", 3), edge("api", "db", 2)]
        changes = [
            ChangeEvent(id="d-1", service="api", version="v2.4.1", at=NOW - timedelta(minutes=8)),
            ChangeEvent(id="d-2", service="db", kind="config", description="pool 20 -> 40", at=NOW),
        ]
        logs = LogBatch(
            [
                log_record("api", "ERROR", "timeout calling db", 30),
                log_record("api", "DEBUG", "cache miss", 20),  # below the minimum severity
                log_record("db", "INFO", "checkpoint complete", 10),
                log_record("db", "UNSPECIFIED", "plain stdout line", 5),  # no severity: kept
                log_record("api", "ERROR", "too old to keep", 7200),  # past the retention bound
            ]
        )
        # Every message twice: what a producer's retry or a redelivery after a restart looks like.
        for _ in range(2):
            await publisher.publish(
                [Message(Topics.TOPOLOGY_EDGES, e.encode(), key=e.caller.encode()) for e in edges]
                + [Message(Topics.CHANGES, c.encode(), key=c.service.encode()) for c in changes]
                + [Message(Topics.LOGS_RAW, logs.encode(), key=b"api")]
            )
        await publisher.publish([Message(Topics.LOGS_RAW, b"not a log batch", key=b"api")])
        await worker.until_ready()

        async def topology_state() -> tuple[list[Dependency], list[str]]:
            store = open_topology_store(topology_url)  # opened again: the worker's writes are in the file
            try:
                deps = await store.dependencies()
                found = await store.changes(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
            finally:
                await store.close()
            assert [(d.caller, d.callee) for d in deps] == [("api", "db"), ("web", "api")], deps
            assert [c.id for c in found] == ["d-1", "d-2"], found
            return deps, [c.service for c in found]

        deps, change_services = await worker.eventually(topology_state, 60, "both edges and both changes stored")
        api_db, web_api = deps
        assert api_db.sources == {"file", "traces"}
        assert api_db.first_seen == loaded_at  # the file's sighting is older than any window
        assert api_db.last_seen == at_ms(T0_MS + 3 * WINDOW_MS)
        assert web_api.sources == {"traces"}
        assert (web_api.first_seen, web_api.last_seen) == (at_ms(T0_MS + 3 * WINDOW_MS), at_ms(T0_MS + 4 * WINDOW_MS))
        assert change_services == ["api", "db"]

        async def indexed() -> list[str]:
            store = open_document_store(documents_url)
            try:
                page = await store.query("logs", oldest_first=True)
            finally:
                await store.close()
            messages = [doc.body["message"] for doc in page.documents]
            assert messages == ["timeout calling db", "checkpoint complete", "plain stdout line"], messages
            return [doc.id for doc in page.documents]

        await worker.eventually(indexed, 60, "three log documents, the old one swept")

        async def counted() -> str:
            async with httpx.AsyncClient(timeout=5.0) as client:
                text = (await client.get(worker.probe_url + "/metrics")).text
            assert metric(text, "aiops_agent_dropped_records_total", agent="log_indexer", reason="undecodable") == 1
            return text

        text = await worker.eventually(counted, 30, "the undecodable log message counted")
        skipped = "aiops_log_index_skipped_records_total"
        assert metric(text, skipped, reason="below_min_severity") == 2  # one per delivery
        assert metric(text, skipped, reason="past_retention") == 2
        assert metric(text, "aiops_agent_records_in_total", agent="dependency_recorder") == 8
        for agent in ("dependency_recorder", "change_recorder"):
            assert metric(text, "aiops_agent_dropped_records_total", agent=agent, reason="store_unavailable") == 0

        store = open_document_store(documents_url)
        try:
            errors = await store.query("logs", DocumentFilter(service="api", severity="error", text="timeout"))
            assert len(errors.documents) == 1
            body = errors.documents[0].body
            assert (body["source"], body["trace_id"], body["labels"]) == ("api-0", "t1", {"pod": "api-0"})
            assert await store.get("logs", "log-old") is None
        finally:
            await store.close()
    finally:
        worker.stop()


async def test_a_worker_killed_mid_stream_and_restarted_indexes_each_record_once(
    broker_url: str, topic_prefix: str, publisher: Publisher, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    documents_url = f"sqlite:///{data / 'documents.sqlite'}"
    env = worker_env(broker_url, topic_prefix, data, documents_url=documents_url, logs_index_min_severity="debug")
    batches = [
        LogBatch(log_record(f"svc{b % 4}", "INFO", f"request {b}-{i} done", 60) for i in range(50)) for b in range(60)
    ]
    edges = [edge(f"svc{w % 4}", f"svc{(w + 1) % 4}", w) for w in range(60)]
    await publisher.publish(
        [Message(Topics.LOGS_RAW, b.encode(), key=b.rows[0].service.encode()) for b in batches]
        + [Message(Topics.TOPOLOGY_EDGES, e.encode(), key=e.caller.encode()) for e in edges]
    )

    async def count() -> int:
        store = open_document_store(documents_url)
        try:
            return await store.count("logs")
        finally:
            await store.close()

    first = start_knowledge_worker(env, tmp_path / "first.log")
    try:
        await first.until_ready()
        await first.eventually(count, 60, "some log documents indexed")
    finally:
        first.kill()  # SIGKILL: whatever was indexed but not committed is read again
    second = start_knowledge_worker(env, tmp_path / "second.log")
    try:

        async def all_indexed() -> bool:
            n = await count()
            assert n == 60 * 50, n
            return True

        await second.eventually(all_indexed, 120, "every record indexed")

        async def edges_recorded() -> list[Dependency]:
            store = open_topology_store(f"sqlite:///{data / 'topology.sqlite'}")
            try:
                deps = await store.dependencies()
            finally:
                await store.close()
            assert len(deps) == 4 and deps[-1].last_seen == at_ms(T0_MS + 60 * WINDOW_MS), deps
            return deps

        deps = await second.eventually(edges_recorded, 60, "the four edges with their last window")
        assert [d.first_seen for d in deps] == [at_ms(T0_MS + w * WINDOW_MS) for w in (0, 1, 2, 3)]
    finally:
        second.stop()
