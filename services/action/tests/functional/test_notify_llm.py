"""Summary enrichment against local OpenAI-compatible servers: a good one, a slow one, broken ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiops_action.notify.llm import LlmEndpoint, enrich_summary
from aiops_action.notify.summary import incident_summary
from aiops_action.settings import ActionSettings
from aiops_common.broker.addresses import free_port
from aiops_common.schemas.incidents import IncidentMember, IncidentRecord, IncidentSeverity, JoinReason, MemberKind
from pydantic import SecretStr

pytestmark = pytest.mark.functional

T0 = datetime(2026, 3, 1, 10, 40, tzinfo=UTC)


class FakeOpenAI:
    """``POST /v1/chat/completions`` as OpenAI-compatible servers answer it, or misbehaving as ``mode`` says."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, object]] = []
        self.auth: list[str] = []
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.auth.append(request.headers.get("Authorization", ""))
        if self.mode == "slow":
            await self.release.wait()
        if self.mode == "error":
            return web.json_response({"error": {"message": "model not loaded"}}, status=500)
        if self.mode == "garbage":
            return web.Response(text="<html>gateway</html>", content_type="text/html")
        if self.mode == "empty":
            return web.json_response({"choices": [{"message": {"role": "assistant", "content": "  "}}]})
        facts = body["messages"][-1]["content"]
        answer = f"Payment latency incident. {facts.splitlines()[3]}"
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]})


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/v1"))
    yield fake
    fake.release.set()
    await server.close()


def facts() -> str:
    member = IncidentMember(
        fingerprint="a1",
        kind=MemberKind.ALERT,
        name="HighLatency",
        service="payment",
        started_at=T0,
        lead=True,
        reason=JoinReason(rule="seed"),
        joined_at=T0,
    )
    inc = IncidentRecord(
        id="inc-1",
        revision=1,
        title="payment: HighLatency",
        severity=IncidentSeverity.MAJOR,
        services=["payment"],
        started_at=T0,
        updated_at=T0,
        members=[member],
    )
    return incident_summary(inc)


async def test_an_answer_enriches_the_summary(llm: FakeOpenAI) -> None:
    settings = ActionSettings(
        action_llm_url=llm.url, action_llm_model="qwen2.5", action_llm_api_key=SecretStr("k1"), action_llm_timeout_s=30
    )
    endpoint = LlmEndpoint.from_settings(settings)
    result = await enrich_summary(facts(), endpoint)
    assert result.enriched and result.text == "Payment latency incident. Probable cause: not analysed yet"
    (request,) = llm.requests
    assert request["model"] == "qwen2.5"
    messages = request["messages"]
    assert isinstance(messages, list) and messages[0]["role"] == "system"
    assert messages[1] == {"role": "user", "content": facts()}
    assert llm.auth == ["Bearer k1"]


async def test_no_endpoint_is_the_deterministic_text() -> None:
    assert LlmEndpoint.from_settings(ActionSettings(action_llm_url="")) is None
    result = await enrich_summary(facts(), None)
    assert not result.enriched and result.text == facts()


async def test_a_late_answer_falls_back_to_the_deterministic_text(llm: FakeOpenAI) -> None:
    llm.mode = "slow"  # never answers until the test ends
    result = await enrich_summary(facts(), LlmEndpoint(url=llm.url, model="m", timeout_s=0.3))
    assert not result.enriched and result.text == facts()
    assert result.reason == "no answer within 0.3 s"
    assert len(llm.requests) == 1


@pytest.mark.parametrize("mode", ["error", "garbage", "empty"])
async def test_a_broken_endpoint_falls_back_to_the_deterministic_text(llm: FakeOpenAI, mode: str) -> None:
    llm.mode = mode
    result = await enrich_summary(facts(), LlmEndpoint(url=llm.url, model="m", timeout_s=30))
    assert not result.enriched and result.text == facts() and result.reason
    assert len(llm.requests) == 1


async def test_an_unreachable_endpoint_falls_back() -> None:
    endpoint = LlmEndpoint(url=f"http://127.0.0.1:{free_port()}/v1", model="m", timeout_s=30)
    result = await enrich_summary(facts(), endpoint)
    assert not result.enriched and "ConnectError" in result.reason
    assert result.text == facts()
