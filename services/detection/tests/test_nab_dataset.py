"""The scorer reproduces NAB's published results from the published per-row detector outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from aiops_detection.detectors.nab_scorer import (
    PROFILES,
    NabScorer,
    load_corpus,
    load_detector_results,
    load_published_scores,
)


@pytest.fixture(scope="module")
def scorer(nab_dir: Path) -> NabScorer:
    return NabScorer(load_corpus(nab_dir))


def test_corpus_is_nab_v1(scorer: NabScorer) -> None:
    assert len(scorer.corpus) == 58
    assert sum(len(series) for series in scorer.corpus) == 365_558
    assert scorer.n_windows == 116


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian", "null"])
def test_reproduces_published_scores_for_every_profile(nab_dir: Path, scorer: NabScorer, detector: str) -> None:
    published = load_published_scores(nab_dir)[detector]
    outputs = load_detector_results(nab_dir, detector, [series.name for series in scorer.corpus])
    for profile in PROFILES:
        score = scorer.score(outputs, profile, search="twiddle")
        assert round(score.normalised, 2) == round(published[profile], 2), profile


def test_numenta_standard_is_70_10(nab_dir: Path, scorer: NabScorer) -> None:
    outputs = load_detector_results(nab_dir, "numenta", [series.name for series in scorer.corpus])
    assert round(scorer.score(outputs, "standard").normalised, 2) == 70.10


def test_per_file_scores_match_the_published_score_files(nab_dir: Path, scorer: NabScorer) -> None:
    outputs = load_detector_results(nab_dir, "numenta", [series.name for series in scorer.corpus])
    table = pd.read_csv(nab_dir / "results" / "numenta" / "numenta_standard_scores.csv")
    threshold = float(table["Threshold"].iloc[0])
    for series in scorer.corpus:
        expected = float(table.loc[table["File"] == series.name, "Score"].iloc[0])
        single = NabScorer([series]).score_at({series.name: outputs[series.name]}, "standard", threshold)
        assert single.raw == pytest.approx(expected, abs=1e-6), series.name
