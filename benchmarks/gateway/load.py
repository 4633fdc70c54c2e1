"""The load generator, run as its own process: ``concurrency`` clients on keep-alive connections, each sending its
next request as soon as the previous answer is read (a closed loop), for a warm-up and then a measured period.

``python -m benchmarks.gateway.load SPEC.json`` prints one JSON line: requests, errors, requests/s and latency
percentiles of the measured period. Each request picks one of the spec's paths at random (seeded); ``{n}`` in a path
becomes a number no other request of the run used.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

__all__ = ["run"]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    url: str = spec["url"].rstrip("/")
    paths: list[str] = spec["paths"]
    concurrency: int = spec["concurrency"]
    warmup_s: float = spec["warmup_s"]
    duration_s: float = spec["duration_s"]
    headers = {"Authorization": f"Bearer {spec['key']}", "Accept": "application/json"}
    rng = random.Random(spec.get("seed", 1))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    bytes_read = 0
    total = 0
    measuring = False
    stop = False

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal bytes_read, total
        while not stop:
            path = paths[rng.randrange(len(paths))]
            if "{n}" in path:  # a query no earlier request sent: the answer cache cannot serve it
                path = path.replace("{n}", str(total))
            started = time.perf_counter()
            try:
                async with session.get(url + path, headers=headers) as response:
                    body = await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                body, status = b"", type(exc).__name__
            elapsed = time.perf_counter() - started
            total += 1
            if measuring:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
                bytes_read += len(body)

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(concurrency)]
        await asyncio.sleep(warmup_s)  # the warm-up runs for this long: the clients keep sending meanwhile
        warm_total = total
        measuring = True
        started = time.perf_counter()
        await asyncio.sleep(duration_s)  # the measured period
        measuring = False
        measured_s = time.perf_counter() - started
        stop = True
        await asyncio.gather(*tasks)
    ms = np.array(latencies) * 1000.0
    ok = statuses.get("200", 0)
    return {
        "concurrency": concurrency,
        "duration_s": measured_s,
        "requests": len(latencies),
        "requests_total": total,
        "requests_warmup": warm_total,
        "errors": len(latencies) - ok,
        "statuses": statuses,
        "rps": len(latencies) / measured_s if measured_s else 0.0,
        "p50_ms": float(np.percentile(ms, 50)) if ms.size else None,
        "p95_ms": float(np.percentile(ms, 95)) if ms.size else None,
        "p99_ms": float(np.percentile(ms, 99)) if ms.size else None,
        "max_ms": float(ms.max()) if ms.size else None,
        "mean_bytes": bytes_read / len(latencies) if latencies else 0.0,
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    print(json.dumps(asyncio.run(run(spec))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
