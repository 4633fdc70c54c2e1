"""Settings of the running detection service (``AIOPS_DETECT_*``): the algorithm settings plus wiring and state."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from aiops_detection.settings import DetectionSettings

__all__ = ["DetectionServiceSettings"]


class DetectionServiceSettings(DetectionSettings):
    detect_windows_s: tuple[int, ...] = (60,)
    """Feature window lengths (seconds) the detectors watch; rows of other lengths are ignored."""
    detect_alert_score: Annotated[float, Field(gt=0, le=1)] = 0.53
    """Lowest score that raises an anomaly (before operator feedback moves a series' own threshold).

    The cascade's best threshold on NAB (``make bench-nab``). A value that only just passes
    the recent extremes scores 0.5 and stays quiet, so a steadily growing series (a disk
    filling up: the crossing predictor's job) does not alert on every new high.
    """
    detect_latency_column: str = "p95"
    """Feature column of ``red.latency_s`` judged for degradation (``value`` is the mean)."""
    detect_checkpoint_interval_s: Annotated[float, Field(ge=0)] = 60.0
    """How often each partition's per-series state is written to its changelog-backed table; 0: every batch."""
    detect_replay_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    """How long a restarted worker may take to re-read the input its checkpoint does not cover."""
    detect_model_url: str = ""
    """Model registry; empty means ``file://<data_dir>/models``."""
    detect_model_poll_s: Annotated[float, Field(gt=0)] = 10.0
    """How often workers look for a newer trained model version."""
    detect_model_catchup_points: Annotated[int, Field(ge=0)] = 1440
    """Recent windows kept per series to bring a newly trained model up to the present before the swap."""
    detect_config_poll_s: Annotated[float, Field(gt=0)] = 5.0
    """How often workers look for a newer detection configuration (``PUT /api/v1/config/detection``)."""
    detect_feedback_margin: Annotated[float, Field(gt=1)] = 1.25
    """A false positive widens its series' band so that its deviation times this no longer alerts."""
    detect_torch_threads: Annotated[int, Field(ge=0)] = 1
    """CPU threads torch may use (0: torch's default). Tier 3 runs many tiny models: more threads only contend."""
    detect_prediction_repeat_s: Annotated[float, Field(gt=0)] = 3600.0
    """A crossing still predicted is published again at most this often (per series and threshold)."""
    detect_forget_after_s: Annotated[float, Field(ge=0)] = 2 * 86_400.0
    """A series without a window for this long (in its partition's event time) is forgotten: its state, its
    checkpoint entry and its tier-1 row go, and it starts cold if it comes back; 0 keeps every series."""

    @property
    def model_url(self) -> str:
        return self.detect_model_url or f"file://{self.data_dir.absolute() / 'models'}"

    @property
    def window_lengths_ms(self) -> tuple[int, ...]:
        return tuple(sorted({s * 1000 for s in self.detect_windows_s}))
