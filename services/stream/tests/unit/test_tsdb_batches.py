"""Messages merged into one TSDB write: every sample, in order, each shared series listed once."""

from __future__ import annotations

import pytest
from aiops_common.schemas import MetricBatch, MetricBatchBuilder, SeriesMeta
from aiops_stream.tsdb_writer import merge_batches

pytestmark = pytest.mark.unit

UP = SeriesMeta("up", {"job": "a"})
CPU = SeriesMeta("cpu", {"job": "a"})


def batch(*samples: tuple[SeriesMeta, int, float]) -> MetricBatch:
    builder = MetricBatchBuilder()
    for meta, ts, value in samples:
        builder.append(builder.series_id(meta, meta.key), ts, value)
    return builder.build()


def test_merged_batches_keep_every_sample_in_order() -> None:
    first = batch((UP, 1_000, 1.0), (CPU, 1_000, 0.5))
    second = batch((CPU, 2_000, 0.7), (UP, 1_000, 0.0))  # the same (series, time) again: later, so it wins
    third = batch()
    merged = merge_batches([first, second, third])
    assert [(m.key, t, v) for m, t, v in merged.samples()] == [
        (UP.key, 1_000, 1.0),
        (CPU.key, 1_000, 0.5),
        (CPU.key, 2_000, 0.7),
        (UP.key, 1_000, 0.0),
    ]
    assert merged.series == [UP, CPU]  # a series object the batches share is listed once


def test_equal_series_that_are_other_objects_stay_apart() -> None:
    other_up = SeriesMeta("up", {"job": "a"})
    merged = merge_batches([batch((UP, 1_000, 1.0)), batch((other_up, 2_000, 2.0))])
    assert len(merged.series) == 2 and merged.series[0] is UP and merged.series[1] is other_up
    assert [(m.key, t, v) for m, t, v in merged.samples()] == [(UP.key, 1_000, 1.0), (UP.key, 2_000, 2.0)]


def test_one_batch_is_passed_through() -> None:
    only = batch((UP, 1_000, 1.0))
    assert merge_batches([only]) is only
