"""Timer: pick up newly trained cascade versions from the model registry while the worker runs.

Every ``detect_model_poll_s`` the worker asks the registry for the latest version of
``cascade-<window>s`` for each window length it watches. A newer version is read and
unpickled off the event loop, checked against the worker's own cascade
hyperparameters, and then published to the partitions by replacing one reference:
each partition picks it up at the start of its next batch, never in the middle of one,
and swaps a series over once the new model has been brought up to that series' present.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass

import faust
import structlog
from aiops_common.models import ModelRegistry, open_model_registry
from prometheus_client import Gauge

from aiops_detection.detectors.series_detectors import TrainedSeries, cascade_params
from aiops_detection.detectors.trained_models import decode_models, model_name
from aiops_detection.service_settings import DetectionServiceSettings

__all__ = ["MODEL_VERSION", "LoadedModels", "ModelBook", "install"]

log = structlog.get_logger(__name__)

MODEL_VERSION = Gauge(
    "aiops_detection_model_version", "Trained model version the detector partitions use (absent: none yet)", ["model"]
)


@dataclass(frozen=True, slots=True)
class LoadedModels:
    name: str
    version: int
    series: Mapping[str, TrainedSeries]


def _normalised(params: object) -> str:
    return json.dumps(params, sort_keys=True, default=str)


class ModelBook:
    """The newest usable trained models of each window length, swapped whole on every update."""

    def __init__(self, registry: ModelRegistry, settings: DetectionServiceSettings) -> None:
        self.registry = registry
        self.lengths = settings.window_lengths_ms
        self._expected = {length: _normalised(cascade_params(settings, length)) for length in self.lengths}
        self._refused: dict[int, int] = {}
        self.loaded: Mapping[int, LoadedModels] = {}
        """By window length. Replaced, never mutated: a reader holding it sees one consistent set."""

    def trained(self, length_ms: int, key: str) -> tuple[TrainedSeries | None, int | None]:
        models = self.loaded.get(length_ms)
        if models is None:
            return None, None
        return models.series.get(key), models.version

    async def poll(self) -> list[LoadedModels]:
        """Load every newer version; returns what was loaded."""
        fresh: list[LoadedModels] = []
        loaded = dict(self.loaded)
        for length in self.lengths:
            name = model_name(length)
            latest = await self.registry.latest(name)
            current = loaded.get(length)
            if latest is None or (current is not None and latest.version <= current.version):
                continue
            if self._refused.get(length) == latest.version:
                continue
            if _normalised(latest.params.get("cascade")) != self._expected[length]:
                self._refused[length] = latest.version
                log.warning(
                    "model does not match this worker's cascade; not used",
                    model=name,
                    version=latest.version,
                )
                continue
            artifact = await self.registry.get(name, latest.version)
            series = await asyncio.to_thread(decode_models, artifact.data)
            loaded[length] = LoadedModels(name, latest.version, series)
            fresh.append(loaded[length])
            log.info("model loaded", model=name, version=latest.version, series=len(series))
        if fresh:
            self.loaded = loaded
            for models in fresh:
                MODEL_VERSION.labels(models.name).set(models.version)
        return fresh


def install(app: faust.App, settings: DetectionServiceSettings) -> ModelBook:
    book = ModelBook(open_model_registry(settings.model_url), settings)

    async def poll() -> None:
        try:
            await book.poll()
        except Exception as exc:  # a broken artifact or an unreachable registry must not stop detection
            log.error("model registry poll failed", url=settings.model_url, error=f"{type(exc).__name__}: {exc}")

    app.task(poll)
    app.timer(settings.detect_model_poll_s, name="detection_model_updates")(poll)
    return book
