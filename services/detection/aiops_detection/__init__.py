"""Detection layer: tiered anomaly detectors with one river-style API, special detectors, forecasts, NAB scoring."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiops_detection.detectors.calibration import refractory
    from aiops_detection.detectors.cascade import Cascade, CascadeExplanation, Severity, Verdict
    from aiops_detection.detectors.detector import Detector, Estimator
    from aiops_detection.detectors.error_rate import ErrorRateSpike, RequestCounts
    from aiops_detection.detectors.forecaster import CrossingForecast, CrossingForecaster
    from aiops_detection.detectors.latency import LatencyDegradation
    from aiops_detection.detectors.refractory import Refractory
    from aiops_detection.detectors.robust_band import RobustBandDetector
    from aiops_detection.detectors.seasonal_forecast import SeasonalForecastDetector
    from aiops_detection.detectors.seasonality import candidate_periods, detect_periods
    from aiops_detection.detectors.silence import SilenceDetector
    from aiops_detection.detectors.static_threshold import StaticThreshold, static_thresholds
    from aiops_detection.detectors.window_model import WindowModelDetector, resolve_device
    from aiops_detection.settings import DetectionSettings

__all__ = [
    "Cascade",
    "CascadeExplanation",
    "CrossingForecast",
    "CrossingForecaster",
    "DetectionSettings",
    "Detector",
    "ErrorRateSpike",
    "Estimator",
    "LatencyDegradation",
    "Refractory",
    "RequestCounts",
    "RobustBandDetector",
    "SeasonalForecastDetector",
    "Severity",
    "SilenceDetector",
    "StaticThreshold",
    "Verdict",
    "WindowModelDetector",
    "candidate_periods",
    "detect_periods",
    "refractory",
    "resolve_device",
    "static_thresholds",
]

# Imported on first use: the platform finds this service through aiops_detection.service,
# and importing the package must not pull in torch and scipy for `aiops --help` or an image
# without the detection extra.
_LAZY = {
    "refractory": "aiops_detection.detectors.calibration",
    "Cascade": "aiops_detection.detectors.cascade",
    "CascadeExplanation": "aiops_detection.detectors.cascade",
    "Severity": "aiops_detection.detectors.cascade",
    "Verdict": "aiops_detection.detectors.cascade",
    "Detector": "aiops_detection.detectors.detector",
    "Estimator": "aiops_detection.detectors.detector",
    "ErrorRateSpike": "aiops_detection.detectors.error_rate",
    "RequestCounts": "aiops_detection.detectors.error_rate",
    "CrossingForecast": "aiops_detection.detectors.forecaster",
    "CrossingForecaster": "aiops_detection.detectors.forecaster",
    "LatencyDegradation": "aiops_detection.detectors.latency",
    "Refractory": "aiops_detection.detectors.refractory",
    "RobustBandDetector": "aiops_detection.detectors.robust_band",
    "SeasonalForecastDetector": "aiops_detection.detectors.seasonal_forecast",
    "candidate_periods": "aiops_detection.detectors.seasonality",
    "detect_periods": "aiops_detection.detectors.seasonality",
    "SilenceDetector": "aiops_detection.detectors.silence",
    "StaticThreshold": "aiops_detection.detectors.static_threshold",
    "static_thresholds": "aiops_detection.detectors.static_threshold",
    "WindowModelDetector": "aiops_detection.detectors.window_model",
    "resolve_device": "aiops_detection.detectors.window_model",
    "DetectionSettings": "aiops_detection.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
