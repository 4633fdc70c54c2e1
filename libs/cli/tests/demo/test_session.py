"""What the demo prepares for its platform: a fresh data folder, runbooks at the control API, the channels file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from aiops_cli.demo.session import (
    TOPOLOGY,
    DemoError,
    fresh_data_dir,
    min_history,
    platform_env,
    rollups,
    write_notify_file,
    write_runbooks,
)
from aiops_cli.settings import PlatformSettings

pytestmark = pytest.mark.unit


def test_a_demo_folder_is_emptied_and_any_other_refused(tmp_path: Path) -> None:
    folder = fresh_data_dir(tmp_path / "demo")
    (folder / "broker.log").write_text("old")
    assert list(fresh_data_dir(folder).iterdir()) == [folder / ".aiops-demo"]
    other = tmp_path / "real"
    other.mkdir()
    (other / "tsdb.sqlite").write_text("keep me")
    with pytest.raises(DemoError, match="not a demo's"):
        fresh_data_dir(other)
    assert (other / "tsdb.sqlite").read_text() == "keep me"


def test_runbooks_point_at_the_control_api_where_it_serves(tmp_path: Path) -> None:
    folder = write_runbooks(tmp_path / "runbooks", "http://127.0.0.1:23456")
    texts = {p.name: p.read_text() for p in folder.glob("*.yaml")}
    assert set(texts) == {"rollback-bad-deploy.yaml", "scale-out-slow.yaml", "restart-on-errors.yaml"}
    for text in texts.values():
        assert "http://127.0.0.1:23456/actions/" in text and ":4390" not in text
    runbook = yaml.safe_load(texts["scale-out-slow.yaml"])
    assert runbook["steps"][0]["arguments"]["body"] == {
        "service": {"param": "service"},
        "replicas": {"param": "replicas"},
    }


def test_the_channels_file_sends_everything_to_the_local_receiver(tmp_path: Path) -> None:
    path = write_notify_file(tmp_path / "notify.yaml", "http://127.0.0.1:5555", "key")
    config = yaml.safe_load(path.read_text())
    assert [(c["kind"], c["url"]) for c in config["channels"]] == [
        ("slack", "http://127.0.0.1:5555/slack"),
        ("webhook", "http://127.0.0.1:5555/webhook"),
    ]
    assert config["channels"][1]["secret"] == "key"
    assert path.stat().st_mode & 0o077 == 0


def test_the_topology_is_the_shop_s_call_graph() -> None:
    edges = {(d["from"], d["to"]) for d in TOPOLOGY["dependencies"]}
    assert edges == {
        ("frontend", "checkout"),
        ("checkout", "payment"),
        ("checkout", "inventory"),
        ("payment", "database"),
    }
    assert all(s["team"] and s["tier"] for s in TOPOLOGY["services"])


def test_a_runbook_check_holds_as_long_as_asked(tmp_path: Path) -> None:
    kept = write_runbooks(tmp_path / "kept", "http://127.0.0.1:1")
    assert all(yaml.safe_load(p.read_text())["verify"]["for_s"] == 30 for p in kept.glob("*.yaml"))
    quick = write_runbooks(tmp_path / "quick", "http://127.0.0.1:1", verify_for_s=0.0)
    for path in quick.glob("*.yaml"):
        runbook = yaml.safe_load(path.read_text())
        assert runbook["verify"]["for_s"] == 0.0 and runbook["verify"]["within_s"] == 180
        assert runbook["steps"][0]["arguments"]["url"] == "http://127.0.0.1:1/actions/" + path.stem.split("-")[0]


def test_detection_and_the_roll_ups_follow_the_history(tmp_path: Path) -> None:
    # Detection judges from the given live window after the history's.
    assert min_history(1800) == 184 and min_history(600, 2) == 62
    # A roll-up is computed only when the RCA's baseline (before its 5 minutes ahead of onset) holds five of its
    # windows: the default half hour keeps both, ten minutes only the minute's.
    assert rollups(1800) == [60, 300] and rollups(600) == [60] and rollups(360) == []
    env = platform_env(PlatformSettings(), tmp_path, tmp_path, tmp_path / "n.yaml", "http://c", "http://u", 600, 2)
    assert env["AIOPS_DETECT_MIN_HISTORY"] == "62" and env["AIOPS_STREAM_ROLLUPS"] == "[60]"
    default = platform_env(PlatformSettings(), tmp_path, tmp_path, tmp_path / "n.yaml", "http://c", "http://u")
    assert default["AIOPS_DETECT_MIN_HISTORY"] == "184" and default["AIOPS_STREAM_ROLLUPS"] == "[60, 300]"
