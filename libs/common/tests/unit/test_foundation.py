"""Topic table, backend registry, broker URLs and settings."""

from __future__ import annotations

import pytest
from aiops_common.broker import bootstrap_servers
from aiops_common.registry import BackendRegistry, UnknownBackendError
from aiops_common.settings import CommonSettings
from aiops_common.topics import ALL_TOPICS, Topics

pytestmark = pytest.mark.unit


def test_topic_table_is_consistent() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names)), "topic names are unique"
    assert {"metrics.raw", "logs.raw", "traces.raw", "alerts.raw", "changes", "features", "anomalies"} <= set(names)
    for spec in ALL_TOPICS:
        assert spec.partitions >= 1 and spec.retention.total_seconds() > 0
        assert spec.full_name("p.") == "p." + spec.name
    assert all(t.batched for t in (Topics.METRICS_RAW, Topics.LOGS_RAW, Topics.TRACES_RAW, Topics.FEATURES))
    assert Topics.METRICS_RAW.partitions > 1


def test_registry_picks_by_scheme_and_imports_lazily() -> None:
    registry: BackendRegistry[object] = BackendRegistry("thing")
    registry.register("memory", lambda url: ("memory", url))
    registry.register("json", "json:loads")
    assert registry.by_url("memory://x") == ("memory", "memory://x")
    assert registry.resolve("JSON://whatever") is __import__("json").loads
    assert registry.schemes == ["json", "memory"]
    with pytest.raises(UnknownBackendError, match="known schemes: json, memory"):
        registry.by_url("neo4j://db")


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("kafka://127.0.0.1:9092", ["127.0.0.1:9092"]),
        ("kafka://a:1;b:2", ["a:1", "b:2"]),
        ("kafka://a,b:2", ["a:9092", "b:2"]),
    ],
)
def test_bootstrap_servers(url: str, servers: list[str]) -> None:
    assert bootstrap_servers(url) == servers


@pytest.mark.parametrize("url", ["http://a:1", "kafka://", "a:9092"])
def test_bootstrap_servers_refuses_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="broker URL"):
        bootstrap_servers(url)


def test_settings_come_from_aiops_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPS_BROKER_URL", "kafka://k:9092")
    monkeypatch.setenv("AIOPS_TOPIC_PREFIX", "staging.")
    settings = CommonSettings()
    assert settings.require_broker_url() == "kafka://k:9092" and settings.topic_prefix == "staging."
    with pytest.raises(Exception, match="frozen"):
        settings.topic_prefix = "x"  # type: ignore[misc]
    monkeypatch.delenv("AIOPS_BROKER_URL")
    with pytest.raises(RuntimeError, match="AIOPS_BROKER_URL"):
        CommonSettings().require_broker_url()
