"""``aiops replay``: a CSV file through the running platform, and the same anomalies as the NAB benchmark's cascade.

The functional test is the README's quick start as written: a default ``aiops up``
(the host-metrics self-report on, so every partition's event time is already now, and
the default age limit), then a replay of a two-week NAB file (5-minute samples):
ingestion, 10-second windows rolled up to 1-minute ones on the series' own clock
(one in five carries data, the others are ``absent``), and the detection service,
which settles the series' reporting step at 5 minutes. What comes out on
``anomalies`` is exactly what the benchmark's cascade
(``Cascade.for_sampling_step(300)``) alerts on with the service's own rules: the alert
score, the cold start and the refractory windows.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from aiops_cli.replay import ReplayError, read_series, sample_requests, shift_to_end
from aiops_detection.detectors.calibration import RunningMax
from aiops_detection.detectors.cascade import Cascade
from aiops_detection.service_settings import DetectionServiceSettings

from .conftest import StartPlatform, aiops

NAB_FILE = "data/realKnownCause/ec2_request_latency_system_failure.csv"


def write(tmp_path: Path, text: str, name: str = "series.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.unit
def test_times_in_any_common_form_become_milliseconds_and_rows_without_values_are_skipped(tmp_path: Path) -> None:
    iso = write(tmp_path, "timestamp,value\n2014-03-07 03:46:00,2\n2014-03-07 03:41:00,1\n2014-03-07 03:51:00,\n")
    (series,) = read_series(iso, labels={"service": "web"})
    assert series.name == "series" and series.labels == {"service": "web"}
    assert series.ts_ms.tolist() == [1394163660000, 1394163960000]  # sorted by time
    assert series.values.tolist() == [1.0, 2.0] and series.skipped == 1
    seconds = write(tmp_path, "t,value\n1394163660,1\n", "s.csv")
    millis = write(tmp_path, "t,value\n1394163660000,1\n", "ms.csv")
    assert read_series(seconds, "t")[0].ts_ms.tolist() == read_series(millis, "t")[0].ts_ms.tolist() == [1394163660000]


@pytest.mark.unit
def test_several_value_columns_are_several_series_named_after_the_file_or_the_name(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,cpu,mem.used,host\n2024-05-01T12:00:00Z,1,2,a\n", "node-7.csv")
    assert [s.name for s in read_series(path)] == ["node_7_cpu", "node_7_mem_used"]  # "host" is not numeric
    assert [s.name for s in read_series(path, value_columns=["cpu"], name="load")] == ["load"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("time,value\n2024-05-01T12:00:00Z,1\n", {}, "no column 'timestamp'"),
        ("timestamp,value\n2024-05-01T12:00:00Z,1\n", {"value_columns": ["cpu"]}, "no column 'cpu'"),
        ("timestamp,host\n2024-05-01T12:00:00Z,a\n", {}, "no numeric column"),
        ("timestamp,value\nyesterday-ish,1\n", {}, "does not hold times"),
    ],
)
def test_a_file_that_is_not_series_is_a_clear_error(
    tmp_path: Path, text: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ReplayError, match=message):
        read_series(write(tmp_path, text), **kwargs)  # type: ignore[arg-type]


@pytest.mark.unit
def test_times_move_by_whole_minutes_so_the_last_sample_lands_now_and_go_out_in_time_order(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,a,b\n1000,1,10\n1300,2,20\n1600,3,30\n")
    now_ms = 1_700_000_123_456
    shifted = shift_to_end(read_series(path), now_ms)
    assert all(((s.ts_ms - np.array([1000, 1300, 1600]) * 1000) % 60_000 == 0).all() for s in shifted)
    assert shifted[0].ts_ms[-1] // 60_000 == now_ms // 60_000
    bodies = list(sample_requests(shifted, batch=4))
    assert [len(b) for b in bodies] == [4, 2]
    rows = [row for body in bodies for row in body]
    assert [row["timestamp"] for row in rows] == sorted(row["timestamp"] for row in rows)  # type: ignore[type-var]
    assert [(row["name"], row["value"]) for row in rows[:2]] == [("series_a", 1.0), ("series_b", 10.0)]


def expected_alerts(values: np.ndarray) -> list[tuple[int, float]]:
    """(index, score) the service raises on ``values``: the benchmark's cascade under the service's alert rules."""
    settings = DetectionServiceSettings()
    cascade = Cascade.for_sampling_step(300.0)
    recent = RunningMax(settings.detect_refractory_points)
    out = []
    for i, v in enumerate(values.tolist()):
        score = cascade.verdict_one(v).score
        cascade.learn_one(v)
        previous = recent.maximum
        recent.push(score)
        warm = i + 1 >= settings.detect_min_history
        if warm and score >= settings.detect_alert_score and (previous is None or score > previous):
            out.append((i, score))
    return out


@pytest.mark.functional
def test_a_replayed_nab_file_raises_the_benchmark_cascades_alerts(start_platform: StartPlatform, nab_dir: Path) -> None:
    # Default settings, as `make run`: the host's own metrics hold every partition's clock at now.
    platform = start_platform()
    host_features = aiops(
        "tail", "features", "--from-beginning", "-n", "1", "--idle-timeout", "90", env=platform.env, timeout=120
    )
    assert host_features.returncode == 0 and host_features.stdout, host_features.stderr  # windows closed at now
    path = nab_dir / NAB_FILE
    sent = aiops("replay", str(path), "--label", "service=web", env=platform.env, timeout=120)
    assert sent.returncode == 0, sent.stderr
    assert "4032 samples acknowledged" in sent.stdout

    # The replay moved the file to its own "now": take the shift it applied from the first time it printed,
    # not from this process's clock, which may have passed a minute boundary since.
    printed_first = re.search(r" from (\S+Z)", sent.stdout)
    assert printed_first is not None, sent.stdout
    first_ms = int(datetime.fromisoformat(printed_first.group(1)).timestamp() * 1000)
    (original,) = read_series(path)
    (series,) = shift_to_end([original], first_ms + int(original.ts_ms[-1] - original.ts_ms[0]))
    assert int(series.ts_ms[0]) == first_ms
    expected = expected_alerts(series.values)
    assert len(expected) >= 5  # the file has anomalies to find

    tail = aiops(
        "tail", "anomalies", "--from-beginning", "-n", str(len(expected)), "--idle-timeout", "180",
        env=platform.env, timeout=240,
    )  # fmt: skip
    assert tail.returncode == 0, tail.stderr + platform.log.read_text()[-3000:]
    # Everything, once the pipeline has had time to say more than expected.
    everything = aiops("tail", "anomalies", "--from-beginning", "--idle-timeout", "15", env=platform.env, timeout=60)
    anomalies = [json.loads(line) for line in everything.stdout.splitlines()]
    starts = {int(t) // 60_000 * 60_000: i for i, t in enumerate(series.ts_ms.tolist())}
    found = [(starts[int(datetime.fromisoformat(a["window_start"]).timestamp() * 1000)], a["score"]) for a in anomalies]
    assert [i for i, _ in found] == [i for i, _ in expected]
    # Tier 3 is a float32 torch model: its scores may differ in the last bits between processes.
    assert [s for _, s in found] == pytest.approx([s for _, s in expected], abs=1e-6)
    assert all(a["series_name"] == "ec2_request_latency_system_failure" for a in anomalies)
    assert all(a["labels"]["service"] == "web" and a["detector"] == "cascade" for a in anomalies)


@pytest.mark.functional
def test_a_refused_request_stops_the_replay_with_the_servers_message(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    platform = start_platform("--no-host-metrics")
    future_s = int(time.time()) + 86_400
    path = write(tmp_path, f"timestamp,value\n{future_s},1\n{future_s + 60},2\n")
    refused = aiops("replay", str(path), "--keep-time", env=platform.env)
    assert refused.returncode == 1
    assert "answered 400: request refused" in refused.stderr and "ahead of the server clock" in refused.stderr
    assert "(AIOPS_INGEST_MAX_FUTURE_SKEW_S=600)" in refused.stderr, "the whole refusal, with the setting to change"
    missing = aiops("replay", str(tmp_path / "nope.csv"), env=platform.env)
    assert missing.returncode == 1 and "cannot read" in missing.stderr
