"""Operators' detection configuration in a running partition: static rules, gates and sensitivity overrides apply
to series already running (their learned state kept) and to new ones; a store that is down keeps the version in
use; anomalies and predictions are written to the document store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from aiops_common.documents import DocumentFilter, DocumentStore, open_document_store
from aiops_common.documents.config_versions import newest_detection_config
from aiops_common.feedback import Sensitivity, open_feedback_store
from aiops_common.models import open_model_registry
from aiops_common.schemas import PredictionRecord, SeriesMeta
from aiops_common.schemas.config import DetectionConfig, DetectionConfigVersion, config_doc_id
from aiops_common.schemas.metrics import series_key
from aiops_common.testing.records import crossing_prediction, service_anomaly
from aiops_detection.agents.anomaly_archive import write_documents
from aiops_detection.agents.anomaly_detector import AnomalyPartition
from aiops_detection.agents.config_updates import (
    ConfigBook,
    labels_of_key,
)
from aiops_detection.agents.model_updates import ModelBook
from aiops_detection.detectors.sensitivity import admits
from aiops_detection.service_settings import DetectionServiceSettings
from prometheus_client import REGISTRY

from .conftest import WINDOW_MS, feed, windows

pytestmark = pytest.mark.functional  # SQLite stores

Settings = Callable[..., DetectionServiceSettings]

API_A = SeriesMeta("temp", {"host": "a", "service": "api"})
DB_B = SeriesMeta("temp", {"host": "b", "service": "db"})
API_C = SeriesMeta("temp", {"host": "c", "service": "api"})
DISK = SeriesMeta("disk_used_percent", {"host": "a", "service": "db"})


async def _set(store: DocumentStore, version: int, config: DetectionConfig, at: datetime | None = None) -> None:
    made = DetectionConfigVersion(version=version, at=at or datetime.now(UTC), by="test", note="", config=config)
    await store.upsert("config", config_doc_id("detection", version), made.model_dump(mode="json"), 0)


def _gauge() -> float | None:
    return REGISTRY.get_sample_value("aiops_detect_config_version")


def _flat(n: int, value: float = 50.0) -> np.ndarray:
    return np.full(n, value)


async def test_static_rules_and_gates_retune_running_and_new_series(service_settings: Settings, tmp_path: Path) -> None:
    settings = service_settings(detect_static_thresholds={"disk_used_percent": (None, 95.0)})
    store = open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    try:
        book = ConfigBook(store, settings)
        part = AnomalyPartition(0, settings, ModelBook(open_model_registry(settings.model_url), settings), book)
        assert await book.poll() is None and book.current.version == 0 and _gauge() == 0

        # No rule yet: 70 during the cold start alerts nowhere; the disk's limit comes from the settings.
        before = _flat(20)
        before[10] = 70.0
        assert feed(part, API_A, before) == [] and feed(part, DB_B, before) == []
        assert windows(feed(part, DISK, np.asarray([96.0]), first=19, step=1)) == [19]

        rules = [
            {"metric": "temp", "upper": 60.0},
            {"metric": "temp", "service": "db", "upper": 80.0},
            {"metric": "disk_used_percent", "upper": 90.0},
        ]
        await _set(store, 1, DetectionConfig.model_validate({"static_rules": rules, "flag_score": 0.2}))
        applied = await book.poll()
        assert applied is not None and applied.version == 1 and _gauge() == 1

        # The next batch: A (every temp series: 60) alerts, B (its service's rule: 80) does not, and the disk
        # alerts at 92, beyond the configuration's 90 though within its settings' 95.
        spike = np.asarray([70.0])
        found_a = feed(part, API_A, spike, first=20, step=1)
        assert windows(found_a) == [20] and found_a[0].finding.detector == "static"
        assert found_a[0].finding.upper == 60.0
        assert feed(part, DB_B, spike, first=20, step=1) == []
        assert windows(feed(part, DISK, np.asarray([92.0]), first=20, step=1)) == [20]
        state_a = part.states[f"{API_A.key}@{WINDOW_MS}"]
        assert state_a.seen == 21  # what it learned is kept
        assert state_a.cascade is not None and state_a.cascade.flag == 0.2
        # A series first seen now is tuned as it enters: its very first window alerts.
        assert windows(feed(part, API_C, spike, first=20, step=1)) == [20]

        # Version 2 drops the rules: the same value is quiet again, the settings' limit is back for the disk.
        await _set(store, 2, DetectionConfig(flag_score=0.9))
        assert (await book.poll()) is not None and _gauge() == 2
        assert feed(part, API_A, _flat(1, 75.0), first=21, step=1) == []
        assert feed(part, DISK, np.asarray([93.0]), first=21, step=1) == []
        assert all(s.cascade is None or s.cascade.flag == 0.9 for s in part.states.values())
        assert part.states[f"{API_A.key}@{WINDOW_MS}"].static is None

        # A checkpointed state restored elsewhere gets the version in use there, whatever it was saved with.
        saved = part.changed()
        other_book = ConfigBook(store, settings)
        other = AnomalyPartition(1, settings, ModelBook(open_model_registry(settings.model_url), settings), other_book)
        await _set(store, 3, DetectionConfig.model_validate({"static_rules": [{"metric": "temp", "lower": 40.0}]}))
        await other_book.poll()
        other.restore({k: v for k, v in saved.items() if v is not None})
        restored = other.states[f"{DB_B.key}@{WINDOW_MS}"]
        assert restored.static is not None and restored.static.lower == 40.0 and restored.service == "db"
    finally:
        await store.close()


async def test_store_down_keeps_the_version_in_use(service_settings: Settings, tmp_path: Path) -> None:
    settings = service_settings()
    store = open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    book = ConfigBook(store, settings)
    await _set(store, 1, DetectionConfig(flag_score=0.3))
    assert (await book.poll()) is not None
    await store.close()
    assert await book.poll() is None  # logged, not raised
    assert book.current.version == 1 and book.current.tuning("cpu", "").flag == 0.3 and _gauge() == 1


async def test_newest_version_is_found_whatever_the_writers_clocks(tmp_path: Path) -> None:
    store = open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    try:
        assert await newest_detection_config(store) is None
        now = datetime.now(UTC)
        await _set(store, 1, DetectionConfig(), now)
        await _set(store, 2, DetectionConfig(flag_score=0.2), now + timedelta(minutes=5))
        await _set(store, 3, DetectionConfig(flag_score=0.3), now)  # written by a host whose clock is behind
        newest = await newest_detection_config(store)
        assert newest is not None and newest.version == 3 and newest.config.flag_score == 0.3
    finally:
        await store.close()


async def test_sensitivity_overrides_add_to_what_feedback_learned(service_settings: Settings, tmp_path: Path) -> None:
    settings = service_settings()
    documents = open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    feedback = open_feedback_store(f"sqlite:///{tmp_path / 'feedback.sqlite'}")
    try:
        book = ConfigBook(documents, settings)

        async def sensitivities(keys: list[str]) -> dict[str, Sensitivity]:
            return book.current.sensitivities(await feedback.sensitivities(keys))

        await feedback.record_applied(API_A.key, Sensitivity(slack=0.5), [], datetime.now(UTC))
        keys = [API_A.key, API_C.key, DB_B.key]
        assert (await sensitivities(keys))[API_A.key].slack == 0.5
        overrides = [
            {"series_key": API_A.key, "slack": 1.0},
            {"service": "api", "slack": 2.0, "min_score": 0.8},
        ]
        await _set(documents, 1, DetectionConfig.model_validate({"sensitivity": overrides}))
        await book.poll()
        got = await sensitivities(keys)
        assert got[API_A.key] == Sensitivity(slack=1.5)  # its own override wins over its service's
        assert got[API_C.key] == Sensitivity(slack=2.0, min_score=0.8)
        assert got[DB_B.key] == Sensitivity()
        # A value 1.8 band widths beyond its band alerts on B, not on A (1.5) nor C (2.0).
        judged = {k: admits(s, 0.9, 12.0 + 1.8 * 4.0, 8.0, 12.0, 0.53) for k, s in got.items()}
        assert judged == {API_A.key: True, API_C.key: False, DB_B.key: True}
        assert admits(got[API_C.key], 0.75, None, None, None, 0.53) is False
        assert (await sensitivities([DB_B.key]))[DB_B.key] == Sensitivity()
    finally:
        await documents.close()
        await feedback.close()


def test_labels_come_back_from_a_series_key() -> None:
    labels = {"service": 'we"ird\\name', "job": "x\ny", "host": "a"}
    assert labels_of_key(series_key("cpu", labels)) == labels
    assert labels_of_key("up") == {}


async def test_anomalies_and_predictions_are_written_as_documents(tmp_path: Path) -> None:
    store = open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    try:
        at = datetime(2026, 1, 1, tzinfo=UTC)
        anomalies = [service_anomaly("cpu", "api", at), service_anomaly("cpu", "db", at + timedelta(minutes=1))]
        await write_documents(store, "anomalies", anomalies)
        await write_documents(store, "anomalies", anomalies[:1])  # delivered again: the same document
        page = await store.query("anomalies", DocumentFilter(service="api"))
        assert [d.id for d in page.documents] == [anomalies[0].id]
        assert page.documents[0].body["services"] == ["api"] and page.documents[0].body["score"] == 0.97
        assert await store.count("anomalies") == 2
        prediction = crossing_prediction("disk_used_percent", {"host": "a"}, at)
        await write_documents(store, "predictions", [prediction])
        stored = await store.get("predictions", prediction.id)
        assert stored is not None and "services" not in stored.body  # a series of no service
        assert PredictionRecord.model_validate(stored.body) == prediction
    finally:
        await store.close()
