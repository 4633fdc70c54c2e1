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
    module = importlib.import_module(f"aiops_detection.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
