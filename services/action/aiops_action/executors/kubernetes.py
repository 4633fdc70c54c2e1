"""Kubernetes steps (scale, rollout restart, roll back, cordon) through the official client, each with a dry run."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from aiops_action.executors._protocol import Step, StepResult

__all__ = ["KubernetesExecutor"]

#: Deployment annotations ``kubectl rollout undo`` keeps from the Deployment rather than the ReplicaSet.
_ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
_REVISION = "deployment.kubernetes.io/revision"
_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_HASH_LABEL = "pod-template-hash"
_MERGE_PATCH = "application/merge-patch+json"
_JSON_PATCH = "application/json-patch+json"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_REPLICAS = 2**31 - 1
_REASONS = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    415: "unsupported patch type",
    422: "invalid",
    429: "too many requests",
    500: "API server error",
    503: "API server unavailable",
}


class _StepFailedError(Exception):
    """A step that cannot go on (bad arguments, nothing to roll back to): becomes ``ok=False``."""


class KubernetesExecutor:
    """Runs ``kubernetes`` steps against one cluster; every request carries the step's remaining time as timeout.

    Build it with :meth:`from_kubeconfig`, :meth:`in_cluster` or :meth:`for_host` (a plain API address, e.g. a test
    server on loopback). A dry run reads what exists, sends the change with ``dryRun=All`` so the API server checks
    it, and says exactly what would change; nothing is stored.
    """

    kind = "kubernetes"

    def __init__(self, api_client: client.ApiClient, *, now: Callable[[], datetime] | None = None) -> None:
        self._api_client = api_client
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._now = now or (lambda: datetime.now(UTC))

    @classmethod
    def from_kubeconfig(
        cls, path: Path | None = None, context: str | None = None, *, now: Callable[[], datetime] | None = None
    ) -> KubernetesExecutor:
        """From a kubeconfig file (``None``: the client's default, as kubectl finds it) and optionally a context."""
        configuration = _configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]  # the client ships without annotations
            config_file=str(path) if path else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
        return cls(client.ApiClient(configuration), now=now)

    @classmethod
    def in_cluster(cls, *, now: Callable[[], datetime] | None = None) -> KubernetesExecutor:
        """From the service account Kubernetes mounts into the pod this runs in."""
        configuration = _configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(client.ApiClient(configuration), now=now)

    @classmethod
    def for_host(
        cls,
        host: str,
        *,
        token: str | None = None,
        verify_ssl: bool = True,
        ca_cert: Path | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> KubernetesExecutor:
        """From an explicit API server address (``https://host:6443``), with an optional bearer token."""
        configuration = _configuration()
        configuration.host = host.rstrip("/")
        configuration.verify_ssl = verify_ssl
        if ca_cert is not None:
            configuration.ssl_ca_cert = str(ca_cert)
        if token is not None:
            configuration.api_key = {"authorization": token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        return cls(client.ApiClient(configuration), now=now)

    def close(self) -> None:
        self._api_client.close()  # type: ignore[no-untyped-call]  # the client ships without annotations

    def _plain(self, model: Any) -> dict[str, Any]:
        """A client model as the API's JSON (camelCase keys), as patches carry it."""
        plain: dict[str, Any] = self._api_client.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
        return dict(plain)

    async def dry_run(self, step: Step) -> StepResult:
        return await self._run(step, dry_run=True)

    async def execute(self, step: Step) -> StepResult:
        return await self._run(step, dry_run=False)

    async def _run(self, step: Step, *, dry_run: bool) -> StepResult:
        # The client is synchronous: one worker thread per step, and a deadline every request's timeout is cut
        # from, so a step never goes on changing the cluster after it has been reported as timed out.
        deadline = time.monotonic() + step.timeout_s
        return await asyncio.to_thread(self._run_sync, step, dry_run, deadline)

    def _run_sync(self, step: Step, dry_run: bool, deadline: float) -> StepResult:
        actions: dict[str, Callable[[Step, bool, _Deadline], tuple[str, Mapping[str, Any]]]] = {
            "scale": self._scale,
            "rollout_restart": self._rollout_restart,
            "rollback": self._rollback,
            "cordon": self._cordon,
        }
        action = actions.get(step.action)
        if action is None:
            return _failed(step, dry_run, f"unknown kubernetes action {step.action!r}; known: {', '.join(actions)}")
        try:
            summary, details = action(step, dry_run, _Deadline(deadline))
        except _StepFailedError as exc:
            return _failed(step, dry_run, str(exc))
        except ApiException as exc:
            status = int(exc.status or 0)
            reason = _REASONS.get(status, exc.reason or "error")
            message = _api_message(exc)
            text = f"{step.action}: the API server answered {status} {reason}" if status else f"{step.action}: {reason}"
            return _failed(step, dry_run, f"{text}: {message}" if message else text, {"status": status})
        except urllib3.exceptions.NewConnectionError as exc:  # a ConnectTimeoutError subclass, yet no timeout
            return _failed(step, dry_run, f"{step.action}: cannot reach the API server: {exc}"[:500])
        except urllib3.exceptions.TimeoutError:
            return _failed(step, dry_run, f"{step.action}: the API server did not answer within {step.timeout_s:g}s")
        except urllib3.exceptions.HTTPError as exc:
            return _failed(step, dry_run, f"{step.action}: cannot reach the API server: {exc}"[:500])
        except ValueError as exc:  # the client's models refused the answer (pydantic's errors are ValueErrors)
            first = str(exc).splitlines()[:3]
            return _failed(
                step, dry_run, f"{step.action}: the API server's answer is not a valid object: {' '.join(first)}"[:500]
            )
        # The patch as sent: what an approver reads under the summary, and what the audit log keeps.
        output = json.dumps(details["patch"], indent=2, sort_keys=True) if "patch" in details else ""
        return StepResult(step=step.name, ok=True, dry_run=dry_run, summary=summary, output=output, details=details)

    def _scale(self, step: Step, dry_run: bool, deadline: _Deadline) -> tuple[str, Mapping[str, Any]]:
        namespace, name = _namespace(step), _name(step, "deployment")
        replicas = step.arguments.get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or not 0 <= replicas <= _MAX_REPLICAS:
            raise _StepFailedError(f"scale: replicas must be a whole number from 0, not {replicas!r}")
        patch = {"spec": {"replicas": replicas}}
        scale = self._apps.read_namespaced_deployment_scale(name, namespace, _request_timeout=deadline.left())
        before = int(scale.spec.replicas or 0) if scale.spec else 0
        patched = self._apps.patch_namespaced_deployment_scale(
            name,
            namespace,
            patch,
            dry_run="All" if dry_run else None,
            field_validation="Strict",
            _content_type=_MERGE_PATCH,
            _request_timeout=deadline.left(),
        )
        after = int(patched.spec.replicas or 0) if patched.spec else 0
        what = f"deployment {namespace}/{name} from {before} to {after} replicas"
        if before == after:
            what = f"deployment {namespace}/{name} at {after} replicas (unchanged)"
        details = {
            "namespace": namespace,
            "deployment": name,
            "replicas_before": before,
            "replicas_after": after,
            "patch": patch,
        }
        return (f"would scale {what}" if dry_run else f"scaled {what}"), details

    def _rollout_restart(self, step: Step, dry_run: bool, deadline: _Deadline) -> tuple[str, Mapping[str, Any]]:
        namespace, name = _namespace(step), _name(step, "deployment")
        deployment = self._apps.read_namespaced_deployment(name, namespace, _request_timeout=deadline.left())
        template = deployment.spec.template if deployment.spec else None
        before = ((template.metadata.annotations if template and template.metadata else None) or {}).get(_RESTARTED_AT)
        # kubectl stamps the pod template with the time (RFC 3339, seconds): a changed template is a new rollout.
        restarted_at = self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"spec": {"template": {"metadata": {"annotations": {_RESTARTED_AT: restarted_at}}}}}
        self._apps.patch_namespaced_deployment(
            name,
            namespace,
            body,
            dry_run="All" if dry_run else None,
            field_validation="Strict",
            _content_type=_MERGE_PATCH,
            _request_timeout=deadline.left(),
        )
        details = {
            "namespace": namespace,
            "deployment": name,
            "restarted_at_before": before,
            "restarted_at": restarted_at,
            "revision_before": _annotations(deployment.metadata).get(_REVISION),
            "patch": body,
        }
        what = f"deployment {namespace}/{name} (pod template annotation {_RESTARTED_AT}={restarted_at})"
        return (f"would restart {what}" if dry_run else f"restarted {what}"), details

    def _rollback(self, step: Step, dry_run: bool, deadline: _Deadline) -> tuple[str, Mapping[str, Any]]:
        namespace, name = _namespace(step), _name(step, "deployment")
        deployment = self._apps.read_namespaced_deployment(name, namespace, _request_timeout=deadline.left())
        if deployment.spec is None or deployment.spec.selector is None or deployment.metadata is None:
            raise _StepFailedError(f"rollback: deployment {namespace}/{name} has no selector")
        replica_sets = self._apps.list_namespaced_replica_set(
            namespace, label_selector=_selector(deployment.spec.selector), _request_timeout=deadline.left()
        )
        # Only the ReplicaSets this Deployment controls, as kubectl does: a selector may match others.
        owned: dict[int, Any] = {}
        for replica_set in replica_sets.items:
            refs = (replica_set.metadata.owner_references if replica_set.metadata else None) or []
            if not any(ref.controller and ref.uid == deployment.metadata.uid for ref in refs):
                continue
            revision = _annotations(replica_set.metadata).get(_REVISION, "")
            if revision.isdigit():
                owned[int(revision)] = replica_set
        if len(owned) < 2:
            raise _StepFailedError(f"rollback: no previous revision of deployment {namespace}/{name} to roll back to")
        current, previous = sorted(owned, reverse=True)[:2]
        template = self._plain(owned[previous].spec.template)
        labels = {k: v for k, v in (template.get("metadata") or {}).get("labels", {}).items() if k != _HASH_LABEL}
        template["metadata"] = {**(template.get("metadata") or {}), "labels": labels}
        current_template = self._plain(deployment.spec.template)
        details: dict[str, Any] = {
            "namespace": namespace,
            "deployment": name,
            "revision_before": current,
            "revision_to": previous,
            "template_before": current_template,
            "template_after": template,
        }
        if _without_hash(current_template) == template:
            details["changed"] = False
            return f"deployment {namespace}/{name} already runs the template of revision {previous}: skipped", details
        annotations = {k: v for k, v in _annotations(deployment.metadata).items() if k in _ANNOTATIONS_TO_SKIP}
        annotations.update(
            {k: v for k, v in _annotations(owned[previous].metadata).items() if k not in _ANNOTATIONS_TO_SKIP}
        )
        # kubectl's patch; "add" only where the Deployment has no annotations, since "replace" needs the member.
        annotations_op = "replace" if deployment.metadata.annotations is not None else "add"
        patch = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": annotations_op, "path": "/metadata/annotations", "value": annotations},
        ]
        self._apps.patch_namespaced_deployment(
            name,
            namespace,
            patch,
            dry_run="All" if dry_run else None,
            field_validation="Strict",
            _content_type=_JSON_PATCH,
            _request_timeout=deadline.left(),
        )
        details.update(changed=True, patch=patch)
        changes = _template_changes(current_template, template)
        what = f"deployment {namespace}/{name} from revision {current} to revision {previous} ({changes})"
        return (f"would roll back {what}" if dry_run else f"rolled back {what}"), details

    def _cordon(self, step: Step, dry_run: bool, deadline: _Deadline) -> tuple[str, Mapping[str, Any]]:
        node = step.arguments.get("node")
        if not isinstance(node, str) or not _DNS_SUBDOMAIN.match(node) or len(node) > 253:
            raise _StepFailedError(f"cordon: node must be a Kubernetes object name, not {node!r}")
        current = self._core.read_node(node, _request_timeout=deadline.left())
        before = bool(current.spec.unschedulable) if current.spec else False
        patch = {"spec": {"unschedulable": True}}
        details: dict[str, Any] = {"node": node, "unschedulable_before": before, "unschedulable_after": True}
        if before:
            return f"node {node} is already cordoned: nothing to do", details
        details["patch"] = patch
        self._core.patch_node(
            node,
            patch,
            dry_run="All" if dry_run else None,
            field_validation="Strict",
            _content_type=_MERGE_PATCH,
            _request_timeout=deadline.left(),
        )
        return (
            f"would cordon node {node}" if dry_run else f"cordoned node {node}"
        ) + " (spec.unschedulable=true)", details


class _Deadline:
    """The time a step has left, as the client's per-request timeout."""

    def __init__(self, at: float) -> None:
        self._at = at

    def left(self) -> float:
        left = self._at - time.monotonic()
        if left <= 0:
            raise urllib3.exceptions.TimeoutError("the step's time ran out between requests")
        return left


def _configuration() -> client.Configuration:
    configuration = client.Configuration()
    # One try per request: a retried write after a read timeout could apply twice, and retries would overrun the
    # step's time.
    configuration.retries = False
    return configuration


def _failed(step: Step, dry_run: bool, summary: str, details: Mapping[str, Any] | None = None) -> StepResult:
    return StepResult(step=step.name, ok=False, dry_run=dry_run, summary=summary, details=details or {})


def _namespace(step: Step) -> str:
    namespace = step.arguments.get("namespace", "default")
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace) or len(namespace) > 63:
        raise _StepFailedError(f"{step.action}: namespace must be a Kubernetes namespace name, not {namespace!r}")
    return namespace


def _name(step: Step, key: str) -> str:
    name = step.arguments.get(key)
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
        raise _StepFailedError(f"{step.action}: {key} must be a Kubernetes object name, not {name!r}")
    return name


def _annotations(metadata: Any) -> dict[str, str]:
    return dict((metadata.annotations if metadata is not None else None) or {})


def _selector(selector: client.V1LabelSelector) -> str:
    """A label selector as the list API takes it (``a=b,c in (d,e),!f``)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for expression in selector.match_expressions or []:
        values = ",".join(sorted(expression.values or []))
        parts.append(
            {
                "In": f"{expression.key} in ({values})",
                "NotIn": f"{expression.key} notin ({values})",
                "Exists": expression.key,
                "DoesNotExist": f"!{expression.key}",
            }[expression.operator]
        )
    return ",".join(parts)


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    metadata = dict(template.get("metadata") or {})
    metadata["labels"] = {k: v for k, v in (metadata.get("labels") or {}).items() if k != _HASH_LABEL}
    return {**template, "metadata": metadata}


def _template_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """The container images that change, the most telling difference for people; else the fields that differ."""
    images_before = _images(before)
    images_after = _images(after)
    changed = [
        f"{name}: {images_before.get(name)} -> {image}"
        for name, image in images_after.items()
        if images_before.get(name) != image
    ]
    if changed:
        return "images " + "; ".join(changed)
    fields = sorted(
        k
        for k in set(before.get("spec") or {}) | set(after.get("spec") or {})
        if (before.get("spec") or {}).get(k) != (after.get("spec") or {}).get(k)
    )
    return "pod spec fields " + ", ".join(fields) if fields else "pod template metadata"


def _images(template: Mapping[str, Any]) -> dict[str, str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return {str(c.get("name")): str(c.get("image")) for c in containers}


def _api_message(exc: ApiException) -> str:
    """The ``message`` of the API server's Status body, bounded; empty when there is none."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        message = body
    return str(message)[:500]
