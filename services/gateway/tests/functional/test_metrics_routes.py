"""Range queries and label values through the API, against the gateway's time-series store."""

from __future__ import annotations

import time

import numpy as np
import pytest
from aiops_common.schemas import SeriesMeta
from aiops_common.schemas.metrics import MetricBatch
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway

pytestmark = pytest.mark.functional

A = SeriesMeta("cpu", {"host": "a", "service": "api"})
B = SeriesMeta("cpu", {"host": "b", "service": "api"})
MEM = SeriesMeta("mem", {"host": "a", "service": "db"})


async def _write(running: RunningGateway, end_s: int) -> list[int]:
    """10 samples a minute apart per series, ending at ``end_s``; their timestamps (ms)."""
    ts = [(end_s - 60 * (9 - i)) * 1000 for i in range(10)]
    series = [A, B, MEM]
    sid = np.repeat(np.arange(3, dtype=np.uint32), 10)
    values = np.concatenate([np.arange(10.0), 100 + np.arange(10.0), 500 + np.arange(10.0)])
    await running.gateway.tsdb.write(MetricBatch(series, sid, np.tile(np.asarray(ts, np.int64), 3), values))
    return ts


async def test_range_queries(running_gateway: RunningGateway) -> None:
    now_s = int(time.time())
    ts = await _write(running_gateway, now_s)
    async with await running_gateway.client(Role.VIEWER) as viewer:
        # Default range: the last hour; every sample of both cpu series.
        both = await viewer.get("/api/v1/metrics/query", params={"name": "cpu"})
        assert both.status_code == 200, both.text
        found = both.json()["series"]
        assert [s["labels"]["host"] for s in found] == ["a", "b"] and found[0]["name"] == "cpu"
        assert found[0]["points"] == [[t, float(i)] for i, t in enumerate(ts)]

        one = await viewer.get(
            "/api/v1/metrics/query",
            params=[("name", "cpu"), ("match", "host=b"), ("match", "service=api"), ("start", str(now_s - 150))],
        )
        assert [p[1] for p in one.json()["series"][0]["points"]] == [107.0, 108.0, 109.0]
        assert len(one.json()["series"]) == 1

        stepped = await viewer.get(
            "/api/v1/metrics/query",
            params={"name": "mem", "start": str(ts[0] // 1000), "end": str(ts[-1] // 1000), "step": 120},
        )
        points = stepped.json()["series"][0]["points"]
        assert [p[0] for p in points] == ts[::2] and [p[1] for p in points] == [500.0, 502.0, 504.0, 506.0, 508.0]

        iso = await viewer.get(
            "/api/v1/metrics/query", params={"name": "mem", "start": "2h", "end": "2020-01-01T00:00:00Z"}
        )
        assert iso.status_code == 400 and "start must not be after end" in iso.json()["error"]
        assert (await viewer.get("/api/v1/metrics/query", params={"name": "nope"})).json() == {"series": []}

        too_many = await viewer.get("/api/v1/metrics/query", params={"name": "cpu", "start": "7d", "step": 10})
        assert too_many.status_code == 400 and "more than 11000" in too_many.json()["error"]
        for bad in ({"name": "cpu", "match": "host"}, {"name": "cpu", "match": "1x=a"}, {"name": "cpu", "end": "soon"}):
            refused = await viewer.get("/api/v1/metrics/query", params=bad)
            assert refused.status_code == 400, (bad, refused.text)
        assert (await viewer.get("/api/v1/metrics/query")).status_code == 422
        assert (await viewer.get("/api/v1/metrics/query", params={"name": "cpu", "step": 0})).status_code == 422

        hosts = await viewer.get("/api/v1/metrics/labels/host")
        assert hosts.json() == {"label": "host", "values": ["a", "b"]}
        names = await viewer.get("/api/v1/metrics/labels/__name__")
        assert names.json()["values"] == ["cpu", "mem"]
        db_hosts = await viewer.get("/api/v1/metrics/labels/service", params={"match": "host=a"})
        assert db_hosts.json()["values"] == ["api", "db"]
        only_mem = await viewer.get("/api/v1/metrics/labels/service", params={"name": "mem"})
        assert only_mem.json()["values"] == ["db"]
        assert (await viewer.get("/api/v1/metrics/labels/bad-label")).status_code == 400
    async with await running_gateway.client(None) as anonymous:
        assert (await anonymous.get("/api/v1/metrics/query", params={"name": "cpu"})).status_code == 401
