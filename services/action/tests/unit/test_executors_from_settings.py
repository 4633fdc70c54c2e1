"""Which executors a worker gets from its settings."""

from __future__ import annotations

import pytest
from aiops_action.executors.configured import executors_from_settings
from aiops_action.settings import ActionSettings

pytestmark = pytest.mark.unit


def test_http_and_scripts_always_kubernetes_when_configured() -> None:
    plain = executors_from_settings(ActionSettings())
    assert plain.kinds == ["http", "script"]
    with_cluster = executors_from_settings(
        ActionSettings(action_kube="host", action_kube_host="https://127.0.0.1:6443", action_kube_token="t")
    )
    try:
        assert with_cluster.kinds == ["http", "kubernetes", "script"]
    finally:
        with_cluster.close()


def test_a_host_without_its_address_is_refused() -> None:
    with pytest.raises(ValueError, match="AIOPS_ACTION_KUBE_HOST"):
        executors_from_settings(ActionSettings(action_kube="host"))
