"""Agent: ``actions`` -> approved executions run (``Runner.start``); and the sweep, every
``action_verify_poll_s``: pending approvals expired, approved executions nobody runs started, those of a stopped
worker taken over, and running verifications checked against the TSDB (mitigated, or rolled back)."""

from __future__ import annotations

import faust
import structlog
from aiops_common.agent_loop import install_agent
from aiops_common.schemas import ExecutionRecord, ExecutionStatus
from aiops_common.topics import Topics, declare

from aiops_action.runner import Runner
from aiops_action.settings import ActionSettings

__all__ = ["install"]

log = structlog.get_logger(__name__)


def install(app: faust.App, settings: ActionSettings, runner: Runner) -> None:
    async def handle(record: ExecutionRecord) -> int:
        if record.status is not ExecutionStatus.APPROVED:
            return 0
        try:
            return 1 if await runner.start(record.id) else 0
        except Exception as exc:  # the store away: the sweep starts it once it is back
            log.warning(
                "could not start an approved execution; the sweep will", execution_id=record.id, error=repr(exc)
            )
            return 0

    topic = declare(app, Topics.ACTIONS, settings.topic_prefix)
    install_agent(app, topic, "action_executor", ExecutionRecord.decode, handle)
    app.timer(settings.action_verify_poll_s, name="action_sweep")(runner.sweep)
