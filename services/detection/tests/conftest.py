"""Fixtures for the detection tests: the shared datasets folder (skipped when absent) and synthetic series."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """``AIOPS_DATASETS_DIR``, by default ``../shared/datasets`` next to the repository; skip when missing."""
    path = Path(os.environ.get("AIOPS_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    if not path.is_dir():
        pytest.skip(f"datasets folder {path} not found (set AIOPS_DATASETS_DIR)")
    return path


@pytest.fixture(scope="session")
def nab_dir(datasets_dir: Path) -> Path:
    path = datasets_dir / "nab"
    if not (path / "labels" / "combined_windows.json").is_file():
        pytest.skip(f"NAB not found under {path}")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)
