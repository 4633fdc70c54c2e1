"""The partition's tier 1, run across series in one pass, finds what the series-by-series path finds."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from aiops_common.schemas import FeatureBatch, SeriesMeta
from aiops_common.tsdb import Series
from aiops_detection.agents.anomaly_detector import AnomalyPartition
from aiops_detection.agents.model_updates import LoadedModels
from aiops_detection.agents.partition_state import load_state
from aiops_detection.detectors.series_detectors import (
    STATE_FINGERPRINT,
    Finding,
    SeriesState,
    TrainedSeries,
    WindowRow,
    new_series_state,
)
from aiops_detection.detectors.trained_models import train_all
from aiops_detection.service_settings import DetectionServiceSettings

from .conftest import T0, WINDOW_MS, incident_history, new_partition, periodic_history, window_batch

pytestmark = pytest.mark.unit

LONG_MS = 5 * WINDOW_MS
WINDOWS = 330
SERIES = [
    *(SeriesMeta("cpu", {"host": f"h{i}", "service": "api"}) for i in range(5)),
    SeriesMeta("disk_used_percent", {"host": "h0"}),
    SeriesMeta("red.latency_s", {"service": "api", "operation": "GET /"}),
    SeriesMeta("red.error_rate", {"service": "api", "operation": "GET /"}),
]
TRAINED = SERIES[1]  # a model trained on its first windows is swapped in while it runs

Found = list[tuple[str, int, Finding]]
Row = tuple[int, int, int, float, float, float, float, float]
"""series, start, length, value, count, sum, p95, absent"""


def workload(rng: np.random.Generator) -> list[FeatureBatch]:
    """Batches as a partition may get them: 1 to 4 windows of every series, shuffled, some delivered twice.

    The series hold spikes, level shifts, constant stretches, gaps (absent windows),
    values missing without a gap, and a second, 5-minute window length.
    """
    values = np.stack([incident_history(WINDOWS, seed=s + 1) + s for s in range(len(SERIES))])
    values[2, 150:200] = values[2, 149]  # flat
    values[3] = np.round(values[3])  # ties
    values[4, 240:] += 30.0 * rng.random(WINDOWS - 240)
    values[5] = 60.0 + periodic_history(WINDOWS)
    values[5, [260, 300]] = [97.0, 99.0]  # beyond the static limit
    values[6] = 0.1 + 0.01 * periodic_history(WINDOWS)
    p95 = 2.0 * values[6]
    p95[290:] *= 3.0  # the slow tail degrades, the mean does not
    requests = np.full(WINDOWS, 200.0)
    errors = np.where(np.arange(WINDOWS) == 280, 60.0, 2.0)
    values[7] = errors / requests
    absent = np.zeros_like(values, dtype=bool)
    absent[0, 120:132] = True
    missing = np.zeros_like(absent)
    missing[1, [50, 51, 230]] = True

    batches: list[FeatureBatch] = []
    first = 0
    while first < WINDOWS:
        last = min(WINDOWS, first + int(rng.integers(1, 5)))
        rows: list[Row] = []
        for s in range(len(SERIES)):
            for w in range(first, last):
                value = np.nan if absent[s, w] or missing[s, w] else values[s, w]
                latency, gap = p95[w] if s == 6 else np.nan, 1.0 * absent[s, w]
                rows.append((s, T0 + w * WINDOW_MS, WINDOW_MS, value, requests[w], errors[w], latency, gap))
                if s < 2 and (w + 1) % 5 == 0:  # the 5-minute roll-up ending with this window
                    block = values[s, w - 4 : w + 1]
                    rows.append((s, T0 + (w - 4) * WINDOW_MS, LONG_MS, block.mean(), 5.0, block.sum(), np.nan, 0.0))
        order = rng.permutation(len(rows))
        batches.append(_batch([rows[i] for i in order]))
        if rng.random() < 0.2:
            batches.append(_batch(rows[: len(rows) // 2]))  # a producer's retry
        first = last
    return batches


def _batch(rows: Sequence[Row]) -> FeatureBatch:
    sid, start, length, value, count, total, p95, absent = zip(*rows, strict=True)
    columns = {"value": value, "count": count, "sum": total, "p95": p95, "absent": absent}
    return FeatureBatch.from_rows(SERIES, sid, start, length, columns)


def trained_model(settings: DetectionServiceSettings, windows: int) -> dict[str, TrainedSeries]:
    """A cascade trained on other numbers than the worker saw (so a swap that keeps the old tier 1 shows)."""
    values = 1.5 * incident_history(WINDOWS, seed=99)
    ends = T0 + (np.arange(windows) + 1) * WINDOW_MS
    history = Series("cpu:value_60s", dict(TRAINED.labels), ends.astype(np.int64), values[:windows])
    return train_all([history], WINDOW_MS, settings).series


def series_by_series(
    settings: DetectionServiceSettings,
    batches: Sequence[FeatureBatch],
    model_from: int,
    model: dict[str, TrainedSeries],
) -> tuple[Found, dict[str, SeriesState]]:
    """The detector as it was: every series stepped on its own, tier 1 inside its cascade."""
    states: dict[str, SeriesState] = {}
    found: Found = []
    for b, batch in enumerate(batches):
        if b >= model_from:
            for state in states.values():
                if state.key in model and state.length_ms == WINDOW_MS and state.model_version is None:
                    state.adopt(model[state.key], 1)
        rows = np.flatnonzero(np.isin(batch.length_ms, settings.window_lengths_ms))
        for r in rows[np.lexsort((batch.start_ms[rows], batch.sid[rows]))].tolist():
            meta, start, length = batch.series[int(batch.sid[r])], int(batch.start_ms[r]), int(batch.length_ms[r])
            numbers = [float(batch.column(c)[r]) for c in ("value", "count", "sum", "p95")]
            row = WindowRow(start, length, *numbers, absent=float(batch.column("absent")[r]) == 1.0)
            ident = f"{meta.key}@{length}"
            if ident not in states:
                states[ident] = new_series_state(meta.key, meta.name, length, settings, first_start_ms=start)
            finding = states[ident].step(row)
            if finding is not None:
                found.append((meta.key, length, finding))
    return found, states


def test_findings_and_states_equal_the_series_by_series_path(
    service_settings: Callable[..., DetectionServiceSettings], rng: np.random.Generator
) -> None:
    settings = service_settings(
        detect_windows_s=(60, 300), detect_static_thresholds={"disk_used_percent": (None, 95.0)}
    )
    batches = workload(rng)
    model_from = len(batches) // 2
    model = trained_model(settings, 150)
    expected, expected_states = series_by_series(settings, batches, model_from, model)

    table: dict[str, bytes] = {}  # the checkpoint table: every series' latest state
    part: AnomalyPartition = new_partition(settings)
    found: Found = []
    for b, batch in enumerate(batches):
        if b in (len(batches) // 3, 2 * len(batches) // 3):  # a restart from the checkpoint
            table.update(part.changed())
            part = new_partition(settings)
            part.restore(table)
        if b == model_from:
            part.models.loaded = {WINDOW_MS: LoadedModels("cascade-60s", 1, model)}
        found += [(d.series.key, d.length_ms, d.finding) for d in part.process(batch)]
    table.update(part.changed())

    assert found == expected
    assert {f.detector for _, _, f in found} == {"cascade", "static", "latency", "error_rate", "silence"}
    assert expected_states[f"{SERIES[0].key}@{LONG_MS}"].seen == WINDOWS // 5  # two states of one series per batch
    assert {ident: s.model_version for ident, s in expected_states.items() if s.model_version} == {
        f"{TRAINED.key}@{WINDOW_MS}": 1
    }
    assert set(table) == set(expected_states)
    for ident, blob in table.items():
        state, reference = load_state(blob, STATE_FINGERPRINT), expected_states[ident]
        assert (state.seen, state.last_start_ms, state.duplicates, state.model_version) == (
            reference.seen,
            reference.last_start_ms,
            reference.duplicates,
            reference.model_version,
        )
        assert state.recent_scores.maximum == reference.recent_scores.maximum
        if reference.cascade is not None:
            # Tier 1 came back from the panel as the detector the series-by-series path built, to the byte.
            assert pickle.dumps(state.cascade.basic) == pickle.dumps(reference.cascade.basic), ident


def test_a_held_state_keeps_the_panels_template_and_its_checkpoint_the_row(
    service_settings: Callable[..., DetectionServiceSettings],
) -> None:
    """Tier 1 lives once, in the panel: the state holds the shared template, the dump carries the row."""
    settings = service_settings()
    series = [SeriesMeta("cpu", {"host": f"h{i}"}) for i in range(5)]
    values = np.stack([incident_history(300, seed=s + 1) for s in range(len(series))])

    def run(part: AnomalyPartition, first: int, last: int) -> list[tuple[str, int]]:
        found = []
        for w in range(first, last):
            columns = [{"value": [v], "count": [6.0]} for v in values[:, w]]
            found += [(d.series.key, d.finding.start_ms) for d in part.process(window_batch(series, w, columns))]
        return found

    part = new_partition(settings)
    run(part, 0, 150)
    templates = {id(state.cascade.basic) for state in part.states.values() if state.cascade is not None}
    panel = next(iter(part._panels.values()))
    assert templates == {id(panel.template)} and panel.template._seen == 0  # one object, never learned

    table = part.changed()
    assert len(table) == len(series)
    for ident, blob in table.items():
        held = part._tier1[ident]
        state = load_state(blob, STATE_FINGERPRINT)
        assert state.cascade.basic._seen == 150
        assert pickle.dumps(state.cascade.basic) == pickle.dumps(held[0].take(held[1]))
        assert part.states[ident].cascade.basic is panel.template  # the dump's copy is not kept

    restarted = new_partition(settings)
    restarted.restore(table)
    # An entry that does not load leaves the state held as it was; the row is not rewound or reset.
    part.restore({next(iter(table)): b"not a checkpoint"})
    assert run(part, 150, 300) == run(restarted, 150, 300) != []
    states, restarted_states = part.changed(), restarted.changed()
    assert set(states) == set(restarted_states) == set(table)
    for ident, blob in states.items():
        state, reference = load_state(blob, STATE_FINGERPRINT), load_state(restarted_states[ident], STATE_FINGERPRINT)
        assert (
            (state.seen, state.last_start_ms)
            == (reference.seen, reference.last_start_ms)
            == (300, T0 + 299 * WINDOW_MS)
        )
        assert pickle.dumps(state.cascade.basic) == pickle.dumps(reference.cascade.basic), ident
