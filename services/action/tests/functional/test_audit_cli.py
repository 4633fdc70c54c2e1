"""``aiops audit verify/show`` on a real SQLite document store: an intact chain exits 0 with its head, a tampered one
exits 1 naming the damage, and bad input or an unreachable store is one line."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_action.commands.audit import group
from aiops_common.audit import AuditLog, audit_doc_id
from aiops_common.documents import open_document_store
from typer.testing import CliRunner, Result

pytestmark = pytest.mark.functional

runner = CliRunner()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def aiops_audit(*args: str) -> Result:
    return runner.invoke(group, list(args))


@pytest.fixture
def documents_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'documents.sqlite'}"
    monkeypatch.setenv("AIOPS_DOCUMENTS_URL", url)
    return url


def fill(url: str, count: int) -> None:
    async def run() -> None:
        store = open_document_store(url)
        try:
            log = AuditLog(store)
            for n in range(1, count + 1):
                subject = "inc-7" if n % 2 else "inc-8"
                await log.append(
                    "alice",
                    "incident.acknowledge",
                    subject,
                    f"entry {n}\nsecond line",
                    ["payment"],
                    {"n": n},
                    T0 + timedelta(minutes=n),
                )
        finally:
            await store.close()

    asyncio.run(run())


def edit(url: str, seq: int, **changes: str) -> None:
    async def run() -> None:
        store = open_document_store(url)
        try:
            found = await store.get("audit", audit_doc_id(seq))
            assert found is not None
            await store.upsert("audit", found.id, {**found.body, **changes})
        finally:
            await store.close()

    asyncio.run(run())


def test_verify_prints_the_head_of_an_intact_chain_and_names_an_edit(documents_url: str) -> None:
    empty = aiops_audit("verify")
    assert empty.exit_code == 0 and "0 entries, chain intact, no entries yet" in empty.stdout

    fill(documents_url, 6)
    intact = aiops_audit("verify", "--json")
    assert intact.exit_code == 0, intact.output
    report = json.loads(intact.stdout)
    assert (report["entries"], report["intact"], report["problems"]) == (6, True, [])
    head = f"{report['head']['seq']}:{report['head']['hash']}"
    plain = aiops_audit("verify", "--head", head)
    assert plain.exit_code == 0
    assert plain.stdout.strip() == f"6 entries, chain intact, head 6 {report['head']['hash']}"

    edit(documents_url, 3, actor="mallory")
    damaged = aiops_audit("verify", "--head", head)
    assert damaged.exit_code == 1
    assert "edited at entry 3" in damaged.stdout and "chain damaged" in damaged.stdout
    as_json = json.loads(aiops_audit("verify", "--json").stdout)
    assert as_json["intact"] is False and [(p["kind"], p["seq"]) for p in as_json["problems"]] == [("edited", 3)]

    beyond = aiops_audit("verify", "--head", f"9:{report['head']['hash']}")
    assert beyond.exit_code == 1 and "truncated at entry 7" in beyond.stdout


def test_show_lists_recent_entries_newest_first_one_line_each(documents_url: str) -> None:
    assert "no audit entries about inc-7" in aiops_audit("show", "--subject", "inc-7").stdout
    fill(documents_url, 5)
    shown = aiops_audit("show", "--limit", "2")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert len(lines) == 3 and lines[0].split()[:2] == ["SEQ", "AT"]
    assert lines[1].split()[0] == "5" and lines[1].endswith("entry 5 second line")
    assert lines[2].split()[0] == "4"
    about = json.loads(aiops_audit("show", "--subject", "inc-8", "--json").stdout)
    assert [e["seq"] for e in about] == [4, 2] and all(e["subject_id"] == "inc-8" for e in about)


def test_bad_input_and_an_unreachable_store_are_one_line(
    documents_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = aiops_audit("verify", "--head", "12:nothex")
    assert bad.exit_code == 2 and "not a head SEQ:HASH" in bad.stderr
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("AIOPS_DOCUMENTS_URL", f"sqlite:///{tmp_path / 'file' / 'documents.sqlite'}")
    down = aiops_audit("verify")
    assert down.exit_code == 1 and down.stderr.startswith("error: the document store sqlite:///")
    assert "Traceback" not in down.output
