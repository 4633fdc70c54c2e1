"""Agent: ``traces.raw`` span batches -> the worker's trace index of first failing spans (in memory).

Cheap per batch: only ERROR spans are looked at, and counts are kept per minute and service. The
index is this worker's memory: a restarted worker starts it again from the offsets its group
committed, so traces from before a restart are not counted (the case then has fewer trace origins,
never wrong ones); with several RCA workers each indexes the partitions it holds.
"""

from __future__ import annotations

import faust
from aiops_common.agent_loop import install_agent
from aiops_common.schemas import SpanBatch
from aiops_common.topics import Topics, declare

from aiops_rca.settings import RcaSettings
from aiops_rca.trace_index import TraceIndex

__all__ = ["install"]


def install(app: faust.App, settings: RcaSettings, index: TraceIndex) -> None:
    source = declare(app, Topics.TRACES_RAW, settings.topic_prefix)

    async def take(batch: SpanBatch) -> int:
        index.add(batch.rows)
        return 0  # publishes nothing

    install_agent(app, source, "trace_origins", SpanBatch.decode, take)
