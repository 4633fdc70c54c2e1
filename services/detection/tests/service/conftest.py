"""Fixtures for the detection service's tests: settings, synthetic feature series, a partition to feed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from aiops_common.models import open_model_registry
from aiops_common.schemas import SeriesMeta
from aiops_detection.agents.anomaly_detector import AnomalyPartition, Detection
from aiops_detection.agents.model_updates import ModelBook
from aiops_detection.service_settings import DetectionServiceSettings
from aiops_detection.testing import T0, WINDOW_MS, window_batch

__all__ = ["T0", "WINDOW_MS", "window_batch"]  # with the fixtures: what the detection tests share

PERIOD = 30
COLD_SPIKE, SHIFT, SPIKE, SECOND_SPIKE = 40, 220, 280, 340

# Small enough for a test, long enough for every tier to warm up.
SERVICE_SETTINGS = {"detect_min_history": 100, "detect_refractory_points": 20, "detect_checkpoint_interval_s": 0}


def periodic_history(n: int, seed: int = 1) -> np.ndarray:
    """A daily-like cycle: the same shape every ``PERIOD`` windows, with a fixed texture of noise.

    Repeating exactly, its normal part never sets a new extreme once a cycle has passed,
    so every anomaly in it is one the test put there.
    """
    rng = np.random.default_rng(seed)
    cycle = np.sin(np.arange(PERIOD) * 2 * np.pi / PERIOD) + rng.normal(0, 0.2, PERIOD)
    return 10.0 + np.tile(cycle, n // PERIOD + 1)[:n]


def incident_history(n: int = 400, seed: int = 1) -> np.ndarray:
    """A spike during the cold start, then (warm) a level shift, a spike, and a larger spike."""
    values = periodic_history(n, seed)
    values[COLD_SPIKE] += 6.0
    values[SHIFT:] += 4.0
    values[SPIKE] += 8.0
    if n > SECOND_SPIKE:
        values[SECOND_SPIKE] += 11.0
    return values


@pytest.fixture
def service_settings(tmp_path: Path) -> Callable[..., DetectionServiceSettings]:
    def make(**overrides: object) -> DetectionServiceSettings:
        return DetectionServiceSettings(**{**SERVICE_SETTINGS, "data_dir": tmp_path, **overrides})

    return make


def new_partition(settings: DetectionServiceSettings) -> AnomalyPartition:
    return AnomalyPartition(0, settings, ModelBook(open_model_registry(settings.model_url), settings))


def feed(
    part: AnomalyPartition, series: SeriesMeta, values: np.ndarray, first: int = 0, step: int = 10
) -> list[Detection]:
    """Feed ``values`` as windows ``first...`` in batches of ``step``; every finding."""
    found: list[Detection] = []
    for i in range(0, values.size, step):
        chunk = values[i : i + step]
        found += part.process(window_batch([series], first + i, [{"value": chunk, "count": [6.0] * chunk.size}]))
    return found


def windows(found: Sequence[Detection]) -> list[int]:
    """Window index (from ``T0``) of every finding."""
    return [(d.finding.start_ms - T0) // WINDOW_MS for d in found]
