"""Versioned configuration in the document store: the current version of a kind, its history, and the next one."""

from __future__ import annotations

from datetime import UTC, datetime

from aiops_common.documents import DocumentFilter, DocumentStore, VersionConflictError
from aiops_common.schemas.config import DetectionConfig, DetectionConfigVersion, config_doc_id

__all__ = [
    "COLLECTION",
    "ConfigConflictError",
    "current_detection",
    "detection_version",
    "detection_versions",
    "diff_summary",
    "write_detection",
]

COLLECTION = "config"
KIND = "detection"


class ConfigConflictError(Exception):
    """The write was based on a version that is no longer the current one; read again and reapply."""

    def __init__(self, message: str, current: int) -> None:
        super().__init__(message)
        self.message = message
        self.current = current


def _where(kind: str) -> DocumentFilter:
    return DocumentFilter(terms=(("kind", kind),))


async def detection_version(store: DocumentStore, version: int) -> DetectionConfigVersion | None:
    if version < 1:
        return None
    found = await store.get(COLLECTION, config_doc_id(KIND, version))
    return None if found is None else DetectionConfigVersion.model_validate(found.body)


async def current_detection(store: DocumentStore) -> DetectionConfigVersion | None:
    """The newest version, or None when none was ever written.

    The newest by time is only a starting point: versions are numbered without gaps (each is written only if
    its id is new), so probing the ids after it finds the newest even when writers' clocks disagree.
    """
    page = await store.query(COLLECTION, _where(KIND), limit=1)
    if not page.documents:
        return None
    newest = DetectionConfigVersion.model_validate(page.documents[0].body)
    while (later := await detection_version(store, newest.version + 1)) is not None:
        newest = later
    return newest


async def detection_versions(store: DocumentStore, limit: int) -> list[DetectionConfigVersion]:
    """Up to ``limit`` versions, newest first."""
    current = await current_detection(store)
    if current is None:
        return []
    out = [current]
    for version in range(current.version - 1, max(0, current.version - limit), -1):
        found = await detection_version(store, version)
        if found is not None:
            out.append(found)
    return out


async def write_detection(
    store: DocumentStore, config: DetectionConfig, by: str, note: str, expected_version: int | None
) -> tuple[DetectionConfigVersion, DetectionConfigVersion | None]:
    """Store ``config`` as the next version; the new version and the one it replaced.

    ``expected_version``: the version the caller based the change on (0: none yet); another one current raises
    :class:`ConfigConflictError`, and so does a concurrent writer that took the same version number first.
    """
    previous = await current_detection(store)
    current = 0 if previous is None else previous.version
    if expected_version is not None and expected_version != current:
        raise ConfigConflictError(
            f"the change was based on version {expected_version} but version {current} is current;"
            " read it and apply the change again",
            current,
        )
    made = DetectionConfigVersion(kind=KIND, version=current + 1, at=datetime.now(UTC), by=by, note=note, config=config)
    try:
        await store.upsert(COLLECTION, config_doc_id(KIND, made.version), made.model_dump(mode="json"), 0)
    except VersionConflictError:
        raise ConfigConflictError(
            f"another change made version {made.version} at the same time; read it and apply the change again",
            made.version,
        ) from None
    return made, previous


def _number(value: float | None) -> str:
    return "unset" if value is None else f"{value:g}"


def _levels(severities: tuple[float, float, float] | None) -> str:
    return "unset" if severities is None else "/".join(f"{x:g}" for x in severities)


def diff_summary(before: DetectionConfig | None, after: DetectionConfig) -> str:
    """What changed, in a line: ``flag_score 0.1 -> 0.3; static_rules +1 -0``."""
    old = before or DetectionConfig()
    parts: list[str] = []
    for name in ("flag_score", "confirm_score"):
        a, b = getattr(old, name), getattr(after, name)
        if a != b:
            parts.append(f"{name} {_number(a)} -> {_number(b)}")
    if old.severities != after.severities:
        parts.append(f"severities {_levels(old.severities)} -> {_levels(after.severities)}")
    for name in ("static_rules", "sensitivity"):
        a_set, b_set = set(getattr(old, name)), set(getattr(after, name))
        if a_set != b_set:
            parts.append(f"{name} +{len(b_set - a_set)} -{len(a_set - b_set)}")
    return "; ".join(parts) or "no change"
