"""One contract for every reachable model registry backend (``file://`` always)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiops_common.models import MODEL_BACKENDS, ModelNotFoundError, ModelRegistry, open_model_registry

pytestmark = pytest.mark.functional


@pytest.fixture(params=["file"])
async def registry(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ModelRegistry]:
    url = f"file://{tmp_path / 'models'}"
    reg = open_model_registry(url)
    yield reg
    await reg.close()


def test_every_scheme_is_covered() -> None:
    assert MODEL_BACKENDS.schemes == ["file"], "add the new backend to the registry fixture's params"


async def test_put_get_latest_and_list(registry: ModelRegistry) -> None:
    assert isinstance(registry, ModelRegistry)
    assert await registry.latest("cascade-60s") is None
    assert await registry.names() == []
    first = await registry.put(
        "cascade-60s",
        b"\x00one",
        training_start_ms=1_000,
        training_end_ms=2_000,
        metrics={"series": 3.0},
        params={"window_s": 60, "periods": [24, 168]},
    )
    second = await registry.put("cascade-60s", b"two")
    await registry.put("other", b"x")
    assert (first.version, second.version) == (1, 2)
    assert first.size == 4 and first.training_end_ms == 2_000
    assert dict(first.metrics) == {"series": 3.0}
    assert dict(first.params) == {"window_s": 60, "periods": [24, 168]}
    latest = await registry.latest("cascade-60s")
    assert latest is not None and latest.version == 2
    assert (await registry.get("cascade-60s")).data == b"two"
    old = await registry.get("cascade-60s", 1)
    assert old.data == b"\x00one" and old.meta == first
    assert [v.version for v in await registry.versions("cascade-60s")] == [1, 2]
    assert await registry.names() == ["cascade-60s", "other"]
    assert second.created_at >= first.created_at


async def test_missing_models_and_versions(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError):
        await registry.get("nothing")
    await registry.put("m", b"1")
    with pytest.raises(ModelNotFoundError):
        await registry.get("m", 7)
    with pytest.raises(ValueError):
        await registry.put("../escape", b"x")


async def test_concurrent_writers_get_distinct_versions(registry: ModelRegistry) -> None:
    payloads = [os.urandom(64) for _ in range(8)]
    metas = await asyncio.gather(*(registry.put("race", p) for p in payloads))
    assert sorted(m.version for m in metas) == list(range(1, 9))
    for meta, payload in zip(metas, payloads, strict=True):
        assert (await registry.get("race", meta.version)).data == payload


async def test_a_failed_write_leaves_no_version(tmp_path: Path) -> None:
    from aiops_common.models.file import FileModelRegistry

    reg = FileModelRegistry(f"file://{tmp_path}")
    await reg.put("m", b"ok")
    with pytest.raises(TypeError):
        await reg.put("m", b"bad", params={"not json": object()})
    assert [v.version for v in await reg.versions("m")] == [1]
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["v000001"]
