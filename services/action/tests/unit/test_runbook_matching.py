"""Matching runbooks to an incident's ranked causes: kinds, service globs, labels, severity, rules, series, and the
order (best cause first, then the most specific runbook)."""

from __future__ import annotations

from typing import Any

import pytest
from aiops_action.runbooks import Runbook, match_cause, match_runbooks, specificity
from aiops_action.runbooks.testing import cause, incident, rca
from aiops_common.schemas import CauseKind, IncidentSeverity

pytestmark = pytest.mark.unit


def runbook(rid: str, **match: Any) -> Runbook:
    return Runbook.model_validate(
        {
            "id": rid,
            "version": 1,
            "title": rid,
            "risk": "low",
            "match": {"cause_kinds": ["saturation"], **match},
            "steps": [
                {
                    "name": "restart",
                    "kind": "kubernetes",
                    "action": "rollout_restart",
                    "arguments": {"namespace": "prod", "deployment": "api"},
                },
            ],
            "verify": {"series": "red.latency_s", "upper": 1.0, "within_s": 60},
        }
    )


SATURATED = cause("payment", CauseKind.SATURATION, rule="saturation", series=["container_cpu_utilisation"])


@pytest.mark.parametrize(
    ("match", "fits"),
    [
        ({}, True),
        ({"cause_kinds": ["saturation", "crash"]}, True),
        ({"cause_kinds": ["latency"]}, False),
        ({"services": ["payment"]}, True),
        ({"services": ["pay*"]}, True),
        ({"services": ["pay?ent", "checkout"]}, True),
        ({"services": ["[a-o]*"]}, False),
        ({"services": ["checkout", "payments"]}, False),
        ({"services": ["PAYMENT"]}, False),
        ({"labels": {"env": "prod"}}, True),
        ({"labels": {"env": "prod", "team": "pay"}}, True),
        ({"labels": {"env": "staging"}}, False),
        ({"labels": {"region": "eu"}}, False),
        ({"min_severity": "major"}, True),
        ({"min_severity": "critical"}, False),
        ({"rules": ["saturation"]}, True),
        ({"rules": ["crash_loop", "deployment"]}, False),
        ({"series": ["container_cpu_*"]}, True),
        ({"series": ["red.error_rate"]}, True),  # the signal of the incident's member on the cause's service
        ({"series": ["disk_used_percent"]}, False),
    ],
)
def test_each_condition(match: dict[str, Any], fits: bool) -> None:
    record = incident("payment", labels={"env": "prod", "team": "pay"}, severity=IncidentSeverity.MAJOR)
    assert match_cause(runbook("rb", **match), SATURATED, record) is fits


def test_labels_are_those_of_members_on_the_causes_service_else_of_any_member() -> None:
    by_label = runbook("rb", labels={"env": "prod"})
    assert match_cause(by_label, SATURATED, incident("payment", labels={"env": "prod"}))
    # the cause found upstream through the topology has no member of its own: the incident's members speak for it
    upstream = cause("db", CauseKind.SATURATION)
    assert match_cause(by_label, upstream, incident("payment", labels={"env": "prod"}))
    assert not match_cause(by_label, upstream, incident("payment", labels={"env": "dev"}))


def test_the_unknown_kind_matches_nothing() -> None:
    anything = runbook("rb", cause_kinds=["latency", "errors", "traffic", "saturation", "crash", "deployment"])
    assert not match_cause(anything, cause("payment", CauseKind.UNKNOWN), incident("payment"))


def test_specificity_orders_series_rules_service_labels_severity_kinds() -> None:
    order = [
        runbook("by-series", series=["container_*"]),
        runbook("by-rule", rules=["saturation"]),
        runbook("exact-service", services=["payment"]),
        runbook("glob-service-two-labels", services=["pay*"], labels={"env": "prod", "team": "pay"}),
        runbook("glob-service-one-label", services=["pay*"], labels={"env": "prod"}),
        runbook("glob-service", services=["pay*"]),
        runbook("severity", min_severity="major"),
        runbook("one-kind"),
        runbook("two-kinds", cause_kinds=["saturation", "crash"]),
    ]
    assert sorted(order, key=specificity, reverse=True) == order
    record = incident("payment", labels={"env": "prod", "team": "pay"})
    found = match_runbooks(reversed(order), rca(record, [SATURATED]), record)
    assert [m.runbook.id for m in found] == [r.id for r in order]


def test_ties_go_by_id_and_the_best_cause_comes_first() -> None:
    saturation = [runbook("b-restart"), runbook("a-scale")]
    crash = [runbook("crash", cause_kinds=["crash"])]
    record = incident("payment")
    analysis = rca(record, [cause("payment", CauseKind.CRASH), cause("db", CauseKind.SATURATION, probability=0.2)])
    found = match_runbooks([*saturation, *crash], analysis, record)
    assert [(m.rank, m.cause.service, m.runbook.id) for m in found] == [
        (0, "payment", "crash"),
        (1, "db", "a-scale"),
        (1, "db", "b-restart"),
    ]
    assert match_runbooks([*saturation, *crash], analysis, record, top=1) == found[:1]


def test_no_cause_no_match() -> None:
    record = incident("payment")
    assert match_runbooks([runbook("rb")], rca(record, []), record) == []
