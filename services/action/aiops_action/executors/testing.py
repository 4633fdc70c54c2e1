"""A local Kubernetes API server for tests: the endpoints the Kubernetes executor calls, with a seeded shop.

Every object it would store is validated against the Kubernetes OpenAPI schemas (``kubernetes-validate``, a
development dependency), so a malformed patch is a 422, as on a real API server.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
from aiohttp import web

__all__ = [
    "FIXED_NOW",
    "K8S_VERSION",
    "NS",
    "OTHER_UID",
    "UID",
    "FakeKubernetesApi",
    "replica_set",
    "seeded_api",
    "serve",
    "template",
]

#: The Kubernetes release whose OpenAPI schemas every object the fake API server stores must satisfy.
K8S_VERSION = "1.30.0"
NS = "shop"
UID = "0b6d7c3e-1111-4c4c-8a8a-000000000001"
OTHER_UID = "0b6d7c3e-2222-4c4c-8a8a-000000000002"
FIXED_NOW = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)


def template(image: str, pod_hash: str | None = None, note: str | None = None) -> dict[str, Any]:
    labels = {"app": "checkout", **({"pod-template-hash": pod_hash} if pod_hash else {})}
    metadata: dict[str, Any] = {"labels": labels}
    if note:
        metadata["annotations"] = {"shop.example/note": note}
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
    }


def replica_set(name: str, revision: int, image: str, owner_uid: str, note: str | None = None) -> dict[str, Any]:
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
            "template": template(image, pod_hash, note),
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


def seeded_api() -> FakeKubernetesApi:
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
            "template": template("shop/checkout:1.1"),
        },
        "status": {"replicas": 3, "readyReplicas": 3},
    }
    api.deployments[(NS, "checkout")] = deployment
    for rs in (
        replica_set("checkout-5d4b", 1, "shop/checkout:1.0", UID, note="stable"),
        replica_set("checkout-7f9c", 2, "shop/checkout:1.1", UID),
        # Same labels, another owner and a higher revision: a rollback must not pick it.
        replica_set("checkout-9a9a", 9, "evil/checkout:6.6", OTHER_UID),
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


async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
