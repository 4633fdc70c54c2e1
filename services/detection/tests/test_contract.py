"""One contract for every estimator (river's test_estimators.py): clone, pickle, defaults, determinism.

Every ``Detector``/``Estimator`` subclass in ``aiops_detection`` must have an entry in
``CASES``: small hyperparameters and a stream of inputs of its kind. The last test
fails when a new estimator is added without one.
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from aiops_detection import (
    Cascade,
    CrossingForecaster,
    ErrorRateSpike,
    LatencyDegradation,
    Refractory,
    RequestCounts,
    RobustBandDetector,
    SeasonalForecastDetector,
    SilenceDetector,
    StaticThreshold,
    WindowModelDetector,
)
from aiops_detection.detectors.detector import Detector, Estimator

pytestmark = pytest.mark.unit


def seasonal_stream(n: int = 420, seed: int = 3) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 10 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, n)
    values[300] += 6  # one spike, so scores are not all zero
    values[350:] += 4  # and a level shift
    return [float(v) for v in values]


def request_stream(n: int = 120) -> list[RequestCounts]:
    rng = np.random.default_rng(5)
    requests = rng.integers(20, 200, n)
    errors = rng.binomial(requests, 0.02)
    errors[100] = requests[100] // 2
    return [RequestCounts(float(e), float(r)) for e, r in zip(errors, requests, strict=True)]


def arrival_stream(n: int = 80) -> list[float]:
    times = np.cumsum(np.full(n, 15.0))
    times[60:] += 600.0  # a silence of ten minutes
    return [float(t) for t in times]


def small_tier3(**overrides: Any) -> WindowModelDetector:
    params: dict[str, Any] = {
        "window": 6,
        "periods": (24,),
        "history": 200,
        "refit_every": 100,
        "hidden": 8,
        "latent": 2,
        "epochs": 20,
        "min_history": 150,
        "calibration_warmup": 30,
        "device": "cpu",
    }
    return WindowModelDetector(**(params | overrides))


def small_tier2() -> SeasonalForecastDetector:
    return SeasonalForecastDetector(periods=(24,), refit_every=100, residual_window=40, min_history=150)


def small_tier1() -> RobustBandDetector:
    return RobustBandDetector(z_window=30, record_window=100, band_window=300, min_history=60)


@dataclass(frozen=True)
class Case:
    make: Callable[[], Estimator]
    stream: Callable[[], list[Any]]


CASES: dict[type[Estimator], Case] = {
    RobustBandDetector: Case(small_tier1, seasonal_stream),
    SeasonalForecastDetector: Case(small_tier2, seasonal_stream),
    WindowModelDetector: Case(small_tier3, seasonal_stream),
    Cascade: Case(lambda: Cascade(small_tier1(), small_tier2(), small_tier3()), seasonal_stream),
    Refractory: Case(lambda: Refractory(small_tier1(), period=20), seasonal_stream),
    StaticThreshold: Case(lambda: StaticThreshold(lower=5.0, upper=16.0), seasonal_stream),
    LatencyDegradation: Case(lambda: LatencyDegradation(baseline_window=100, recent_window=5), seasonal_stream),
    ErrorRateSpike: Case(lambda: ErrorRateSpike(min_requests=50, min_baseline_requests=500), request_stream),
    SilenceDetector: Case(SilenceDetector, arrival_stream),
    CrossingForecaster: Case(
        lambda: CrossingForecaster(window=50), lambda: [(60.0 * i, v) for i, v in enumerate(seasonal_stream())]
    ),
}


def all_subclasses(cls: type[Estimator]) -> Iterator[type[Estimator]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def concrete_estimators() -> list[type[Estimator]]:
    return sorted(
        {
            sub
            for sub in all_subclasses(Estimator)
            if sub.__module__.startswith("aiops_detection") and not inspect.isabstract(sub) and sub is not Detector
        },
        key=lambda cls: cls.__name__,
    )


def outputs(estimator: Estimator, stream: list[Any]) -> list[Any]:
    """Scores of a detector streamed score-then-learn; a forecaster's crossing predictions."""
    out: list[Any] = []
    for x in stream:
        if isinstance(estimator, Detector):
            out.append(estimator.score_one(x))
            estimator.learn_one(x)
        else:
            assert isinstance(estimator, CrossingForecaster)
            estimator.learn_one(x)
            out.append(estimator.predict_crossing(threshold=14.0, horizon_s=86_400.0))
    return out


@pytest.fixture(params=list(CASES), ids=lambda cls: cls.__name__)
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def test_every_estimator_has_a_contract_case() -> None:
    missing = [cls.__name__ for cls in concrete_estimators() if cls not in CASES]
    assert not missing, f"add contract cases for {missing}"


def test_no_mutable_default_arguments(case: Case) -> None:
    for name, parameter in inspect.signature(type(case.make()).__init__).parameters.items():
        default = parameter.default
        assert not isinstance(default, list | dict | set | bytearray | np.ndarray | Estimator), name


def test_params_are_stored_under_their_names(case: Case) -> None:
    estimator = case.make()
    signature = inspect.signature(type(estimator).__init__)
    assert set(estimator.get_params()) == set(signature.parameters) - {"self"}


def test_clone_is_fresh_with_the_same_params(case: Case) -> None:
    stream = case.stream()
    trained = case.make()
    expected = outputs(case.make(), stream)
    outputs(trained, stream)
    clone = trained.clone()
    assert clone is not trained
    assert repr(clone) == repr(trained)
    assert outputs(clone, stream) == expected  # unfitted: replays exactly like a new estimator


def test_pickle_round_trip_keeps_the_state(case: Case) -> None:
    stream = case.stream()
    half = len(stream) * 3 // 4
    original = case.make()
    outputs(original, stream[:half])
    restored = pickle.loads(pickle.dumps(original))
    assert outputs(restored, stream[half:]) == outputs(original, stream[half:])


def test_seeded_runs_are_deterministic(case: Case) -> None:
    stream = case.stream()
    assert outputs(case.make(), stream) == outputs(case.make(), stream)


def test_scores_are_in_the_unit_interval(case: Case) -> None:
    estimator = case.make()
    if not isinstance(estimator, Detector):
        pytest.skip("not a detector")
    scores = np.asarray(outputs(estimator, case.stream()))
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert scores.max() > 0.0  # every stream holds an anomaly its detector should react to


def test_batch_form_equals_the_stream(case: Case) -> None:
    estimator = case.make()
    if not isinstance(estimator, Detector):
        pytest.skip("not a detector")
    stream = case.stream()
    expected = outputs(case.make(), stream)
    batch = estimator.score_many([stream, stream[: len(stream) // 2]])
    np.testing.assert_allclose(batch[0], expected, atol=1e-6)
    np.testing.assert_allclose(batch[1, : len(stream) // 2], expected[: len(stream) // 2], atol=1e-6)
    assert np.isnan(batch[1, len(stream) // 2 :]).all()


def test_cold_start_is_silent(case: Case) -> None:
    estimator = case.make()
    if not isinstance(estimator, Detector) or isinstance(estimator, StaticThreshold):
        pytest.skip("static limits need no history")
    assert outputs(estimator, case.stream()[:5]) == [0.0] * 5
