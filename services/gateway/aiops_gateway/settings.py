"""Settings of the gateway (``AIOPS_GATEWAY_*``)."""

from __future__ import annotations

from aiops_common.service import Endpoint
from aiops_common.settings import CommonSettings
from pydantic import Field, SecretStr

__all__ = ["GatewaySettings"]


class GatewaySettings(CommonSettings):
    gateway_host: str = "127.0.0.1"
    """Address the REST API and the UI listen on; ``0.0.0.0`` in a pod."""
    gateway_port: int = 8080
    gateway_public_url: str = ""
    """The address people reach the UI at (links in notifications); empty: ``http://HOST:PORT``."""
    gateway_open_reads: bool = False
    """Serve read routes without a key (every mutating route still needs one)."""
    gateway_cors_origins: list[str] = Field(default_factory=list)
    """Origins allowed to call the API from a browser (``["https://ops.example.com"]``); empty: same origin only."""
    gateway_rate_limit: str = "1200/minute"
    """Requests each API key or token may make (``limits`` notation: ``100/second``, ``1200/minute``)."""
    gateway_anonymous_rate_limit: str = "300/minute"
    """Requests each client address may make without credentials (open reads), and failed logins it may make."""
    gateway_key_cache_s: float = 5.0
    """How long a checked API key is trusted before it is read again: a revoked key stops working within this."""
    gateway_oidc_issuer: str = ""
    """OIDC issuer whose bearer tokens are accepted (``iss``); empty: API keys only."""
    gateway_oidc_audience: str = ""
    """The ``aud`` a token must carry; required when ``gateway_oidc_issuer`` is set."""
    gateway_oidc_jwks_url: str = ""
    """Where the issuer's signing keys are; empty: ``ISSUER/.well-known/jwks.json``."""
    gateway_oidc_role_claim: str = "roles"
    """The claim holding the caller's role(s) (a string or a list; dots reach into objects: ``realm_access.roles``)."""
    gateway_oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    gateway_trusted_proxies: str = "127.0.0.1"
    """Addresses whose ``X-Forwarded-For`` is believed (comma-separated, ``*`` for any): behind an ingress, its
    address, so rate limits per client count the client, not the proxy."""
    gateway_ingest_url: str = "http://127.0.0.1:4318"
    """The ingestion service the gateway forwards ``/api/v1/metrics/write``, ``logs/write`` and ``alerts/ingest`` to."""
    gateway_ingest_token: SecretStr | None = None
    """Sent to ingestion as a bearer token when set (ingestion behind its own proxy)."""
    gateway_demo_url: str = ""
    """The demo shop's control API (``aiops demo``, ``http://127.0.0.1:4390``) behind ``/api/v1/demo`` and the UI's
    demo panel; empty: no demo (the panel is hidden, its mutating routes answer 404)."""
    gateway_list_cache_s: float = 1.0
    """How long an answer of the incidents list is served again to the same query (0: never); a published change
    of an incident empties it at once."""
    gateway_request_timeout_s: float = 10.0
    """Longest a store read or a forwarded request may take before the API answers 503."""
    gateway_max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body accepted (forwarded writes included); larger gets 413."""

    @property
    def url(self) -> str:
        if self.gateway_public_url:
            return self.gateway_public_url.rstrip("/")
        host = "127.0.0.1" if self.gateway_host in ("0.0.0.0", "::") else self.gateway_host
        return f"http://{host}:{self.gateway_port}"

    def advertised_urls(self) -> dict[str, str]:
        return {Endpoint.GATEWAY_HTTP: self.url}
