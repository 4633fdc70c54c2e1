"""The model registry protocol every backend implements, and the version metadata it keeps."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = ["ModelArtifact", "ModelNotFoundError", "ModelRegistry", "ModelVersion", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ModelNotFoundError(LookupError):
    """No such model, or no such version of it."""


def check_name(name: str) -> str:
    """Model names become paths and object keys: letters, digits, ``.``, ``_`` and ``-`` only."""
    if not _NAME.match(name):
        raise ValueError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """What the registry knows about one stored version, without its bytes."""

    name: str
    version: int
    """1, 2, ...: assigned by the registry on ``put``, never reused."""
    created_at: datetime
    training_start_ms: int | None = None
    training_end_ms: int | None = None
    """Event-time range of the history it was trained on."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    """Hyperparameters and anything else needed to use it (JSON-compatible values)."""
    size: int = 0
    """Bytes of the artifact."""


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    meta: ModelVersion
    data: bytes


@runtime_checkable
class ModelRegistry(Protocol):
    """Versioned model artifacts by name.

    A version is written whole or not at all: a reader never sees a partial one, and
    two writers putting the same name get different version numbers.
    """

    url: str

    async def put(
        self,
        name: str,
        data: bytes,
        *,
        training_start_ms: int | None = None,
        training_end_ms: int | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Store ``data`` as the next version of ``name``."""

    async def get(self, name: str, version: int | None = None) -> ModelArtifact:
        """One version (the latest when ``version`` is None), with its bytes; ``ModelNotFoundError`` if absent."""

    async def latest(self, name: str) -> ModelVersion | None:
        """Metadata of the newest version, None when there is none: cheap enough to poll."""

    async def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""

    async def names(self) -> list[str]:
        """Sorted names of the models that have at least one version."""

    async def close(self) -> None: ...
