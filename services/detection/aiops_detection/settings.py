"""Settings of the detection service (``AIOPS_DETECT_*``)."""

from __future__ import annotations

from typing import Literal

from aiops_common.settings import CommonSettings
from pydantic import Field

__all__ = ["DetectionSettings"]


class DetectionSettings(CommonSettings):
    detect_min_history: int = 200
    """Points a series needs before any tier may score it (the cold start)."""
    detect_flag_score: float = 0.1
    """Tier-1 score from which tier 2 looks at a point."""
    detect_confirm_score: float = 0.1
    """Tier-2 score from which tier 3 looks at a point."""
    detect_severities: tuple[float, float, float] = (0.5, 0.75, 0.9)
    """Lowest cascade score of a minor, major and critical anomaly."""
    detect_refractory_points: int = 100
    """After an alert, points during which a series re-alerts only on a higher score."""
    detect_device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where tier 3 runs; ``auto`` takes CUDA when torch sees a GPU."""
    detect_seed: int = 0
    """Seed of tier 3's model initialisation (training is deterministic on the CPU)."""
    detect_static_thresholds: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    """Known limits by metric name, ``{"disk_used_percent": [null, 95]}`` (JSON in the environment)."""
    detect_error_min_requests: float = 50.0
    """Requests an interval needs before its error rate can be called a spike."""
    detect_latency_tolerance: float = 1.2
    """Recent-to-baseline latency ratio up to which latency is not degraded."""
    detect_silence_tolerance: float = 3.0
    """Typical reporting gaps a series may miss before it counts as silent."""
    detect_forecast_horizon_s: float = 6 * 3600.0
    """How far ahead predictive alerts look for a threshold crossing."""

    @property
    def device(self) -> str | None:
        """The tier-3 device for ``WindowModelDetector(device=...)``; None lets it choose."""
        return None if self.detect_device == "auto" else self.detect_device
