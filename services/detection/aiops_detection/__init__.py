"""Detection layer: tiered anomaly detectors with one river-style API, special detectors, forecasts, NAB scoring."""

from __future__ import annotations

from aiops_detection.calibration import refractory
from aiops_detection.cascade import Cascade, CascadeExplanation, Severity, Verdict
from aiops_detection.detector import Detector, Estimator
from aiops_detection.error_rate import ErrorRateSpike, RequestCounts
from aiops_detection.forecaster import CrossingForecast, CrossingForecaster
from aiops_detection.latency import LatencyDegradation
from aiops_detection.refractory import Refractory
from aiops_detection.robust_band import RobustBandDetector
from aiops_detection.seasonal_forecast import SeasonalForecastDetector
from aiops_detection.seasonality import candidate_periods, detect_periods
from aiops_detection.settings import DetectionSettings
from aiops_detection.silence import SilenceDetector
from aiops_detection.static_threshold import StaticThreshold, static_thresholds
from aiops_detection.window_model import WindowModelDetector, resolve_device

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
