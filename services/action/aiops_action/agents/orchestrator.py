"""Agent: ``approvals`` -> people's requests, approvals and rejections applied under the approval policy
(``ActionEngine.on_decision``); refused ones are counted and written to the audit log with the reason."""

from __future__ import annotations

import faust
from aiops_common.agent_loop import AgentMeter, install_agent
from aiops_common.schemas import ApprovalRecord
from aiops_common.topics import Topics, declare

from aiops_action.agents._retrying import retried
from aiops_action.engine import ActionEngine, Refusal
from aiops_action.settings import ActionSettings

__all__ = ["install"]


def install(app: faust.App, settings: ActionSettings, engine: ActionEngine) -> None:
    meter = AgentMeter("action_orchestrator_store")

    async def handle(decision: ApprovalRecord) -> int:
        what = f"{decision.decision.value} of {decision.execution_id or decision.incident_id}"
        outcome = await retried(meter, what, lambda: engine.on_decision(decision))
        return 0 if outcome is None or isinstance(outcome, Refusal) else 1

    topic = declare(app, Topics.APPROVALS, settings.topic_prefix)
    install_agent(app, topic, "action_orchestrator", ApprovalRecord.decode, handle)
