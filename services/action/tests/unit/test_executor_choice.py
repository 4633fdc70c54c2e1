"""Executors chosen by kind, and the checks each executor makes before any I/O."""

from __future__ import annotations

from typing import Any

import pytest
from aiops_action.executors import Executor, Executors, HttpExecutor, ScriptExecutor, Step, UnknownKindError
from aiops_action.executors.kubernetes import KubernetesExecutor

pytestmark = pytest.mark.unit


@pytest.fixture
def kubernetes() -> Any:
    # Nothing listens there, and nothing is sent: every step below is refused before a request.
    executor = KubernetesExecutor.for_host("http://127.0.0.1:9")
    yield executor
    executor.close()


def test_every_kind_is_an_executor_and_chosen_by_its_kind(kubernetes: KubernetesExecutor) -> None:
    http, script = HttpExecutor(), ScriptExecutor()
    executors = Executors(kubernetes, http, script)
    assert executors.kinds == ["http", "kubernetes", "script"]
    for executor in (kubernetes, http, script):
        assert isinstance(executor, Executor)
        assert executors.executor_for(executor.kind) is executor
    with pytest.raises(UnknownKindError, match="no executor for steps of kind 'ssh'; configured: http, kubernetes"):
        executors.executor_for("ssh")
    with pytest.raises(ValueError, match="two executors of kind 'http'"):
        Executors(http, HttpExecutor())
    executors.close()  # closes the Kubernetes client; the others hold nothing


async def test_a_step_of_an_unknown_kind_is_a_failed_result() -> None:
    executors = Executors(HttpExecutor())
    step = Step("page", "pager", "send", {})
    for result in (await executors.dry_run(step), await executors.execute(step)):
        assert result.step == "page" and not result.ok
        assert result.summary == "no executor for steps of kind 'pager'; configured: http"


async def test_executors_dispatch_by_kind() -> None:
    executors = Executors(HttpExecutor(), ScriptExecutor())
    result = await executors.dry_run(Step("ping", "http", "GET", {"url": "https://status.example.org/health"}))
    assert result.ok and result.summary == "would send GET https://status.example.org/health"


@pytest.mark.parametrize(
    ("method", "arguments", "expected"),
    [
        ("GET", {"url": "file:///etc/passwd"}, "must be an http:// or https:// address"),
        ("GET", {"url": "gopher://x"}, "must be an http:// or https:// address"),
        ("GET", {"url": "http://"}, "must be an http:// or https:// address"),
        ("GET", {"url": "http://a b"}, "without spaces or control characters"),
        ("GET", {"url": 7}, "url must be a string"),
        ("TRACE", {"url": "http://a"}, "unknown method 'TRACE'"),
        ("GET", {"url": "http://a", "headers": {"X-A": "1\r\nX-Injected: 1"}}, "header X-A must be a one-line string"),
        ("GET", {"url": "http://a", "headers": {"Bad Name": "1"}}, "invalid header name 'Bad Name'"),
        ("GET", {"url": "http://a", "headers": ["X-A: 1"]}, "headers must be a mapping"),
        ("POST", {"url": "http://a", "body": {"n": float("nan")}}, "body is not a JSON value"),
        ("POST", {"url": "http://a", "body": {"s": {1, 2}}}, "body is not a JSON value"),
    ],
)
async def test_http_refuses_bad_requests_before_sending(method: str, arguments: dict[str, Any], expected: str) -> None:
    executor = HttpExecutor()
    step = Step("call", "http", method, arguments)
    for result in (await executor.dry_run(step), await executor.execute(step)):
        assert not result.ok and expected in result.summary, result.summary


async def test_http_dry_run_hides_secrets() -> None:
    headers = {"Authorization": "Bearer abc", "X-Api-Key": "k1", "Cookie": "s=1", "X-Team": "shop"}
    step = Step("call", "http", "delete", {"url": "https://api.example.org/v1/flags/7", "headers": headers})
    result = await HttpExecutor().dry_run(step)
    assert result.ok and result.summary == "would send DELETE https://api.example.org/v1/flags/7"
    assert result.details["headers"] == {
        "Authorization": "<hidden>",
        "X-Api-Key": "<hidden>",
        "Cookie": "<hidden>",
        "X-Team": "shop",
    }
    assert "abc" not in result.output and "k1" not in result.output
    with_password = Step("call", "http", "GET", {"url": "https://ops:pa55@api.example.org/x"})
    shown = await HttpExecutor().dry_run(with_password)
    assert shown.summary == "would send GET https://ops:<hidden>@api.example.org/x" and "pa55" not in shown.output


@pytest.mark.parametrize(
    ("action", "arguments", "expected"),
    [
        ("scale", {"namespace": "shop", "deployment": "checkout", "replicas": True}, "replicas must be a whole number"),
        (
            "scale",
            {"namespace": "shop", "deployment": "checkout", "replicas": 2**31},
            "replicas must be a whole number",
        ),
        ("scale", {"namespace": "Shop", "deployment": "checkout", "replicas": 1}, "namespace must be"),
        ("rollback", {"namespace": "shop", "deployment": "a;b"}, "deployment must be a Kubernetes object name"),
        ("rollout_restart", {"namespace": "shop"}, "deployment must be a Kubernetes object name, not None"),
        ("cordon", {"node": "$(id)"}, "node must be a Kubernetes object name"),
        ("drain", {"node": "n"}, "unknown kubernetes action 'drain'"),
    ],
)
async def test_kubernetes_refuses_bad_steps_before_any_request(
    kubernetes: KubernetesExecutor, action: str, arguments: dict[str, Any], expected: str
) -> None:
    step = Step("k8s", "kubernetes", action, arguments)
    for result in (await kubernetes.dry_run(step), await kubernetes.execute(step)):
        assert not result.ok and expected in result.summary, result.summary
