"""One contract for every reachable TSDB backend: SQLite always, a real Prometheus, VictoriaMetrics when configured."""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiops_common.schemas import MetricBatchBuilder, MetricKind
from aiops_common.testing import PrometheusServer
from aiops_common.tsdb import TSDB_BACKENDS, TimeSeriesStore, open_tsdb
from aiops_common.tsdb.samples import STALE_NAN_BITS

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
STEP = 15_000
# Recent enough for Prometheus to take (its head block refuses samples far in the past), aligned to the step.
BASE = (int(time.time() * 1000) // 60_000) * 60_000 - 20 * 60_000


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.functional),
        pytest.param("prometheus", marks=pytest.mark.integration),
        pytest.param("victoriametrics", marks=pytest.mark.integration),
    ]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, external_server: Callable[..., Any]
) -> AsyncIterator[TimeSeriesStore]:
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'tsdb.sqlite'}"
    elif kind == "prometheus":
        # Re-delivered batches (at-least-once) hold samples older than the newest one: Prometheus
        # only takes those inside its out-of-order window.
        config = {"global": {"scrape_interval": "15s"}, "storage": {"tsdb": {"out_of_order_time_window": "1h"}}}
        server = external_server(PrometheusServer, config=config)
        url = f"prometheus://127.0.0.1:{server.port}"
    else:
        vm = os.environ.get("AIOPS_TEST_VM_URL")
        if not vm:
            pytest.skip("AIOPS_TEST_VM_URL is not set (a VictoriaMetrics server to test against)")
        url = vm.replace("http://", "victoriametrics://")
    tsdb = open_tsdb(url)
    yield tsdb
    await tsdb.close()


def unique(name: str) -> str:
    """Series names no other test run wrote (a VictoriaMetrics server may be shared)."""
    return f"{name}_{os.getpid()}_{time.monotonic_ns()}"


def samples(name: str) -> tuple[Any, dict[str, list[tuple[int, float]]]]:
    builder = MetricBatchBuilder()
    want: dict[str, list[tuple[int, float]]] = {"a": [], "b": []}
    for i in range(20):
        for job, scale in (("a", 1.0), ("b", 10.0)):
            t, v = BASE + i * STEP, scale * i + 0.5
            builder.add(name, {"job": job, "zone": "z1"}, t, v, MetricKind.GAUGE)
            want[job].append((t, v))
    builder.add(name + "_other", {"job": "a", "zone": "z2"}, BASE, 1.0)
    return builder.build(), want


async def test_raw_range_by_labels(store: TimeSeriesStore) -> None:
    name = unique("cpu")
    batch, want = samples(name)
    await store.write(batch)
    got = await store.query_range({"__name__": name}, BASE, BASE + 19 * STEP)
    assert [s.labels for s in got] == [{"job": "a", "zone": "z1"}, {"job": "b", "zone": "z1"}]
    assert got[0].points() == want["a"]
    assert got[1].points() == want["b"]
    only_b = await store.query_range({"__name__": name, "job": "b"}, BASE + 5 * STEP, BASE + 7 * STEP)
    assert [s.points() for s in only_b] == [want["b"][5:8]]
    assert all(s.name == name for s in got)


async def test_stepped_range_takes_the_latest_sample_at_each_step(store: TimeSeriesStore) -> None:
    name = unique("mem")
    batch, _ = samples(name)
    await store.write(batch)
    got = await store.query_range({"__name__": name, "job": "a"}, BASE + 10_000, BASE + 70_000, step_ms=30_000)
    assert len(got) == 1
    # at +10 s the latest is the sample of +0 s; at +40 s, +30 s; at +70 s, +60 s
    assert got[0].points() == [(BASE + 10_000, 0.5), (BASE + 40_000, 2.5), (BASE + 70_000, 4.5)]


async def test_writing_again_keeps_one_sample_per_timestamp(store: TimeSeriesStore) -> None:
    name = unique("again")
    batch, want = samples(name)
    await store.write(batch)
    await store.write(batch)
    got = await store.query_range({"__name__": name, "job": "a"}, BASE, BASE + 19 * STEP)
    assert got[0].points() == want["a"]


async def test_stale_marker_ends_the_series(store: TimeSeriesStore) -> None:
    name = unique("up")
    builder = MetricBatchBuilder()
    for i, value in enumerate([1.0, 1.0, 1.0, STALE]):
        builder.add(name, {"job": "a"}, BASE + i * STEP, value)
    await store.write(builder.build())
    raw = await store.query_range({"__name__": name}, BASE, BASE + 5 * STEP)
    assert raw[0].points() == [(BASE, 1.0), (BASE + STEP, 1.0), (BASE + 2 * STEP, 1.0)]
    stepped = await store.query_range({"__name__": name}, BASE, BASE + 5 * STEP, step_ms=STEP)
    assert [t for t, _ in stepped[0].points()] == [BASE, BASE + STEP, BASE + 2 * STEP]
    assert not any(math.isnan(v) for _, v in stepped[0].points())


async def test_label_values(store: TimeSeriesStore) -> None:
    name = unique("lv")
    batch, _ = samples(name)
    await store.write(batch)
    assert await store.label_values("job", {"__name__": name}) == ["a", "b"]
    assert await store.label_values("zone", {"__name__": name + "_other"}) == ["z2"]


async def test_no_match_is_empty(store: TimeSeriesStore) -> None:
    assert await store.query_range({"__name__": unique("nothing")}, BASE, BASE + STEP) == []


@pytest.mark.unit
def test_registry_knows_every_scheme() -> None:
    assert TSDB_BACKENDS.schemes == ["prometheus", "sqlite", "victoriametrics"]


@pytest.mark.unit
def test_remote_write_request_is_sorted_and_complete() -> None:
    from aiops_common.tsdb.prometheus import PrometheusStore, selector

    builder = MetricBatchBuilder()
    builder.add("x", {"zone": "z", "job": "j"}, 2_000, 2.0)
    builder.add("x", {"zone": "z", "job": "j"}, 1_000, 1.0)
    builder.add("y", {}, 1_000, STALE)
    store = PrometheusStore("prometheus://127.0.0.1:1")
    (request,) = store.write_requests(builder.build())
    first, second = request.timeseries
    assert [(lb.name, lb.value) for lb in first.labels] == [("__name__", "x"), ("job", "j"), ("zone", "z")]
    assert [(s.timestamp, s.value) for s in first.samples] == [(1_000, 1.0), (2_000, 2.0)]
    assert np.float64(second.samples[0].value).view(np.uint64) == STALE_NAN_BITS
    assert selector({"__name__": 'a"b', "job": "x"}) == '{__name__="a\\"b",job="x"}'
