"""Versioned configuration in the document store: the current version of a kind, its history, and the next one."""

from __future__ import annotations

from datetime import UTC, datetime

from aiops_common.documents import DocumentStore, VersionConflictError
from aiops_common.documents.config_versions import (
    CONFIG_COLLECTION,
    DETECTION,
    detection_config_version,
    newest_detection_config,
)
from aiops_common.schemas.config import DetectionConfig, DetectionConfigVersion, config_doc_id

__all__ = [
    "ConfigConflictError",
    "detection_versions",
    "diff_summary",
    "write_detection",
]


class ConfigConflictError(Exception):
    """The write was based on a version that is no longer the current one; read again and reapply."""

    def __init__(self, message: str, current: int) -> None:
        super().__init__(message)
        self.message = message
        self.current = current


async def detection_versions(store: DocumentStore, limit: int) -> list[DetectionConfigVersion]:
    """Up to ``limit`` versions, newest first."""
    current = await newest_detection_config(store)
    if current is None:
        return []
    out = [current]
    for version in range(current.version - 1, max(0, current.version - limit), -1):
        found = await detection_config_version(store, version)
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
    previous = await newest_detection_config(store)
    current = 0 if previous is None else previous.version
    if expected_version is not None and expected_version != current:
        raise ConfigConflictError(
            f"the change was based on version {expected_version} but version {current} is current;"
            " read it and apply the change again",
            current,
        )
    made = DetectionConfigVersion(
        kind=DETECTION, version=current + 1, at=datetime.now(UTC), by=by, note=note, config=config
    )
    try:
        await store.upsert(CONFIG_COLLECTION, config_doc_id(DETECTION, made.version), made.model_dump(mode="json"), 0)
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
