"""Settings of the action service (``AIOPS_ACTION_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from aiops_common.settings import CommonSettings
from pydantic import Field, SecretStr

__all__ = ["ActionSettings"]


class ActionSettings(CommonSettings):
    action_runbooks_dir: Path | None = None
    """Folder of runbook YAML files (every ``*.yaml``/``*.yml`` below it); unset: the runbooks shipped in the
    package (``aiops_action/runbooks/shipped``)."""
    action_kube: Literal["none", "kubeconfig", "in_cluster", "host"] = "none"
    """How the Kubernetes executor reaches the cluster: ``kubeconfig`` (``AIOPS_ACTION_KUBE_CONFIG``, or where kubectl
    looks), ``in_cluster`` (the pod's service account), ``host`` (``AIOPS_ACTION_KUBE_HOST`` with a bearer token);
    ``none``: runbooks with Kubernetes steps cannot run."""
    action_kube_config: Path | None = None
    action_kube_context: str | None = None
    action_kube_host: str = ""
    action_kube_token: SecretStr | None = None
    action_kube_ca_cert: Path | None = None
    action_script_dirs: list[Path] = Field(default_factory=list)
    """Folders script steps may run programs from; empty: any absolute path a runbook names."""
    action_script_memory_bytes: int = Field(default=512 * 1024 * 1024, ge=16 * 1024 * 1024)
    """Address-space limit of a script step."""
    action_http_verify_tls: bool = True
    """Check the certificates of HTTP steps' servers."""
    action_notify_file: Path | None = None
    """YAML of notification channels (Slack incoming webhooks, signed webhooks), routes (by service, team,
    severity) and escalation; unset: no notifications."""
    action_ui_url: str = "http://127.0.0.1:8080"
    """The operator UI's address, for links in notifications (approve an execution, open an incident)."""
    action_llm_url: str = ""
    """An OpenAI-compatible endpoint (Ollama, vLLM, DeepSeek: ``http://host:11434/v1``) that may enrich incident
    summaries; empty: the deterministic summary only."""
    action_llm_model: str = ""
    action_llm_api_key: SecretStr | None = None
    action_llm_timeout_s: float = 5.0
    """Longest an enrichment may take; the deterministic summary is used when it fails or is late."""

    # -- the approval policy ---------------------------------------------------------------------------------
    action_approval_ttl_s: float = Field(default=3600.0, gt=0)
    """How long a proposed execution waits for its approvals; then it expires and the incident escalates."""
    action_auto_approve_risks: list[Literal["low", "medium"]] = Field(default_factory=list)
    """Risks of runbooks the policy approves by itself (never with a high blast radius); empty: every execution
    needs a person (the default: trust is earned)."""
    action_progressive_after: int = Field(default=0, ge=0)
    """Progressive automation: after this many successful, person-approved executions of a runbook for a service
    in a row (no rollback, failure or interruption since), its next ones for that service are approved by the
    policy; a failure revokes it (the count starts again). 0: never."""
    action_high_blast_services: int = Field(default=3, ge=1)
    """A blast radius of this many services or more is high: two distinct approvers are needed."""
    action_high_blast_environments: list[str] = Field(default_factory=list)
    """Environments (the ``env``/``environment`` label or topology attribute, or the namespace) where every
    execution has a high blast radius, e.g. ``["production"]``."""
    action_blast_hops: int = Field(default=1, ge=0, le=5)
    """Callers this many hops up from a changed service are in its blast radius."""
    action_match_top: int = Field(default=3, ge=1, le=10)
    """Causes of an RCA result (best first) a runbook is matched against."""

    # -- execution and verification ---------------------------------------------------------------------------
    action_verify_poll_s: float = Field(default=5.0, gt=0)
    """How often running verifications read the TSDB (and pending approvals are checked for expiry)."""
    action_lease_s: float = Field(default=15.0, ge=1.0)
    """A running execution's worker renews its lease this often (a third of it); one whose lease ran out was
    left by a worker that stopped: a step it was running is in doubt and is never run again."""
