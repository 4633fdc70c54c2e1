"""Detection layer: tiered anomaly detectors with one river-style API, special detectors, forecasts, NAB scoring."""

from __future__ import annotations

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
