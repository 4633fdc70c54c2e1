"""Kubernetes and HTTP executors against local servers, and the contract every executor kind keeps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiops_action.executors import Executor, Executors, HttpExecutor, ScriptExecutor, Step, StepResult
from aiops_action.executors.kubernetes import KubernetesExecutor
from aiops_action.executors.testing import (
    FIXED_NOW,
    NS,
    FakeKubernetesApi,
)
from aiops_action.executors.testing import seeded_api as _seeded
from aiops_action.executors.testing import serve as _serve
from aiops_action.executors.testing import template as _template

pytestmark = pytest.mark.functional


@pytest.fixture
async def kube() -> AsyncIterator[tuple[FakeKubernetesApi, KubernetesExecutor]]:
    api = _seeded()
    async for url in _serve(api.app()):
        executor = KubernetesExecutor.for_host(url, token="t0ken", now=lambda: FIXED_NOW)
        try:
            yield api, executor
        finally:
            api.release.set()
            executor.close()


def _k8s(action: str, timeout_s: float = 20.0, **arguments: Any) -> Step:
    return Step(name=f"k8s-{action}", kind="kubernetes", action=action, arguments=arguments, timeout_s=timeout_s)


def _patches(api: FakeKubernetesApi) -> list[tuple[str, str, Any]]:
    return [(path, query, body) for method, path, query, body in api.requests if method == "PATCH"]


async def test_scale_patches_the_scale_subresource_and_reports_replicas_before_and_after(
    kube: tuple[FakeKubernetesApi, KubernetesExecutor],
) -> None:
    api, executor = kube
    step = _k8s("scale", namespace=NS, deployment="checkout", replicas=5)
    before = api.snapshot()

    dry = await executor.dry_run(step)
    assert dry.ok, dry.summary
    assert dry.dry_run and dry.summary == f"would scale deployment {NS}/checkout from 3 to 5 replicas"
    assert api.snapshot() == before
    assert _patches(api)[-1][1] == "dryRun=All&fieldValidation=Strict"
    assert json.loads(dry.output) == {"spec": {"replicas": 5}}  # the change, as the approver sees it

    result = await executor.execute(step)
    assert result.ok, result.summary
    assert result.step == "k8s-scale" and not result.dry_run
    assert result.details["replicas_before"] == 3 and result.details["replicas_after"] == 5
    assert api.deployments[(NS, "checkout")]["spec"]["replicas"] == 5
    assert _patches(api)[-1] == (
        f"/apis/apps/v1/namespaces/{NS}/deployments/checkout/scale",
        "fieldValidation=Strict",
        {"spec": {"replicas": 5}},
    )
    assert api.rejected == []


async def test_rollout_restart_stamps_the_pod_template_as_kubectl_does(
    kube: tuple[FakeKubernetesApi, KubernetesExecutor],
) -> None:
    api, executor = kube
    step = _k8s("rollout_restart", namespace=NS, deployment="checkout")
    before = api.snapshot()

    dry = await executor.dry_run(step)
    assert dry.ok, dry.summary
    assert "would restart deployment shop/checkout" in dry.summary and "2026-03-01T12:30:05Z" in dry.summary
    assert api.snapshot() == before

    result = await executor.execute(step)
    assert result.ok, result.summary
    deployment = api.deployments[(NS, "checkout")]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"kubectl.kubernetes.io/restartedAt": "2026-03-01T12:30:05Z"}
    assert deployment["metadata"]["generation"] == 4  # a new rollout
    assert deployment["spec"]["template"]["spec"] == _template("shop/checkout:1.1")["spec"]
    assert result.details["restarted_at_before"] is None
    assert api.rejected == []


async def test_rollback_restores_the_previous_revisions_template_as_rollout_undo_does(
    kube: tuple[FakeKubernetesApi, KubernetesExecutor],
) -> None:
    api, executor = kube
    step = _k8s("rollback", namespace=NS, deployment="checkout")
    before = api.snapshot()

    dry = await executor.dry_run(step)
    assert dry.ok, dry.summary
    assert dry.summary == (
        "would roll back deployment shop/checkout from revision 2 to revision 1 "
        "(images app: shop/checkout:1.1 -> shop/checkout:1.0)"
    )
    assert api.snapshot() == before

    result = await executor.execute(step)
    assert result.ok, result.summary
    deployment = api.deployments[(NS, "checkout")]
    # The previous ReplicaSet's template, without its pod-template-hash label (the controller adds it back).
    assert deployment["spec"]["template"] == _template("shop/checkout:1.0", note="stable")
    assert deployment["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "2",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "shop.example/change": "checkout-5d4b",
    }
    assert deployment["spec"]["replicas"] == 3
    assert result.details["revision_before"] == 2 and result.details["revision_to"] == 1
    (_, query, patch) = _patches(api)[-1]
    assert query == "fieldValidation=Strict"
    assert [op["path"] for op in patch] == ["/spec/template", "/metadata/annotations"]
    list_queries = [q for _, p, q, _ in api.requests if p.endswith("/replicasets")]
    assert list_queries == ["labelSelector=app%3Dcheckout"] * 2
    assert api.rejected == []

    again = await executor.execute(step)  # revision 2 is still the newest ReplicaSet: the template is already 1's
    assert again.ok and "already runs the template of revision 1" in again.summary
    assert again.details["changed"] is False


async def test_rollback_of_a_deployment_without_annotations_adds_them(
    kube: tuple[FakeKubernetesApi, KubernetesExecutor],
) -> None:
    api, executor = kube
    del api.deployments[(NS, "checkout")]["metadata"]["annotations"]
    result = await executor.execute(_k8s("rollback", namespace=NS, deployment="checkout"))
    assert result.ok, result.summary
    deployment = api.deployments[(NS, "checkout")]
    assert deployment["metadata"]["annotations"] == {"shop.example/change": "checkout-5d4b"}
    assert deployment["spec"]["template"] == _template("shop/checkout:1.0", note="stable")


async def test_rollback_without_a_previous_revision_fails_clearly(
    kube: tuple[FakeKubernetesApi, KubernetesExecutor],
) -> None:
    api, executor = kube
    del api.replica_sets[(NS, "checkout-5d4b")]
    result = await executor.execute(_k8s("rollback", namespace=NS, deployment="checkout"))
    assert not result.ok
    assert result.summary == "rollback: no previous revision of deployment shop/checkout to roll back to"
    assert _patches(api) == []


async def test_cordon_marks_the_node_unschedulable(kube: tuple[FakeKubernetesApi, KubernetesExecutor]) -> None:
    api, executor = kube
    step = _k8s("cordon", node="node-a")
    before = api.snapshot()

    dry = await executor.dry_run(step)
    assert dry.ok and dry.summary == "would cordon node node-a (spec.unschedulable=true)"
    assert api.snapshot() == before

    result = await executor.execute(step)
    assert result.ok, result.summary
    assert api.nodes["node-a"]["spec"] == {"podCIDR": "10.0.1.0/24", "unschedulable": True}
    assert result.details == {
        "node": "node-a",
        "unschedulable_before": False,
        "unschedulable_after": True,
        "patch": {"spec": {"unschedulable": True}},
    }
    assert json.loads(dry.output) == json.loads(result.output) == {"spec": {"unschedulable": True}}
    again = await executor.execute(step)
    assert again.ok and again.summary == "node node-a is already cordoned: nothing to do"
    assert api.rejected == []


async def test_the_fake_api_server_refuses_what_the_schemas_refuse(
    kube: tuple[FakeKubernetesApi, KubernetesExecutor],
) -> None:
    api, executor = kube
    base = executor._api_client.configuration.host  # the fake's address, as the executor uses it
    path = f"{base}/apis/apps/v1/namespaces/{NS}/deployments/checkout"
    merge = {"Content-Type": "application/merge-patch+json", "Authorization": "Bearer t0ken"}
    before = api.snapshot()
    async with httpx.AsyncClient(trust_env=False) as http:
        snake = await http.patch(path, content=json.dumps({"spec": {"min_ready_seconds": 5}}), headers=merge)
        typed = await http.patch(path + "/scale", content=json.dumps({"spec": {"replicas": "5"}}), headers=merge)
        strategic = {**merge, "Content-Type": "application/strategic-merge-patch+json"}
        other = await http.patch(path, content=json.dumps({"spec": {"replicas": 5}}), headers=strategic)
        anonymous = await http.get(path)
    assert (snake.status_code, typed.status_code, other.status_code, anonymous.status_code) == (422, 422, 415, 401)
    assert "min_ready_seconds" in snake.json()["message"]
    assert api.snapshot() == before


async def test_an_answer_the_client_cannot_read_fails_the_step(
    kube: tuple[FakeKubernetesApi, KubernetesExecutor],
) -> None:
    api, executor = kube
    rs = api.replica_sets[(NS, "checkout-5d4b")]
    rs["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    result = await executor.execute(_k8s("rollback", namespace=NS, deployment="checkout"))
    assert not result.ok
    assert result.summary.startswith("rollback: the API server's answer is not a valid object")
    assert api.deployments[(NS, "checkout")]["spec"]["template"] == _template("shop/checkout:1.1")


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (_k8s("scale", namespace=NS, deployment="cart", replicas=2), "answered 404 not found"),
        (_k8s("cordon", node="node-z"), 'answered 404 not found: nodes "node-z" not found'),
        (_k8s("rollout_restart", namespace="payments", deployment="checkout"), "answered 403 forbidden"),
        (_k8s("scale", namespace=NS, deployment="checkout", replicas=-1), "replicas must be a whole number"),
        (_k8s("scale", namespace=NS, deployment="checkout", replicas="5"), "replicas must be a whole number"),
        (_k8s("scale", namespace=NS, deployment="../etc", replicas=1), "deployment must be a Kubernetes object name"),
        (_k8s("delete", namespace=NS, deployment="checkout"), "unknown kubernetes action 'delete'"),
    ],
)
async def test_kubernetes_failures_are_results(
    kube: tuple[FakeKubernetesApi, KubernetesExecutor], step: Step, expected: str
) -> None:
    api, executor = kube
    api.forbidden_namespaces.add("payments")
    before = api.snapshot()
    for result in (await executor.dry_run(step), await executor.execute(step)):
        assert not result.ok and expected in result.summary, result.summary
    assert api.snapshot() == before


async def test_a_conflict_and_a_hanging_api_server_fail_the_step(
    kube: tuple[FakeKubernetesApi, KubernetesExecutor],
) -> None:
    api, executor = kube
    api.conflicting.add("checkout")
    conflict = await executor.execute(_k8s("rollout_restart", namespace=NS, deployment="checkout"))
    assert not conflict.ok and "answered 409 conflict" in conflict.summary
    api.hanging_namespaces.add("slow")
    hung = await executor.execute(_k8s("scale", timeout_s=0.5, namespace="slow", deployment="checkout", replicas=1))
    assert not hung.ok
    assert hung.summary == "scale: the API server did not answer within 0.5s"


async def test_an_unreachable_api_server_fails_the_step() -> None:
    executor = KubernetesExecutor.for_host("http://127.0.0.1:9")  # discard port: nothing listens
    try:
        result = await executor.execute(_k8s("cordon", node="node-a"))
    finally:
        executor.close()
    assert not result.ok and result.summary.startswith("cordon: cannot reach the API server")


# HTTP ------------------------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    seen: list[tuple[str, str, dict[str, str], bytes]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    seen: list[tuple[str, str, dict[str, str], bytes]] = []
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        if request.path == "/big":
            return web.Response(body=b"x" * 300_000)
        if request.path == "/fail":
            return web.json_response({"error": "overloaded"}, status=503)
        if request.path == "/redirect":
            raise web.HTTPFound("/elsewhere")
        if request.path == "/hang":
            await release.wait()
        return web.json_response({"done": True, "method": request.method}, status=202)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async for url in _serve(app):
        try:
            yield Receiver(url, seen)
        finally:
            release.set()


def _http(method: str, url: str, timeout_s: float = 20.0, **arguments: Any) -> Step:
    return Step(name="call", kind="http", action=method, arguments={"url": url, **arguments}, timeout_s=timeout_s)


async def test_http_sends_the_request_and_keeps_status_and_body(receiver: Receiver) -> None:
    step = _http("POST", receiver.url + "/flags?x=1", headers={"X-Team": "shop"}, body={"feature": "off", "n": 2})
    result = await HttpExecutor().execute(step)
    assert result.ok and result.summary == f"POST {receiver.url}/flags?x=1: 202"
    assert json.loads(result.output) == {"done": True, "method": "POST"}
    assert result.details["status"] == 202
    [(method, path, headers, body)] = receiver.seen
    assert (method, path, json.loads(body)) == ("POST", "/flags?x=1", {"feature": "off", "n": 2})
    assert headers["X-Team"] == "shop" and headers["Content-Type"] == "application/json"


async def test_http_non_2xx_timeouts_and_big_bodies(receiver: Receiver) -> None:
    executor = HttpExecutor(max_body_bytes=1000)
    failed = await executor.execute(_http("GET", receiver.url + "/fail"))
    assert not failed.ok and failed.details["status"] == 503 and "overloaded" in failed.output
    redirected = await executor.execute(_http("GET", receiver.url + "/redirect"))
    assert not redirected.ok and redirected.details["status"] == 302
    big = await executor.execute(_http("GET", receiver.url + "/big"))
    assert big.ok and big.output == "x" * 1000
    assert big.details["body_bytes"] == 300_000 and big.details["body_dropped_bytes"] == 299_000
    hung = await executor.execute(_http("GET", receiver.url + "/hang", timeout_s=0.5))
    assert not hung.ok and hung.summary == f"GET {receiver.url}/hang: no answer within 0.5s"


async def test_http_dry_run_describes_and_sends_nothing(receiver: Receiver) -> None:
    step = _http("put", receiver.url + "/x", headers={"Authorization": "Bearer s3cret", "X-Team": "a"}, body=[1])
    result = await HttpExecutor().dry_run(step)
    assert result.ok and result.summary == f"would send PUT {receiver.url}/x with a 3-byte JSON body"
    assert "s3cret" not in result.output and "Authorization: <hidden>" in result.output
    assert result.output.endswith("\n\n[1]")
    assert receiver.seen == []


# The contract every executor kind keeps ----------------------------------------------------------------------------


@dataclass
class Case:
    """One executor with a step that succeeds, one that fails, and a view of the state its steps change."""

    executor: Executor
    good: Step
    bad: Step
    state: Callable[[], Any]


@pytest.fixture(params=["kubernetes", "http", "script"])
async def case(
    request: pytest.FixtureRequest,
    kube: tuple[FakeKubernetesApi, KubernetesExecutor],
    receiver: Receiver,
    tmp_path: Path,
) -> Case:
    if request.param == "kubernetes":
        api, executor = kube
        return Case(
            executor,
            _k8s("scale", namespace=NS, deployment="checkout", replicas=4),
            _k8s("scale", namespace=NS, deployment="missing", replicas=4),
            api.snapshot,
        )
    if request.param == "http":
        return Case(
            HttpExecutor(),
            _http("POST", receiver.url + "/ok", body={"a": 1}),
            _http("POST", receiver.url + "/fail"),
            lambda: len(receiver.seen),
        )
    marker = tmp_path / "ran"
    script = tmp_path / "touch.sh"
    script.write_text(f'#!/bin/sh\necho ran > "{marker}"\nexit "$1"\n')
    script.chmod(0o755)
    run = {"argv": [str(script), "0"]}
    return Case(
        ScriptExecutor(),
        Step("script-step", "script", "run", run),
        Step("script-step", "script", "run", {"argv": [str(script), "3"]}),
        marker.exists,
    )


async def test_every_executor_keeps_the_contract(case: Case) -> None:
    executor = case.executor
    assert isinstance(executor, Executor)
    assert Executors(executor).executor_for(case.good.kind) is executor
    before = case.state()
    for step in (case.good, case.bad):
        dry = await executor.dry_run(step)
        assert isinstance(dry, StepResult) and dry.step == step.name and dry.dry_run and dry.summary
        assert case.state() == before  # a dry run changes nothing
    good = await executor.execute(case.good)
    assert isinstance(good, StepResult) and good.step == case.good.name and good.ok and not good.dry_run
    assert case.state() != before
    bad = await executor.execute(case.bad)
    assert isinstance(bad, StepResult) and bad.step == case.bad.name and not bad.ok and bad.summary
    nonsense = Step("nonsense", case.good.kind, "no-such-action", {"argv": 5, "url": 5, "namespace": 5})
    for outcome in (await executor.dry_run(nonsense), await executor.execute(nonsense)):
        assert outcome.step == "nonsense" and not outcome.ok
