"""The examples in the detection modules' docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

pytestmark = pytest.mark.unit

MODULES = [
    "error_rate",
    "forecaster",
    "latency",
    "nab_scorer",
    "refractory",
    "robust_band",
    "seasonality",
    "silence",
    "static_threshold",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"aiops_detection.detectors.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


AGENTS = [
    "anomaly_archive",
    "anomaly_detector",
    "config_updates",
    "crossing_predictor",
    "feedback_labels",
    "model_updates",
]


@pytest.mark.parametrize("name", AGENTS)
def test_every_agent_module_says_what_it_consumes_and_produces(name: str) -> None:
    module = importlib.import_module(f"aiops_detection.agents.{name}")
    assert (module.__doc__ or "").startswith(("Agent:", "Timer:"))
