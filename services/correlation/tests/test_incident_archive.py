"""The incident archive keeps the newest revision of each incident, whatever order revisions come in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiops_common.documents import open_document_store
from aiops_common.schemas import (
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    MemberKind,
    SchemaError,
)
from aiops_correlation.agents.incident_archive import archive_bodies, read_body

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def body(incident_id: str, revision: int, members: int) -> dict[str, Any]:
    record = IncidentRecord(
        id=incident_id,
        revision=revision,
        title=f"revision {revision}",
        severity=IncidentSeverity.MAJOR,
        services=["payment"],
        started_at=T0,
        updated_at=T0,
        members=[
            IncidentMember(
                fingerprint=f"fp-{n}",
                kind=MemberKind.ALERT,
                name="HighLatency",
                service="payment",
                started_at=T0,
                reason=JoinReason(rule="seed" if n == 0 else "same_service"),
                joined_at=T0,
            )
            for n in range(members)
        ],
    )
    return read_body(record.encode())


@pytest.mark.functional
async def test_only_revisions_newer_than_the_stored_one_are_written(tmp_path: Path) -> None:
    store = open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    try:
        # A batch with the revisions out of order, and one incident twice: the newest of each is written.
        written = await archive_bodies(store, [body("inc-a", 2, 2), body("inc-a", 1, 1), body("inc-b", 1, 1)])
        assert written == 2
        # A restarted builder replays: older and equal revisions change nothing.
        assert await archive_bodies(store, [body("inc-a", 1, 1), body("inc-a", 2, 2)]) == 0
        assert await archive_bodies(store, [body("inc-a", 3, 3)]) == 1
        stored = await store.get("incidents", "inc-a")
        assert stored is not None and stored.body["revision"] == 3 and len(stored.body["members"]) == 3
        assert IncidentRecord.from_document(stored.body).title == "revision 3"
    finally:
        await store.close()


@pytest.mark.unit
def test_a_record_without_id_or_revision_is_refused() -> None:
    value = msgpack.packb({"schema": "incidents.incident", "v": 1, "body": {"title": "x"}})
    with pytest.raises(SchemaError, match="no id or revision"):
        read_body(value)
    with pytest.raises(SchemaError):
        read_body(b"\x00")
