"""The topology modules' docstring examples run, and times keep their milliseconds exactly."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import aiops_common.topology as topology
import pytest
from aiops_common.topology import _file
from aiops_common.topology._protocol import from_millis, millis

pytestmark = pytest.mark.unit


def test_docstring_examples() -> None:
    assert doctest.testmod(topology).failed == 0
    assert doctest.testmod(_file, optionflags=doctest.ELLIPSIS).failed == 0


def test_millis_round_trip() -> None:
    at = datetime(2026, 1, 1, 12, 0, 0, 999_000, tzinfo=UTC)
    assert from_millis(millis(at)) == at
    assert millis(at.replace(tzinfo=None)) == millis(at)  # naive is UTC
    assert from_millis(millis(at + timedelta(microseconds=999))) == at  # below a millisecond is dropped
