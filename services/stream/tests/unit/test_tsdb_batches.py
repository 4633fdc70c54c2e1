"""Messages merged into one TSDB write: every sample, in order, each shared series listed once; a store that is
unavailable tried again until the write is stored."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid

import pytest
import structlog
from aiops_common.agent_loop import AgentMeter, write_with_retry
from aiops_common.schemas import MetricBatch, MetricBatchBuilder, SeriesMeta
from aiops_stream.tsdb_writer import RETRY_UNTIL_STORED, merge_batches
from prometheus_client import REGISTRY

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


def test_the_tsdb_is_tried_again_doubling_from_half_a_second_to_ten() -> None:
    assert RETRY_UNTIL_STORED.until_stored and RETRY_UNTIL_STORED.unstorable == ()
    assert RETRY_UNTIL_STORED.delays == (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)


@pytest.mark.parametrize(
    "error", [sqlite3.OperationalError("database is locked"), TimeoutError("no answer"), OSError(28, "No space")]
)
async def test_an_unavailable_tsdb_is_tried_again_until_the_write_is_stored(error: Exception) -> None:
    agent = f"test_{uuid.uuid4().hex[:8]}"  # the registry and log limiter are per process: an agent of its own
    retry = dataclasses.replace(RETRY_UNTIL_STORED, delays=(0.001, 0.002))
    tries = 0

    async def write() -> None:
        nonlocal tries
        tries += 1
        if tries <= 5:
            raise error

    with structlog.testing.capture_logs() as logs:
        assert await write_with_retry(AgentMeter(agent), write, 16, retry)
    assert tries == 6
    dropped = REGISTRY.get_sample_value(
        "aiops_agent_dropped_records_total", {"agent": agent, "reason": "store_unavailable"}
    )
    assert dropped is None  # never counted: nothing was given up
    failed = [line for line in logs if line["event"] == "tsdb write failed, trying again"]
    assert [(line["log_level"], line["agent"], line["attempt"]) for line in failed] == [("error", agent, 1)]


async def test_bad_data_is_not_skipped_but_goes_on() -> None:
    async def write() -> None:
        raise ValueError("not a sample")

    with pytest.raises(ValueError, match="not a sample"):
        await write_with_retry(AgentMeter(f"test_{uuid.uuid4().hex[:8]}"), write, 1, RETRY_UNTIL_STORED)
