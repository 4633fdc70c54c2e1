"""Prometheus and VictoriaMetrics as the TSDB: remote write 1.0 (protobuf + snappy) in, the HTTP query API out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import cramjam
import httpx
import numpy as np

from aiops_common.prompb.remote_pb2 import WriteRequest
from aiops_common.schemas.metrics import MetricBatch
from aiops_common.tsdb._protocol import Series

__all__ = ["PrometheusStore", "TsdbError", "selector"]

_WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


class TsdbError(RuntimeError):
    """The server refused a write or a query."""


def selector(matchers: Mapping[str, str]) -> str:
    """``{__name__="x",job="y"}``: names go in as a label, so any name (``red.error_rate``) can be selected."""
    if not matchers:
        raise ValueError("at least one matcher is needed")
    inner = ",".join(f"{k}={_quote(v)}" for k, v in sorted(matchers.items()))
    return f"{{{inner}}}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class PrometheusStore:
    """A :class:`~aiops_common.tsdb.TimeSeriesStore` on a Prometheus (``--web.enable-remote-write-receiver``)
    or VictoriaMetrics server: ``prometheus://host:port`` / ``victoriametrics://host:port``."""

    def __init__(self, url: str, timeout_s: float = 10.0, max_series_per_request: int = 5_000) -> None:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"TSDB URL names no host: {url!r}")
        self.url = url
        self.base_url = f"http://{parts.hostname}:{parts.port or 9090}{parts.path.rstrip('/')}"
        self.max_series_per_request = max_series_per_request
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)

    async def write(self, batch: MetricBatch) -> None:
        for request in self.write_requests(batch):
            body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
            response = await self._client.post("/api/v1/write", content=body, headers=_WRITE_HEADERS)
            if response.status_code >= 300:
                raise TsdbError(f"remote write refused ({response.status_code}): {response.text[:300]}")

    def write_requests(self, batch: MetricBatch) -> list[WriteRequest]:
        """The batch as remote-write requests: one time series per series, labels sorted, samples by time."""
        if len(batch) == 0:
            return []
        order = np.lexsort((batch.ts_ms, batch.sid))
        sid, ts, val = batch.sid[order], batch.ts_ms[order], batch.value[order]
        cuts = np.flatnonzero(np.diff(sid)) + 1
        starts = np.concatenate([[0], cuts]).tolist()
        ends = [*cuts.tolist(), int(sid.size)]
        requests: list[WriteRequest] = []
        request = WriteRequest()
        for lo, hi in zip(starts, ends, strict=True):
            if len(request.timeseries) >= self.max_series_per_request:
                requests.append(request)
                request = WriteRequest()
            meta = batch.series[int(sid[lo])]
            series = request.timeseries.add()
            for name, value in sorted([("__name__", meta.name), *meta.labels.items()]):
                label = series.labels.add()
                label.name, label.value = name, value
            for t, v in zip(ts[lo:hi].tolist(), val[lo:hi].tolist(), strict=True):
                sample = series.samples.add()
                sample.timestamp, sample.value = t, v
        requests.append(request)
        return requests

    async def query_range(
        self, matchers: Mapping[str, str], start_ms: int, end_ms: int, step_ms: int | None = None
    ) -> list[Series]:
        query = selector(matchers)
        if step_ms is None:
            # A range vector ending at end_ms holds the raw samples of (end - range, end].
            params: dict[str, Any] = {"query": f"{query}[{end_ms - start_ms + 1}ms]", "time": end_ms / 1000}
            data = await self._get("/api/v1/query", params)
        else:
            if step_ms <= 0:
                raise ValueError("step_ms must be positive")
            params = {"query": query, "start": start_ms / 1000, "end": end_ms / 1000, "step": step_ms / 1000}
            data = await self._get("/api/v1/query_range", params)
        out = []
        for item in data.get("result", []):
            labels = dict(item["metric"])
            name = labels.pop("__name__", "")
            points = [(round(float(t) * 1000), float(v)) for t, v in item.get("values", [])]
            points = [(t, v) for t, v in points if start_ms <= t <= end_ms and not math.isnan(v)]
            if points:
                out.append(
                    Series(
                        name,
                        labels,
                        np.array([t for t, _ in points], dtype=np.int64),
                        np.array([v for _, v in points], dtype=np.float64),
                    )
                )
        return sorted(out, key=lambda s: s.key)

    async def label_values(self, label: str, matchers: Mapping[str, str] | None = None) -> list[str]:
        params = {"match[]": selector(matchers)} if matchers else {}
        data = await self._get(f"/api/v1/label/{label}/values", params)
        return sorted(str(v) for v in data)

    async def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        response = await self._client.get(path, params=params)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 300 or body.get("status") != "success":
            raise TsdbError(f"{path} failed ({response.status_code}): {body.get('error') or response.text[:300]}")
        return body["data"]

    async def close(self) -> None:
        await self._client.aclose()
