"""The checkpoint tables' stores: one contract for Faust's ``memory://`` and the ``disk://`` store, plus what is
particular to the disk store (its file is nobody else's and leaves nothing behind)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiops_common.faust_app import create_app
from aiops_common.settings import CommonSettings
from aiops_common.table_store import DiskMap, DiskStore
from faust import stores
from faust.types import TP
from pydantic import ValidationError

from ..conftest import RecordingStage

pytestmark = pytest.mark.unit

STORES = ["memory://", "disk://"]


@pytest.fixture
def app(tmp_path: Path) -> faust.App:
    return create_app("store-test", CommonSettings(data_dir=tmp_path), "kafka://127.0.0.1:9")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, app: faust.App, tmp_path: Path) -> Iterator[Any]:
    url = f"disk://{tmp_path / 'tables'}" if request.param == "disk://" else request.param
    table = app.Table(f"t-{request.param[:4]}", key_type=bytes, value_type=bytes, partitions=4, store=url)
    yield table.data


def _event(key: bytes, value: bytes | None, partition: int) -> SimpleNamespace:
    """A changelog record as Faust hands it to ``apply_changelog_batch`` (``None``: the key's deletion)."""
    return SimpleNamespace(key=key, value=value, message=SimpleNamespace(key=key, value=value, partition=partition))


def _open_files() -> list[str]:
    """What this process's file descriptors point at (the listing's own descriptor is gone by the time it is read)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    return targets


def test_a_store_keeps_sets_replacements_and_deletions(store: Any) -> None:
    assert len(store) == 0 and store.get(b"a") is None and b"a" not in store
    store[b"a"] = b"1"
    store[b"b"] = b"2" * 5000  # larger than a page
    store[b"a"] = b"3"
    assert store[b"a"] == b"3" and store[b"b"] == b"2" * 5000
    assert b"a" in store and b"c" not in store
    assert sorted(store) == [b"a", b"b"] and len(store) == 2
    del store[b"a"]
    assert b"a" not in store and store.get(b"a") is None and len(store) == 1
    with pytest.raises(KeyError):
        del store[b"a"]
    with pytest.raises(KeyError):
        store[b"a"]


def test_a_store_applies_a_changelog_batch_with_deletions_and_keeps_only_the_active_partitions(store: Any) -> None:
    store.apply_changelog_batch(
        [
            _event(b"s/1", b"one", 0),
            _event(b"s/2", b"two", 1),
            _event(b"s/3", b"three", 2),
            _event(b"s/2", None, 1),  # deleted
            _event(b"s/4", None, 3),
            _event(b"s/4", b"four", 3),  # deleted, then set again: kept
        ],
        to_key=lambda k: k,
        to_value=lambda v: v,
    )
    assert dict(store.items()) == {b"s/1": b"one", b"s/3": b"three", b"s/4": b"four"}

    asyncio.run(store.on_recovery_completed({TP("t", 0), TP("t", 3)}, set()))
    assert dict(store.items()) == {b"s/1": b"one", b"s/4": b"four"}  # partition 2 went to another worker
    assert store.persisted_offset(TP("t", 0)) is None  # both rebuild from the changelog on start


def test_the_checkpoint_tables_go_to_the_disk_store_by_default_and_to_memory_when_set(tmp_path: Path) -> None:
    app = create_app("store-default", CommonSettings(data_dir=tmp_path), "kafka://127.0.0.1:9")
    stage = RecordingStage(app, "store-default-in", {})  # a replaying stage makes its table itself
    assert isinstance(stage.table.data, DiskStore)
    assert Path(stage.table.data.url.path) == Path(app.conf.tabledir).resolve()
    assert stores.by_url("disk://") is DiskStore  # the entry point Faust finds it by

    in_memory = create_app(
        "store-memory", CommonSettings(data_dir=tmp_path, checkpoint_store_url="memory://"), "kafka://127.0.0.1:9"
    )
    stage = RecordingStage(in_memory, "store-memory-in", {})
    assert type(stage.table.data) is stores.by_url("memory://")


def test_an_unknown_checkpoint_store_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="disk://"):
        CommonSettings(data_dir=tmp_path, checkpoint_store_url="rocksdb://")  # type: ignore[arg-type]


def test_a_disk_maps_file_is_its_own_and_gone_from_the_folder_once_open(tmp_path: Path) -> None:
    first, second = DiskMap(tmp_path, "t"), DiskMap(tmp_path, "t")
    assert os.listdir(tmp_path) == []  # unlinked: a SIGKILL leaves nothing, and no other map can open it
    first[b"k"] = b"first"
    second[b"k"] = b"second"
    assert first[b"k"] == b"first" and second[b"k"] == b"second"
    assert sum(str(tmp_path) in target and target.endswith("(deleted)") for target in _open_files()) == 2
    first.close()
    second.close()


def test_a_disk_map_refuses_what_is_not_bytes(tmp_path: Path) -> None:
    entries = DiskMap(tmp_path, "t")
    with pytest.raises(TypeError, match="bytes keys"):
        entries["text"] = b"v"  # type: ignore[index]
    with pytest.raises(TypeError, match="bytes values"):
        entries[b"k"] = "text"  # type: ignore[assignment]
    assert "text" not in entries and len(entries) == 0
    entries[b"k"] = None  # a deletion being applied
    assert entries[b"k"] is None and b"k" in entries
    entries.clear()
    assert len(entries) == 0
