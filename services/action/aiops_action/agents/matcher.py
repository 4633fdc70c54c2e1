"""Agent: ``rca.results`` -> a proposed execution of the runbook that fits the best cause (``ActionEngine.on_rca``)."""

from __future__ import annotations

import faust
from aiops_common.agent_loop import AgentMeter, install_agent
from aiops_common.schemas import RcaResult
from aiops_common.topics import Topics, declare

from aiops_action.agents._retrying import retried
from aiops_action.engine import ActionEngine, Refusal
from aiops_action.settings import ActionSettings

__all__ = ["install"]


def install(app: faust.App, settings: ActionSettings, engine: ActionEngine) -> None:
    meter = AgentMeter("action_matcher_store")

    async def handle(result: RcaResult) -> int:
        outcome = await retried(meter, f"proposal for {result.incident_id}", lambda: engine.on_rca(result))
        return 0 if outcome is None or isinstance(outcome, Refusal) else 1

    install_agent(
        app, declare(app, Topics.RCA_RESULTS, settings.topic_prefix), "action_matcher", RcaResult.decode, handle
    )
