"""The executors a worker runs with, built from its settings (``AIOPS_ACTION_KUBE*``, ``_SCRIPT_*``, ``_HTTP_*``)."""

from __future__ import annotations

from aiops_action.executors import Executor, Executors, HttpExecutor, ScriptExecutor
from aiops_action.settings import ActionSettings

__all__ = ["executors_from_settings"]


def executors_from_settings(settings: ActionSettings) -> Executors:
    """HTTP and script executors always; the Kubernetes one as ``action_kube`` says (none: not configured)."""
    kinds: list[Executor] = [
        HttpExecutor(verify=settings.action_http_verify_tls),
        ScriptExecutor(
            memory_bytes=settings.action_script_memory_bytes, allowed_dirs=settings.action_script_dirs or None
        ),
    ]
    if settings.action_kube != "none":
        from aiops_action.executors.kubernetes import KubernetesExecutor  # the kubernetes client: the action extra

        if settings.action_kube == "kubeconfig":
            kinds.append(KubernetesExecutor.from_kubeconfig(settings.action_kube_config, settings.action_kube_context))
        elif settings.action_kube == "in_cluster":
            kinds.append(KubernetesExecutor.in_cluster())
        else:
            if not settings.action_kube_host:
                raise ValueError("AIOPS_ACTION_KUBE=host needs AIOPS_ACTION_KUBE_HOST (https://host:6443)")
            token = settings.action_kube_token
            kinds.append(
                KubernetesExecutor.for_host(
                    settings.action_kube_host,
                    token=None if token is None else token.get_secret_value(),
                    ca_cert=settings.action_kube_ca_cert,
                )
            )
    return Executors(*kinds)
