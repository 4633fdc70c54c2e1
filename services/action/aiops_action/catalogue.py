"""The runbooks a worker loaded, written to the document store (collection ``runbooks``) for the API and the UI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiops_common.documents import DocumentStore

from aiops_action.runbooks.model import Runbook, StepSpec

__all__ = ["COLLECTION", "publish_catalogue", "runbook_document"]

COLLECTION = "runbooks"


def _steps(steps: Sequence[StepSpec]) -> list[dict[str, str]]:
    return [{"name": s.name, "kind": s.kind.value, "action": s.action} for s in steps]


def runbook_document(runbook: Runbook, loaded_at: datetime) -> dict[str, Any]:
    verify = runbook.verify
    return {
        "id": runbook.id,
        "version": runbook.version,
        "title": runbook.title,
        "description": runbook.description,
        "risk": runbook.risk.value,
        "match": runbook.describe_match(),
        "parameters": {
            name: {
                "type": p.type.value,
                "source": p.source or "",
                "default": p.default,
                "description": p.description,
            }
            for name, p in runbook.parameters.items()
        },
        "steps": _steps(runbook.steps),
        "rollback": _steps(runbook.rollback),
        "verify": {
            "series": verify.series,
            "match": {k: v if isinstance(v, str) else f"{{param: {v.param}}}" for k, v in verify.match.items()},
            "lower": verify.lower,
            "upper": verify.upper,
            "within_s": verify.within_s,
            "for_s": verify.for_s,
        },
        "loaded_at": loaded_at.isoformat(),
    }


async def publish_catalogue(documents: DocumentStore, runbooks: Sequence[Runbook], loaded_at: datetime) -> int:
    """Write every runbook's document (a runbook removed from the folder keeps its last document: executions
    still name it)."""
    return await documents.upsert_many(COLLECTION, [(r.id, runbook_document(r, loaded_at)) for r in runbooks])
