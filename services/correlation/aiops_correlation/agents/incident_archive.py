"""Agent: ``incidents`` -> the document store's ``incidents`` collection, the newest revision of each incident.

The builder publishes at least once, so a revision may come again, or an older one after a newer
one (a restarted builder replays from its checkpoint): a revision not above the stored one is
skipped. Records are taken in batches of up to a second and only the last revision of each
incident in a batch is written, all in one ``upsert_many``, so a storm that revises one incident
a hundred times costs one write. The store is not on the path to ``incidents``, so the second
of delay costs no one latency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import faust
from aiops_common.agent_loop import WriteRetry, install_store_agent
from aiops_common.documents import DocumentStore, VersionConflictError
from aiops_common.schemas import IncidentRecord, SchemaError, decode_envelope
from aiops_common.topics import Topics, declare

from aiops_correlation.settings import CorrelationSettings

__all__ = ["install", "newest", "read_body"]

T = TypeVar("T")

_BATCH = 5000
_WITHIN_S = 1.0
_RETRIES_S = (0.5, 1.0, 2.0, 4.0, 8.0)
_CONFLICT_TRIES = 10


def read_body(value: bytes) -> dict[str, Any]:
    """The incident's body as published, checked only for what archiving needs (the builder made it).

    A full validation of an incident with thousands of members costs more than writing it.
    """
    _, body = decode_envelope(value, IncidentRecord.schema_name, (IncidentRecord.schema_version,))
    if not isinstance(body.get("id"), str) or not isinstance(body.get("revision"), int):
        raise SchemaError(f"malformed {IncidentRecord.schema_name}: no id or revision")
    return body


def newest(items: Iterable[T], id_of: Callable[[T], str], revision_of: Callable[[T], int]) -> list[T]:
    """The highest revision of each incident, in the order incidents first appear."""
    best: dict[str, T] = {}
    for item in items:
        kept = best.get(id_of(item))
        if kept is None or revision_of(item) > revision_of(kept):
            best[id_of(item)] = item
    return list(best.values())


async def archive_bodies(store: DocumentStore, bodies: list[dict[str, Any]]) -> int:
    """Write the newest revision of each incident that is newer than the stored one; how many were written.

    Each write names the version it read, so a field another service set meanwhile (RCA's ``rca``, written
    against the version it read too) is never overwritten: on a conflict the incident is read again and its
    ``rca`` carried over into the new revision.
    """
    written = 0
    for body in newest(bodies, lambda b: str(b["id"]), lambda b: int(b["revision"])):
        for _ in range(_CONFLICT_TRIES):
            stored = await store.get("incidents", body["id"])
            if stored is not None and int(stored.body.get("revision", 0)) >= body["revision"]:
                break
            merged = body
            if stored is not None and "rca" in stored.body:  # the RCA service's analysis stays on the incident
                merged = {**body, "rca": stored.body["rca"]}
            try:
                await store.upsert("incidents", body["id"], merged, expected_version=stored.version if stored else 0)
            except VersionConflictError:
                continue  # RCA (or another archive) wrote it since it was read: read it again
            written += 1
            break
        else:
            raise VersionConflictError("incidents", body["id"], -1, -1)
    return written


def install(app: faust.App, settings: CorrelationSettings, store: DocumentStore) -> None:
    source = declare(app, Topics.INCIDENTS, settings.topic_prefix)

    async def write(bodies: list[dict[str, Any]]) -> None:
        await archive_bodies(store, bodies)

    # A batch's offsets wait for its write (or for its messages counted as dropped): a worker stopped while the
    # store is down reads the batch again, where Faust's plain take acknowledged it on the way out.
    retry = WriteRetry(delays=_RETRIES_S, message="document store unavailable; retrying")
    install_store_agent(app, source, "incident_archive", read_body, write, _BATCH, _WITHIN_S, retry)
