"""The knowledge agents' pure parts: coalescing edges, changes and log documents; a closed store given up on."""

from __future__ import annotations

import asyncio
import doctest
from pathlib import Path
from types import ModuleType

import pytest
from aiops_common.agent_loop import AgentMeter, WriteRetry, write_with_retry
from aiops_common.documents import open_document_store
from aiops_common.faust_app import create_app
from aiops_common.schemas import LogRecord
from aiops_common.service import ServiceStartError
from aiops_correlation.agents import change_recorder, dependency_recorder, log_indexer
from aiops_correlation.agents.log_indexer import document_id
from aiops_correlation.settings import CorrelationSettings
from prometheus_client import REGISTRY

DELAYS = (0.01, 0.02, 0.04)


def dropped(agent: str, reason: str) -> float:
    labels = {"agent": agent, "reason": reason}
    return REGISTRY.get_sample_value("aiops_agent_dropped_records_total", labels) or 0.0


@pytest.mark.unit
@pytest.mark.parametrize("module", [change_recorder, dependency_recorder, log_indexer])
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0


@pytest.mark.functional
async def test_a_closed_sqlite_store_is_given_up_on(tmp_path: Path) -> None:
    store = open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    await store.close()

    async def write() -> None:
        await store.upsert("logs", "log-1", {"at": "2026-03-01T12:00:00+00:00", "message": "x"})

    assert not await write_with_retry(AgentMeter("retry_closed"), write, 3, WriteRetry(DELAYS))
    assert dropped("retry_closed", "store_unavailable") == 3


@pytest.mark.unit
def test_a_log_record_s_id_is_its_content() -> None:
    record = LogRecord(1_700_000_000_000_000_000, "api", "timeout", "ERROR", 17, {"pod": "api-0"}, "t1", "s1")
    same = LogRecord(1_700_000_000_000_000_000, "api", "timeout", "ERROR", 17, {"pod": "api-0"}, "t1", "s1")
    assert document_id(record) == document_id(same)
    other_pod = LogRecord(1_700_000_000_000_000_000, "api", "timeout", "ERROR", 17, {"pod": "api-1"}, "t1", "s1")
    later = LogRecord(1_700_000_000_000_000_001, "api", "timeout", "ERROR", 17, {"pod": "api-0"}, "t1", "s1")
    assert len({document_id(record), document_id(other_pod), document_id(later)}) == 3


@pytest.mark.functional
def test_an_unknown_minimum_severity_stops_the_start_with_one_line(tmp_path: Path) -> None:
    settings = CorrelationSettings(broker_url="kafka://127.0.0.1:9", data_dir=tmp_path, logs_index_min_severity="loud")
    app = create_app("correlation", settings)
    store = open_document_store(settings.documents_url)
    try:
        with pytest.raises(ServiceStartError, match="AIOPS_LOGS_INDEX_MIN_SEVERITY='loud' is not a severity; use one"):
            log_indexer.install(app, settings, store)
    finally:
        asyncio.run(store.close())
