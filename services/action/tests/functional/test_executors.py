"""Kubernetes and HTTP executors against local servers, and the contract every executor kind keeps."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
from aiohttp import web
from aiops_action.executors import Executor, Executors, HttpExecutor, ScriptExecutor, Step, StepResult
from aiops_action.executors.kubernetes import KubernetesExecutor

pytestmark = pytest.mark.functional

#: The Kubernetes release whose OpenAPI schemas every object the fake API server stores must satisfy.
K8S_VERSION = "1.30.0"
NS = "shop"
UID = "0b6d7c3e-1111-4c4c-8a8a-000000000001"
OTHER_UID = "0b6d7c3e-2222-4c4c-8a8a-000000000002"
FIXED_NOW = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)


def _template(image: str, pod_hash: str | None = None, note: str | None = None) -> dict[str, Any]:
    labels = {"app": "checkout", **({"pod-template-hash": pod_hash} if pod_hash else {})}
    metadata: dict[str, Any] = {"labels": labels}
    if note:
        metadata["annotations"] = {"shop.example/note": note}
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
    }


def _replica_set(name: str, revision: int, image: str, owner_uid: str, note: str | None = None) -> dict[str, Any]:
    pod_hash = name.rsplit("-", 1)[1]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"rs-{name}",
            "labels": {"app": "checkout", "pod-template-hash": pod_hash},
            "annotations": {"deployment.kubernetes.io/revision": str(revision), "shop.example/change": name},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "checkout",
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "checkout", "pod-template-hash": pod_hash}},
            "template": _template(image, pod_hash, note),
        },
    }


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason}
    return web.json_response({**body, "code": code}, status=code)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902, the operations an executor may send (add, replace, remove, test)."""
    if not isinstance(operations, list):
        raise ValueError("a JSON patch is a list of operations")
    document = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or set(operation) - {"op", "path", "value"}:
            raise ValueError(f"malformed operation {operation!r}")
        op, path = operation.get("op"), operation.get("path")
        if op not in {"add", "replace", "remove", "test"} or not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"unsupported operation {operation!r}")
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
        node = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op == "test":
            if node[last] != operation["value"]:
                raise ValueError(f"test failed at {path}")
        elif op == "remove":
            del node[last]
        elif op == "replace" and last not in node:
            raise ValueError(f"replace of missing {path}")
        else:
            node[last] = copy.deepcopy(operation["value"])
    return document


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in re.split(r",(?![^(]*\))", selector) if selector else []:
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            values = {v.strip() for v in m[3].split(",")}
            if (labels.get(m[1]) in values) != (m[2] == "in"):
                return False
        elif m := re.fullmatch(r"([\w./-]+)(!=|==|=)([\w./-]*)", term):
            if (labels.get(m[1]) == m[3]) != (m[2] != "!="):
                return False
        elif m := re.fullmatch(r"(!?)([\w./-]+)", term):
            if (m[2] in labels) == bool(m[1]):
                return False
        else:
            raise ValueError(f"bad selector term {term!r}")
    return True


@dataclass
class FakeKubernetesApi:
    """The endpoints the Kubernetes executor calls, state in memory; every object it would store is validated
    against the Kubernetes OpenAPI schemas, so a malformed patch is a 422, as on a real API server."""

    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    replica_sets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    forbidden_namespaces: set[str] = field(default_factory=set)
    conflicting: set[str] = field(default_factory=set)
    hanging_namespaces: set[str] = field(default_factory=set)
    token: str | None = None
    requests: list[tuple[str, str, str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    version: int = 100

    def snapshot(self) -> str:
        return json.dumps([self.deployments.items(), self.replica_sets.items(), self.nodes.items()], default=list)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        apps = "/apis/apps/v1/namespaces/{ns}"
        app.router.add_get(apps + "/deployments/{name}", self._get_deployment)
        app.router.add_patch(apps + "/deployments/{name}", self._patch_deployment)
        app.router.add_get(apps + "/deployments/{name}/scale", self._get_scale)
        app.router.add_patch(apps + "/deployments/{name}/scale", self._patch_scale)
        app.router.add_get(apps + "/replicasets", self._list_replica_sets)
        app.router.add_get("/api/v1/nodes/{name}", self._get_node)
        app.router.add_patch("/api/v1/nodes/{name}", self._patch_node)
        return app

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Any:
        body = await request.text() if request.can_read_body else ""
        self.requests.append((request.method, request.path, request.query_string, json.loads(body) if body else None))
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        dry_run = request.query.getall("dryRun", [])
        if dry_run not in ([], ["All"]):
            return _status(400, "BadRequest", f"invalid dryRun {dry_run}")
        if request.query.get("fieldValidation", "Strict") not in {"Strict", "Warn", "Ignore"}:
            return _status(400, "BadRequest", "invalid fieldValidation")
        namespace = request.match_info.get("ns", "")
        if namespace in self.hanging_namespaces:
            await self.release.wait()
        if namespace in self.forbidden_namespaces:
            return _status(403, "Forbidden", f'cannot {request.method.lower()} in the namespace "{namespace}"')
        return await handler(request)

    def _validated(self, obj: dict[str, Any]) -> web.Response | None:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            self.rejected.append(str(exc).splitlines()[0])
            return _status(422, "Invalid", f"{obj.get('kind')} is invalid: {str(exc).splitlines()[0]}")
        return None

    async def _patched(self, request: web.Request, current: dict[str, Any]) -> dict[str, Any] | web.Response:
        content_type = request.headers.get("Content-Type", "")
        body = json.loads(await request.text())
        try:
            if content_type == "application/merge-patch+json":
                if not isinstance(body, dict):
                    raise ValueError("a merge patch is an object")
                patched = _merge_patch(copy.deepcopy(current), body)
            elif content_type == "application/json-patch+json":
                patched = _json_patch(current, body)
            else:
                return _status(415, "UnsupportedMediaType", f"unsupported patch type {content_type!r}")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return _status(422, "Invalid", f"the patch cannot be applied: {exc}")
        if not isinstance(patched, dict) or patched.get("metadata", {}).get("name") != current["metadata"]["name"]:
            return _status(422, "Invalid", "the patch changes the object's name or kind")
        return patched

    def _store(self, request: web.Request, store: dict[Any, dict[str, Any]], key: Any, obj: dict[str, Any]) -> None:
        if request.query.get("dryRun") == "All":
            return
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        store[key] = obj

    def _deployment(self, request: web.Request) -> dict[str, Any] | None:
        return self.deployments.get((request.match_info["ns"], request.match_info["name"]))

    async def _get_deployment(self, request: web.Request) -> web.Response:
        deployment = self._deployment(request)
        if deployment is None:
            return _status(404, "NotFound", f'deployments.apps "{request.match_info["name"]}" not found')
        return web.json_response(deployment)

    async def _patch_deployment(self, request: web.Request) -> web.Response:
        current = self._deployment(request)
        if current is None:
            return _status(404, "NotFound", f'deployments.apps "{request.match_info["name"]}" not found')
        if request.match_info["name"] in self.conflicting:
            return _status(409, "Conflict", "the object has been modified; please apply your changes to the latest")
        patched = await self._patched(request, current)
        if isinstance(patched, web.Response):
            return patched
        if invalid := self._validated(patched):
            return invalid
        if patched["spec"]["template"] != current["spec"]["template"]:
            patched["metadata"]["generation"] = current["metadata"]["generation"] + 1
        self._store(request, self.deployments, (request.match_info["ns"], request.match_info["name"]), patched)
        return web.json_response(patched)

    def _scale_of(self, deployment: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": deployment["metadata"]["name"],
                "namespace": deployment["metadata"]["namespace"],
                "uid": deployment["metadata"]["uid"],
                "resourceVersion": deployment["metadata"]["resourceVersion"],
            },
            "spec": {"replicas": deployment["spec"]["replicas"]},
            "status": {"replicas": deployment["status"]["replicas"], "selector": "app=checkout"},
        }

    async def _get_scale(self, request: web.Request) -> web.Response:
        deployment = self._deployment(request)
        if deployment is None:
            return _status(404, "NotFound", f'deployments.apps "{request.match_info["name"]}" not found')
        return web.json_response(self._scale_of(deployment))

    async def _patch_scale(self, request: web.Request) -> web.Response:
        deployment = self._deployment(request)
        if deployment is None:
            return _status(404, "NotFound", f'deployments.apps "{request.match_info["name"]}" not found')
        patched = await self._patched(request, self._scale_of(deployment))
        if isinstance(patched, web.Response):
            return patched
        updated = copy.deepcopy(deployment)
        updated["spec"]["replicas"] = patched["spec"].get("replicas")
        if invalid := self._validated(patched) or self._validated(updated):
            return invalid
        self._store(request, self.deployments, (request.match_info["ns"], request.match_info["name"]), updated)
        return web.json_response(patched)

    async def _list_replica_sets(self, request: web.Request) -> web.Response:
        selector = request.query.get("labelSelector", "")
        try:
            items = [
                rs
                for (ns, _), rs in sorted(self.replica_sets.items())
                if ns == request.match_info["ns"] and _selector_matches(selector, rs["metadata"]["labels"])
            ]
        except ValueError as exc:
            return _status(400, "BadRequest", str(exc))
        listing = {"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {"resourceVersion": "1"}}
        return web.json_response({**listing, "items": items})

    async def _get_node(self, request: web.Request) -> web.Response:
        node = self.nodes.get(request.match_info["name"])
        if node is None:
            return _status(404, "NotFound", f'nodes "{request.match_info["name"]}" not found')
        return web.json_response(node)

    async def _patch_node(self, request: web.Request) -> web.Response:
        current = self.nodes.get(request.match_info["name"])
        if current is None:
            return _status(404, "NotFound", f'nodes "{request.match_info["name"]}" not found')
        patched = await self._patched(request, current)
        if isinstance(patched, web.Response):
            return patched
        if invalid := self._validated(patched):
            return invalid
        self._store(request, self.nodes, request.match_info["name"], patched)
        return web.json_response(patched)


def _seeded() -> FakeKubernetesApi:
    api = FakeKubernetesApi(token="t0ken")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "checkout",
            "namespace": NS,
            "uid": UID,
            "resourceVersion": "7",
            "generation": 3,
            "labels": {"app": "checkout"},
            "annotations": {
                "deployment.kubernetes.io/revision": "2",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "shop.example/change": "checkout-7f9c",
            },
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": _template("shop/checkout:1.1"),
        },
        "status": {"replicas": 3, "readyReplicas": 3},
    }
    api.deployments[(NS, "checkout")] = deployment
    for rs in (
        _replica_set("checkout-5d4b", 1, "shop/checkout:1.0", UID, note="stable"),
        _replica_set("checkout-7f9c", 2, "shop/checkout:1.1", UID),
        # Same labels, another owner and a higher revision: a rollback must not pick it.
        _replica_set("checkout-9a9a", 9, "evil/checkout:6.6", OTHER_UID),
    ):
        api.replica_sets[(NS, rs["metadata"]["name"])] = rs
    api.nodes["node-a"] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-a", "uid": "node-a-uid", "resourceVersion": "3", "labels": {"zone": "a"}},
        "spec": {"podCIDR": "10.0.1.0/24"},
    }
    for obj in [*api.deployments.values(), *api.replica_sets.values(), *api.nodes.values()]:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)  # the seed itself is well-formed
    return api


async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


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
