"""Optional enrichment of the incident summary by an OpenAI-compatible endpoint, falling back to the facts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import structlog
from pydantic import SecretStr

from aiops_action.settings import ActionSettings

__all__ = ["EnrichedSummary", "LlmEndpoint", "enrich_summary"]

log = structlog.get_logger(__name__)

_MAX_ANSWER = 4000
_SYSTEM = (
    "You write incident summaries for on-call engineers. Rewrite the facts you are given as a short, clear "
    "paragraph. Use only those facts; invent nothing; keep every number, time, service and version as given."
)


@dataclass(frozen=True)
class LlmEndpoint:
    url: str
    """Base address; ``/chat/completions`` is added (``http://host:11434/v1``)."""
    model: str
    api_key: SecretStr | None = None
    timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: ActionSettings) -> LlmEndpoint | None:
        """None when no endpoint is set: the deterministic summary only."""
        if not settings.action_llm_url:
            return None
        return cls(
            url=settings.action_llm_url,
            model=settings.action_llm_model,
            api_key=settings.action_llm_api_key,
            timeout_s=settings.action_llm_timeout_s,
        )


@dataclass(frozen=True)
class EnrichedSummary:
    text: str
    enriched: bool
    """False: ``text`` is the deterministic summary (no endpoint, or it failed or was late: ``reason``)."""
    reason: str = ""


async def _ask(endpoint: LlmEndpoint, facts: str, client: httpx.AsyncClient) -> str:
    headers = {"Authorization": f"Bearer {endpoint.api_key.get_secret_value()}"} if endpoint.api_key else {}
    response = await client.post(
        f"{endpoint.url.rstrip('/')}/chat/completions",
        json={
            "model": endpoint.model,
            "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": facts}],
            "temperature": 0,
            "stream": False,
        },
        headers=headers,
        # the whole exchange is bounded by wait_for below; this only keeps a dead socket from lingering
        timeout=endpoint.timeout_s + 1.0,
    )
    response.raise_for_status()
    content = response.json()["choices"][0]["message"]["content"]
    if not isinstance(content, str) or not content.strip():
        raise ValueError("the answer has no text")
    return content.strip()[:_MAX_ANSWER]


async def enrich_summary(
    facts: str, endpoint: LlmEndpoint | None, client: httpx.AsyncClient | None = None
) -> EnrichedSummary:
    """The endpoint's rewrite of ``facts`` (the deterministic summary), or ``facts`` itself on any failure.

    The whole exchange is bounded by ``timeout_s``: a server that trickles its answer is as late as a silent one.
    """
    if endpoint is None:
        return EnrichedSummary(facts, enriched=False, reason="no endpoint")
    own = client is None
    http = client or httpx.AsyncClient()
    try:
        text = await asyncio.wait_for(_ask(endpoint, facts, http), timeout=endpoint.timeout_s)
    except TimeoutError:
        log.warning("summary_enrichment_late", timeout_s=endpoint.timeout_s)
        return EnrichedSummary(facts, enriched=False, reason=f"no answer within {endpoint.timeout_s:g} s")
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("summary_enrichment_failed", error=f"{type(exc).__name__}: {exc}")
        return EnrichedSummary(facts, enriched=False, reason=f"{type(exc).__name__}: {exc}")
    finally:
        if own:
            await http.aclose()
    return EnrichedSummary(text, enriched=True)
