"""``aiops rca``: analyze on the example files, show from a real SQLite document store, confirm and reject onto the
embedded broker's feedback topic; bad input is one line and a non-zero exit."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiops_common.broker import ensure_topics
from aiops_common.broker.reader import read_values
from aiops_common.documents import open_document_store
from aiops_common.schemas import (
    CauseKind,
    Evidence,
    EvidenceKind,
    FeedbackLabel,
    FeedbackRecord,
    MetricFinding,
    RankedCause,
    RcaResult,
    RcaStatus,
    rca_result_id,
)
from aiops_common.testing.eventually import scaled
from aiops_common.topics import Topics
from aiops_rca import cli
from typer.testing import CliRunner

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "rca"
TOPOLOGY, METRICS, CHANGES = (EXAMPLES / n for n in ("topology.json", "metrics.csv", "changes.json"))
ONSET = datetime(2026, 3, 12, 14, 20, tzinfo=UTC)
DYNAMO = "petInfo_AWS::DynamoDB::Table"


def rca(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = runner.invoke(cli.commands, ["rca", *args], env=env)
    return done.exit_code, done.output


def example(*extra: str) -> list[str]:
    return ["analyze", "--topology", str(TOPOLOGY), "--metrics", str(METRICS), *extra]


# analyze: the engine on files


@pytest.mark.functional
def test_analyze_ranks_the_released_service_first_with_its_evidence() -> None:
    code, out = rca(*example("--changes", str(CHANGES), "--json"))
    assert code == 0, out
    causes = json.loads(out)
    assert isinstance(causes, list) and causes
    assert causes[0]["service"] == "payment", [(c["service"], c["probability"]) for c in causes]
    for cause in causes:
        RankedCause.model_validate(cause)  # the record's own shape: kind, rule, metrics beside the three asked for
        assert {"service", "probability", "evidence", "kind", "rule", "metrics"} <= set(cause)
        assert all(isinstance(e["text"], str) and e["text"] for e in cause["evidence"])
    probabilities = [c["probability"] for c in causes]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0 + 1e-9
    top = causes[0]
    # The release, not the decoy: the payment deployment is evidence for payment.
    assert any(e["kind"] == EvidenceKind.CHANGE and e["version"] == "v2.4.1" for e in top["evidence"]), top
    assert not any(e["kind"] == EvidenceKind.CHANGE and e["version"] == "v1.9.0" for e in top["evidence"])
    # Its own series, the most moved first (named within the service, with or without the service in front).
    assert top["metrics"][0]["series"].removeprefix("payment:") in {"red.latency_s:p95", "red.error_rate"}


@pytest.mark.functional
def test_analyze_finds_the_onset_itself_and_prints_a_table() -> None:
    code, out = rca(*example("--changes", str(CHANGES)))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["RANK", "SERVICE", "P(CAUSE)", "KIND", "RULE"]
    assert lines[1].split()[:2] == ["1", "payment"]
    assert lines[2].startswith("      ")  # its evidence, indented under it
    onset = next(line for line in lines if line.startswith("onset: "))
    found = datetime.fromisoformat(onset.removeprefix("onset: "))
    assert abs((found - ONSET).total_seconds()) <= 60, onset
    assert "status: ok" in lines


@pytest.mark.functional
def test_analyze_with_the_onset_and_target_given() -> None:
    code, out = rca(*example("--onset", "2026-03-12T14:20:00Z", "--target", "frontend:red.latency_s:p95", "--json"))
    assert code == 0, out
    assert json.loads(out)[0]["service"] == "payment"
    code, out = rca(*example("--onset", str(ONSET.timestamp()), "--top", "2", "--evidence", "1"))
    assert code == 0, out
    assert "onset: 2026-03-12T14:20:00Z" in out
    assert [line.split()[0] for line in out.splitlines()[1:] if line[:4].strip().isdigit()] == ["1", "2"]


@pytest.mark.functional
def test_analyze_keeps_service_names_with_colons(tmp_path: Path) -> None:
    """A DynamoDB table whose name holds '::' slows its caller: the ranking names the table whole."""
    rng = np.random.default_rng(7)
    topology = {"services": [{"name": "api"}, {"name": DYNAMO}], "dependencies": [{"from": "api", "to": DYNAMO}]}
    (tmp_path / "topology.json").write_text(json.dumps(topology))
    n, onset = 360, 300
    table = 0.01 * rng.lognormal(0, 0.05, n)
    table[onset:] += 0.5
    api = 0.02 * rng.lognormal(0, 0.05, n) + np.concatenate([table[:1], table[:-1]])
    with (tmp_path / "metrics.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["timestamp", f"{DYNAMO}:latency:value_10s", "api:latency:value_10s"])
        writer.writerows([1_767_225_600 + 10 * i, f"{table[i]:.5f}", f"{api[i]:.5f}"] for i in range(n))
    code, out = rca(
        "analyze", "--topology", str(tmp_path / "topology.json"), "--metrics", str(tmp_path / "metrics.csv"), "--json"
    )
    assert code == 0, out
    top = json.loads(out)[0]
    assert top["service"] == DYNAMO
    assert top["metrics"][0]["series"].removeprefix(f"{DYNAMO}:") == "latency:value_10s"


def _bad_files(tmp_path: Path) -> list[tuple[list[str], str]]:
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("timestamp,payment:red.latency_s:p95\n1773320400,0.1\n1773320410,slow\n")
    no_colon = tmp_path / "no-colon.csv"
    no_colon.write_text("timestamp,latency\n1773320400,0.1\n")
    bad_changes = tmp_path / "changes.json"
    bad_changes.write_text(json.dumps([{"ts": "soon", "service": "payment", "version": "v1"}]))
    bad_topology = tmp_path / "topology.json"
    bad_topology.write_text(json.dumps({"services": [{"name": "a"}], "dependencies": [{"from": "a", "to": "b"}]}))
    m, t = str(METRICS), str(TOPOLOGY)
    return [
        (["--topology", t, "--metrics", str(bad_csv)], f"{bad_csv}: line 3, column 'payment:red.latency_s:p95'"),
        (["--topology", t, "--metrics", str(no_colon)], f"{no_colon}: line 1, column 'latency'"),
        (["--topology", t, "--metrics", str(tmp_path / "nope.csv")], "nope.csv: cannot read"),
        (["--topology", str(bad_topology), "--metrics", m], f"{bad_topology}: invalid topology file"),
        (["--topology", t, "--metrics", m, "--changes", str(bad_changes)], f"{bad_changes}: [0].ts: not a time"),
        (["--topology", t, "--metrics", m, "--onset", "after lunch"], "--onset: not a time: 'after lunch'"),
        (
            ["--topology", t, "--metrics", m, "--onset", "2026-03-13T00:00:00Z"],
            "--onset: 2026-03-13T00:00:00Z is outside",
        ),
        (["--topology", t, "--metrics", m, "--baseline-end", "0"], "--baseline-end: 0 is outside"),
        (["--topology", t, "--metrics", m, "--target", "payment:nope"], "--target: "),
        (["--topology", t, "--metrics", m, "--target", "latency"], "--target: 'latency' is not SERVICE:METRIC"),
    ]


@pytest.mark.functional
def test_a_bad_file_or_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, says in _bad_files(tmp_path):
        code, out = rca("analyze", *args)
        assert code == 2, (args, out)
        assert out.startswith("error: ") and says in out, (args, out)
        assert len(out.strip().splitlines()) == 1 and "Traceback" not in out


@pytest.mark.functional
def test_the_aiops_command_runs_rca_analyze(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("when,a:b\n1,2\n")
    done = subprocess.run(
        [sys.executable, "-m", "aiops_cli", "rca", "analyze", "--topology", str(TOPOLOGY), "--metrics", str(bad)],
        env={**os.environ, "AIOPS_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: {bad}: line 1: no 'timestamp' column in the header ['when', 'a:b']"


# show: the stored result


INCIDENT = "inc-7f3a"


def result(revision: int, top: str, analyzed: datetime) -> RcaResult:
    onset = ONSET + timedelta(seconds=revision)
    causes = [
        RankedCause(
            service=top,
            probability=0.82,
            kind=CauseKind.DEPLOYMENT,
            rule="deployment_before_onset",
            metrics=[MetricFinding(series=f"{top}:red.latency_s:p95", score=14.2, onset=onset, value=0.7)],
            evidence=[
                Evidence(kind=EvidenceKind.RULE, text="deployment v2.4.1 150 s before onset", weight=3.0),
                Evidence(kind=EvidenceKind.SERIES, text="red.latency_s:p95 rose to 0.7 s (robust z 14.2)", weight=2.1),
                Evidence(kind=EvidenceKind.GRANGER, text=f"{top} -> checkout p=0.001 lag 1", weight=1.2),
                Evidence(kind=EvidenceKind.ONSET, text="moved 10 s before checkout", weight=0.5),
            ],
        ),
        RankedCause(
            service="checkout",
            probability=0.11,
            kind=CauseKind.LATENCY,
            evidence=[Evidence(kind=EvidenceKind.ONSET, text=f"explained by {top}", weight=-2.0)],
        ),
    ]
    return RcaResult(
        id=rca_result_id(INCIDENT, revision),
        incident_id=INCIDENT,
        incident_revision=revision,
        at=onset,
        analyzed_at=analyzed,
        status=RcaStatus.DEGRADED if revision == 1 else RcaStatus.OK,
        missing=["traces: no spans in the window"] if revision == 1 else [],
        onset=onset,
        services=[top, "checkout", "frontend"],
        causes=causes,
        summary=f"{top} is the most probable cause",
    )


@pytest.fixture
def documents(tmp_path: Path) -> dict[str, str]:
    """A document store with three analyses of one incident (revision 2 stored before 3, 1 last) and another's."""
    url = f"sqlite:///{tmp_path / 'documents.sqlite'}"
    now = datetime.now(UTC).replace(microsecond=0)

    async def fill() -> None:
        store = open_document_store(url)
        try:
            for record in (
                result(2, "inventory", now - timedelta(minutes=3)),
                result(3, "payment", now - timedelta(minutes=2)),
                result(1, "postgres", now - timedelta(minutes=1)),
            ):
                await store.upsert("rca_results", record.id, record.document())
            other = result(9, "catalog", now).model_copy(update={"incident_id": "inc-other", "id": "rca-other"})
            await store.upsert("rca_results", other.id, other.document())
        finally:
            await store.close()

    asyncio.run(fill())
    return {"AIOPS_DATA_DIR": str(tmp_path), "AIOPS_DOCUMENTS_URL": url, "AIOPS_BROKER_URL": ""}


@pytest.mark.functional
def test_show_prints_the_latest_revision_s_ranking(documents: dict[str, str]) -> None:
    code, out = rca("show", INCIDENT, env=documents)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"{INCIDENT} revision 3, analysed ")
    assert lines[1].split() == ["RANK", "SERVICE", "P(CAUSE)", "KIND", "RULE"]
    assert lines[2].split() == ["1", "payment", "0.820", "deployment", "deployment_before_onset"]
    assert lines[3].strip() == "+ deployment v2.4.1 150 s before onset"
    assert "(1 more; --json shows all)" in out and "moved 10 s before checkout" not in out
    assert "      - explained by payment" in lines
    assert "onset: 2026-03-12T14:20:03Z" in lines and "status: ok" in lines
    assert "summary: payment is the most probable cause" in lines

    code, out = rca("show", INCIDENT, "--json", env=documents)
    assert code == 0, out
    stored = RcaResult.model_validate(json.loads(out))
    assert stored.incident_revision == 3 and stored.top is not None and stored.top.service == "payment"
    assert len(stored.top.evidence) == 4

    code, out = rca("show", INCIDENT, "--evidence", "0", env=documents)
    assert code == 0 and "deployment v2.4.1" not in out and "more;" not in out


@pytest.mark.functional
def test_show_of_an_incident_with_no_result_exits_1(documents: dict[str, str]) -> None:
    code, out = rca("show", "inc-nope", env=documents)
    assert code == 1
    assert out.startswith("error: no RCA result for incident 'inc-nope' in sqlite:///")
    assert len(out.strip().splitlines()) == 1


@pytest.mark.functional
def test_an_unreachable_document_store_is_one_line(tmp_path: Path) -> None:
    for url, says in [
        ("elasticsearch://127.0.0.1:1", "ConnectionError: "),
        ("nosuch://x", "UnknownBackendError: no document store backend for URL scheme 'nosuch'"),
    ]:
        code, out = rca("show", INCIDENT, env={"AIOPS_DATA_DIR": str(tmp_path), "AIOPS_DOCUMENTS_URL": url})
        assert code == 1 and out.startswith(f"error: document store {url}: {says}"), out
        assert len(out.strip().splitlines()) == 1


# confirm / reject: labels on the feedback topic


@pytest.mark.functional
def test_confirm_and_reject_publish_cause_labels(documents: dict[str, str], broker_url: str, topic_prefix: str) -> None:
    asyncio.run(ensure_topics(broker_url, topic_prefix))
    env = {**documents, "AIOPS_BROKER_URL": broker_url, "AIOPS_TOPIC_PREFIX": topic_prefix}
    code, out = rca("confirm", INCIDENT, "payment", "--by", "alice", "--note", "rolled back v2.4.1", env=env)
    assert code == 0, out
    assert out.startswith(f"payment confirmed as the cause of {INCIDENT} by alice (fb-")
    code, out = rca("reject", INCIDENT, "checkout", "--by", "bob", env=env)
    assert code == 0, out
    assert out.startswith(f"checkout rejected as the cause of {INCIDENT} by bob")
    # --force: a service neither the incident nor its analyses name.
    code, out = rca("reject", "inc-unknown", "ghost", "--by", "carol", "--force", env=env)
    assert code == 0, out

    values = asyncio.run(
        read_values(broker_url, Topics.FEEDBACK, topic_prefix, until=lambda v: len(v) >= 3, timeout_s=scaled(30))
    )
    records = sorted((FeedbackRecord.decode(v) for v in values), key=lambda r: r.at)
    assert [(r.subject_kind, r.subject_id, r.related_id, r.label, r.by) for r in records] == [
        ("incident", INCIDENT, "payment", FeedbackLabel.CONFIRMED_CAUSE, "alice"),
        ("incident", INCIDENT, "checkout", FeedbackLabel.WRONG_CAUSE, "bob"),
        ("incident", "inc-unknown", "ghost", FeedbackLabel.WRONG_CAUSE, "carol"),
    ]
    assert records[0].note == "rolled back v2.4.1" and records[1].note == ""


@pytest.mark.functional
def test_confirm_refuses_what_the_store_does_not_know(documents: dict[str, str]) -> None:
    checks: list[tuple[list[str], int, str]] = [
        (["confirm", "inc-nope", "payment"], 1, "error: no incident 'inc-nope' in sqlite:///"),
        (["confirm", INCIDENT, "paymnet"], 1, "error: 'paymnet' is not a service of incident inc-7f3a or of its"),
        (["reject", INCIDENT, " "], 2, "error: the service is empty"),
        # Known, but no platform to send it to.
        (["confirm", INCIDENT, "payment"], 1, "error: no platform is running"),
    ]
    for args, code, says in checks:
        done, out = rca(*args, env=documents)
        assert done == code and out.startswith(says), (args, out)
        assert "Traceback" not in out
    # The services an incident record names count too, beside its analyses'.
    body: dict[str, Any] = {"id": "inc-rec", "started_at": ONSET.isoformat(), "services": ["search"]}

    async def add() -> None:
        store = open_document_store(documents["AIOPS_DOCUMENTS_URL"])
        try:
            await store.upsert("incidents", "inc-rec", body)
        finally:
            await store.close()

    asyncio.run(add())
    done, out = rca("confirm", "inc-rec", "search", env=documents)
    assert done == 1 and out.startswith("error: no platform is running"), out
