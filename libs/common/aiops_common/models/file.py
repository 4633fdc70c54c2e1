"""The model registry in a folder (``file:///path``): one directory per version, renamed into place."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aiops_common.models._protocol import ModelArtifact, ModelNotFoundError, ModelVersion, check_name

__all__ = ["FileModelRegistry", "path_from_url"]

_ARTIFACT = "artifact.bin"
_META = "meta.json"
_PREFIX = "v"


def path_from_url(url: str) -> Path:
    """``file:///absolute/folder`` or ``file://./relative/folder``."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise ValueError(f"not a file URL: {url!r}")
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise ValueError(f"file URL needs a folder: {url!r}")
    return Path(path)


def _dir_name(version: int) -> str:
    return f"{_PREFIX}{version:06d}"


def _version_of(entry: str) -> int | None:
    if not entry.startswith(_PREFIX) or not entry[len(_PREFIX) :].isdigit():
        return None
    return int(entry[len(_PREFIX) :])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileModelRegistry:
    """A :class:`~aiops_common.models.ModelRegistry` in ``<root>/<name>/v000001/{artifact.bin,meta.json}``.

    A version is written into a hidden temporary folder, flushed to disk, then renamed
    to its version number. Renaming a folder onto an existing one fails, so two
    writers racing for the same number end up with consecutive ones, and a reader
    listing the folder sees whole versions only.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.root = path_from_url(url)

    # -- sync implementation, run in a thread by the async protocol methods ------------------------------

    def _model_dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def _numbers(self, name: str) -> list[int]:
        folder = self._model_dir(name)
        if not folder.is_dir():
            return []
        return sorted(v for entry in os.listdir(folder) if (v := _version_of(entry)) is not None)

    def _read_meta(self, name: str, version: int) -> ModelVersion:
        path = self._model_dir(name) / _dir_name(version) / _META
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelNotFoundError(f"model {name!r} has no version {version}") from None
        return ModelVersion(
            name=raw["name"],
            version=int(raw["version"]),
            created_at=datetime.fromisoformat(raw["created_at"]),
            training_start_ms=raw.get("training_start_ms"),
            training_end_ms=raw.get("training_end_ms"),
            metrics={str(k): float(v) for k, v in raw.get("metrics", {}).items()},
            params=dict(raw.get("params", {})),
            size=int(raw.get("size", 0)),
        )

    def put_sync(
        self,
        name: str,
        data: bytes,
        *,
        training_start_ms: int | None = None,
        training_end_ms: int | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        folder = self._model_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            with (tmp / _ARTIFACT).open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            numbers = self._numbers(name)
            version = (numbers[-1] if numbers else 0) + 1
            while True:
                meta = ModelVersion(
                    name=name,
                    version=version,
                    created_at=datetime.now(UTC),
                    training_start_ms=training_start_ms,
                    training_end_ms=training_end_ms,
                    metrics=dict(metrics or {}),
                    params=dict(params or {}),
                    size=len(data),
                )
                with (tmp / _META).open("w") as out:
                    json.dump(_meta_json(meta), out, sort_keys=True)
                    out.flush()
                    os.fsync(out.fileno())
                try:
                    os.rename(tmp, folder / _dir_name(version))
                except OSError:
                    if not (folder / _dir_name(version)).exists():
                        raise
                    version += 1  # another writer took this number first
                    continue
                _fsync_dir(folder)
                return meta
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def get_sync(self, name: str, version: int | None = None) -> ModelArtifact:
        if version is None:
            numbers = self._numbers(name)
            if not numbers:
                raise ModelNotFoundError(f"no model named {name!r} in {self.url}")
            version = numbers[-1]
        meta = self._read_meta(name, version)
        data = (self._model_dir(name) / _dir_name(version) / _ARTIFACT).read_bytes()
        return ModelArtifact(meta, data)

    def latest_sync(self, name: str) -> ModelVersion | None:
        numbers = self._numbers(name)
        return self._read_meta(name, numbers[-1]) if numbers else None

    def versions_sync(self, name: str) -> list[ModelVersion]:
        return [self._read_meta(name, v) for v in self._numbers(name)]

    def names_sync(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in self.root.iterdir() if entry.is_dir() and self._numbers(entry.name))

    # -- the protocol ------------------------------------------------------------------------------------

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
        return await asyncio.to_thread(
            self.put_sync,
            name,
            data,
            training_start_ms=training_start_ms,
            training_end_ms=training_end_ms,
            metrics=metrics,
            params=params,
        )

    async def get(self, name: str, version: int | None = None) -> ModelArtifact:
        return await asyncio.to_thread(self.get_sync, name, version)

    async def latest(self, name: str) -> ModelVersion | None:
        return await asyncio.to_thread(self.latest_sync, name)

    async def versions(self, name: str) -> list[ModelVersion]:
        return await asyncio.to_thread(self.versions_sync, name)

    async def names(self) -> list[str]:
        return await asyncio.to_thread(self.names_sync)

    async def close(self) -> None:
        """Nothing is held open between calls."""


def _meta_json(meta: ModelVersion) -> dict[str, Any]:
    return {
        "name": meta.name,
        "version": meta.version,
        "created_at": meta.created_at.isoformat(),
        "training_start_ms": meta.training_start_ms,
        "training_end_ms": meta.training_end_ms,
        "metrics": dict(meta.metrics),
        "params": dict(meta.params),
        "size": meta.size,
    }
