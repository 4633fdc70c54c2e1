"""Following the newest RCA ranking: which rankings make the matcher propose, and which of its waiting proposals a
newer one supersedes; replays, older rankings, people's requests and decided executions are left alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiops_action.reranking import Hold, NextProposal, follow_ranking
from aiops_common.schemas import ExecutionRecord, ExecutionStatus

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PENDING, APPROVED, RUNNING = ExecutionStatus.PENDING_APPROVAL, ExecutionStatus.APPROVED, ExecutionStatus.RUNNING
REJECTED, SUPERSEDED, SUCCEEDED = ExecutionStatus.REJECTED, ExecutionStatus.SUPERSEDED, ExecutionStatus.SUCCEEDED


def _exe(
    runbook: str,
    service: str,
    status: ExecutionStatus = PENDING,
    *,
    revision: int = 1,
    attempt: int = 1,
    by: str = "action",
) -> ExecutionRecord:
    return ExecutionRecord(
        id=f"exe-{runbook}-{attempt}",
        incident_id="inc-1",
        attempt=attempt,
        runbook_id=runbook,
        cause_service=service,
        rca_revision=revision,
        requested_by=by,
        requested_at=NOW,
        updated_at=NOW,
        status=status,
    )


RESTART_CHECKOUT = _exe("restart", "checkout")

# (the incident's executions, the newer ranking's best match (runbook, service) and revision) -> what the matcher does:
# ("propose", attempt, superseded ids) or ("hold", reason)
CASES = [
    pytest.param([], ("restart", "checkout"), 1, ("propose", 1, ()), id="first-ranking"),
    pytest.param([RESTART_CHECKOUT], ("restart", "checkout"), 1, ("hold", "proposed_already"), id="replay"),
    pytest.param(
        [RESTART_CHECKOUT], ("restart", "checkout"), 2, ("hold", "proposed_already"), id="newer-ranking-same-match"
    ),
    pytest.param(
        [RESTART_CHECKOUT], ("restart", "payment"), 2, ("propose", 2, ("exe-restart-1",)), id="same-runbook-new-target"
    ),
    pytest.param([RESTART_CHECKOUT], ("scale", "payment"), 2, ("propose", 1, ("exe-restart-1",)), id="another-runbook"),
    pytest.param(
        [RESTART_CHECKOUT],
        ("scale", "checkout"),
        3,
        ("propose", 1, ("exe-restart-1",)),
        id="another-runbook-same-service",
    ),
    pytest.param(
        [RESTART_CHECKOUT], ("restart", "payment"), 1, ("hold", "older_ranking"), id="same-revision-other-match"
    ),
    pytest.param(
        [_exe("restart", "payment", revision=3, attempt=2), _exe("restart", "checkout", SUPERSEDED)],
        ("restart", "checkout"),
        2,
        ("hold", "older_ranking"),
        id="older-ranking-replayed-after-a-supersession",
    ),
    pytest.param(
        [_exe("restart", "payment", revision=2, attempt=2), _exe("restart", "checkout", SUPERSEDED)],
        ("restart", "checkout"),
        3,
        ("propose", 3, ("exe-restart-2",)),
        id="ranking-moves-back",
    ),
    pytest.param(
        [_exe("restart", "checkout", APPROVED)], ("scale", "payment"), 2, ("hold", "execution_active"), id="approved"
    ),
    pytest.param(
        [_exe("restart", "checkout", RUNNING)], ("scale", "payment"), 2, ("hold", "execution_active"), id="running"
    ),
    pytest.param(
        [_exe("restart", "checkout", by="dave", revision=0)],
        ("scale", "payment"),
        2,
        ("hold", "execution_active"),
        id="a-persons-request-waits",
    ),
    pytest.param(
        [_exe("restart", "checkout", REJECTED)], ("restart", "payment"), 2, ("hold", "proposed_already"), id="rejected"
    ),
    pytest.param(
        [_exe("scale", "checkout", SUCCEEDED), RESTART_CHECKOUT],
        ("scale", "payment"),
        2,
        ("hold", "proposed_already"),
        id="new-runbook-ran-already",
    ),
    pytest.param(
        [_exe("scale", "payment", SUPERSEDED), _exe("restart", "checkout", REJECTED)],
        ("scale", "payment"),
        3,
        ("propose", 2, ()),
        id="superseded-runbook-proposed-again",
    ),
]


@pytest.mark.parametrize(("existing", "match", "revision", "expected"), CASES)
def test_the_matcher_follows_the_newest_ranking(
    existing: list[ExecutionRecord], match: tuple[str, str], revision: int, expected: tuple[object, ...]
) -> None:
    verdict = follow_ranking(existing, "inc-1", *match, revision, matcher="action")
    if expected[0] == "hold":
        assert isinstance(verdict, Hold) and verdict.reason == expected[1], verdict
        assert "inc-1" in verdict.message
    else:
        assert isinstance(verdict, NextProposal), verdict
        assert (verdict.attempt, tuple(e.id for e in verdict.supersedes)) == expected[1:]


def test_a_hold_names_what_it_waits_on() -> None:
    older = follow_ranking([RESTART_CHECKOUT], "inc-1", "scale", "payment", 1, matcher="action")
    assert older == Hold(
        "older_ranking",
        "the ranking of revision 1 of inc-1 is not newer than that of revision 1, which exe-restart-1 was"
        " proposed from",
    )
    asked = follow_ranking([_exe("restart", "checkout", by="dave")], "inc-1", "scale", "payment", 2, matcher="action")
    assert isinstance(asked, Hold) and "requested by dave" in asked.message
