"""Telemetry in, anomaly out: one ``aiops up`` takes samples through ingestion, windows and the cascade.

A client posts three hours of 10-second samples of one series (a daily-like wave with
noise, and one minute far off it) to the JSON metrics API, in time order and in the
past, as an agent catching up would. The stream layer closes 10-second windows and
their 1-minute roll-ups; the detection layer watches the 1-minute windows. Exactly
the odd minute comes out on ``anomalies``, with its band and every tier's evidence.
"""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest
from aiops_common.testing.eventually import scaled
from aiops_common.topics import Topics

from .conftest import StartPlatform, aiops, until_caught_up

pytestmark = pytest.mark.functional

MINUTES = 180
ODD_MINUTE = 150  # past the cold start (AIOPS_DETECT_MIN_HISTORY=60 one-minute windows)


def samples() -> tuple[int, list[dict[str, object]]]:
    """Start (ms, on a minute boundary) and the samples, six per minute."""
    now_ms = int(time.time() * 1000)
    start_ms = (now_ms - (MINUTES + 5) * 60_000) // 60_000 * 60_000
    rng = np.random.default_rng(3)
    t = np.arange(MINUTES * 6)
    values = 50.0 + 10.0 * np.sin(2 * np.pi * t / 360.0) + rng.normal(0.0, 0.5, t.size)
    values[ODD_MINUTE * 6 : ODD_MINUTE * 6 + 6] += 40.0
    out = [
        {
            "name": "checkout_latency_ms",
            "labels": {"service": "checkout"},
            "value": float(v),
            "timestamp": start_ms + 10_000 * int(i),
        }
        for i, v in zip(t, values, strict=True)
    ]
    return start_ms, out


def test_a_sample_stream_becomes_exactly_one_anomaly(start_platform: StartPlatform) -> None:
    platform = start_platform("--no-host-metrics", AIOPS_DETECT_MIN_HISTORY="60")
    start_ms, rows = samples()
    # Timestamps in milliseconds since the epoch are accepted as numbers.
    for first in range(0, len(rows), 120):  # 20 minutes per request
        response = httpx.post(
            platform.http_url + "/api/v1/metrics/write", json={"samples": rows[first : first + 120]}, timeout=30
        )
        assert response.status_code == 200, response.text

    tail = aiops(
        "tail", "anomalies", "--from-beginning", "-n", "1", "--idle-timeout", f"{scaled(120):g}",
        env=platform.env, timeout=180,
    )  # fmt: skip
    assert tail.returncode == 0 and tail.stdout, tail.stderr + platform.log.read_text()[-3000:]
    # The first one is out; read them all once the windows and the detector have taken every record in.
    until_caught_up(platform, Topics.METRICS_RAW, Topics.FEATURES)
    everything = aiops(
        "tail", "anomalies", "--from-beginning", "--idle-timeout", f"{scaled(15):g}", env=platform.env, timeout=60
    )
    anomalies = [json.loads(line) for line in everything.stdout.splitlines()]
    assert len(anomalies) == 1, everything.stdout
    (anomaly,) = anomalies
    assert anomaly["series_name"] == "checkout_latency_ms" and anomaly["labels"]["service"] == "checkout"
    assert anomaly["detector"] == "cascade"
    odd_start = (start_ms + ODD_MINUTE * 60_000) / 1000
    assert anomaly["window_start"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(odd_start))
    assert anomaly["window_end"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(odd_start + 60))
    assert anomaly["value"] > anomaly["upper"] > anomaly["lower"]
    assert {"basic", "agile", "robust"} <= set(anomaly["evidence"])
    assert anomaly["severity"] in {"major", "critical"}
