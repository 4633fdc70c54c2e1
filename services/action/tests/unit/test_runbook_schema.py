"""The runbook schema: a good runbook loads, and every kind of mistake is one line naming the file and the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from aiops_action.runbooks import ParamRef, Risk, RunbookError, parse_runbook
from aiops_common.schemas import CauseKind, IncidentSeverity

pytestmark = pytest.mark.unit

GOOD: dict[str, Any] = {
    "id": "scale-api",
    "version": 2,
    "title": "Scale the api",
    "risk": "medium",
    "match": {"cause_kinds": ["saturation"], "services": ["api*"], "min_severity": "minor"},
    "parameters": {
        "service": {"type": "string", "pattern": "[a-z0-9-]+", "from": "cause.service"},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 20, "default": 4},
        "path": {"type": "string", "pattern": "/[a-z/]+", "default": "/tmp/cache"},
        "dry": {"type": "boolean", "default": False},
        "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
    },
    "steps": [
        {
            "name": "scale",
            "kind": "kubernetes",
            "action": "scale",
            "arguments": {"namespace": "prod", "deployment": {"param": "service"}, "replicas": {"param": "replicas"}},
            "timeout_s": 120,
        },
        {
            "name": "clear",
            "kind": "script",
            "action": "run",
            "arguments": {"argv": ["/usr/local/bin/clear-cache", {"param": "path"}, {"param": "dry"}]},
        },
        {
            "name": "tell",
            "kind": "http",
            "action": "POST",
            "arguments": {
                "url": "https://hooks.example.com/scaled",
                "headers": {"X-Mode": {"param": "mode"}},
                "body": {"service": {"param": "service"}, "to": [{"param": "replicas"}]},
            },
        },
    ],
    "verify": {"series": "red.latency_s", "match": {"service": {"param": "service"}}, "upper": 1.0, "within_s": 600},
    "rollback": [
        {"name": "cordon", "kind": "kubernetes", "action": "cordon", "arguments": {"node": "node-1.example"}},
    ],
}


def problems(body: object) -> list[str]:
    with pytest.raises(RunbookError) as caught:
        parse_runbook(yaml.safe_dump(body), "rb.yaml")
    assert caught.value.file == "rb.yaml"
    lines = str(caught.value).splitlines()
    assert all(line.startswith("rb.yaml: ") for line in lines)
    return [line.removeprefix("rb.yaml: ") for line in lines]


def changed(path: str, value: object) -> dict[str, Any]:
    """GOOD with one field set (``value`` None: removed); ``path`` like ``steps[0].arguments.replicas``."""
    body = copy.deepcopy(GOOD)
    parts = path.replace("[", ".").replace("]", "").split(".")
    target: Any = body
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last: Any = int(parts[-1]) if isinstance(target, list) else parts[-1]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return body


def test_a_good_runbook_loads_with_its_references() -> None:
    runbook = parse_runbook(yaml.safe_dump(GOOD), "rb.yaml")
    assert (runbook.id, runbook.version, runbook.risk) == ("scale-api", 2, Risk.MEDIUM)
    assert runbook.match.cause_kinds == [CauseKind.SATURATION]
    assert runbook.match.min_severity is IncidentSeverity.MINOR
    assert runbook.parameters["service"].source == "cause.service"
    assert runbook.steps[0].arguments["deployment"] == ParamRef(param="service")
    assert runbook.steps[2].arguments["body"]["to"] == [ParamRef(param="replicas")]
    assert runbook.describe_match() == "saturation on api*, severity >= minor"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("id", "Bad Id", "id: 'Bad Id': lower case letters"),
        ("version", 0, "version: Input should be greater than or equal to 1"),
        ("title", None, "title: Field required"),
        ("risk", "extreme", "risk: Input should be 'low', 'medium' or 'high'"),
        ("match.cause_kinds", ["deployment", "meteor"], "match.cause_kinds[1]: Input should be"),
        ("match.cause_kinds", ["unknown"], "match.cause_kinds: 'unknown' is not a kind"),
        ("match.cause_kinds", [], "match.cause_kinds: List should have at least 1 item"),
        ("match.min_severity", "huge", "match.min_severity: Input should be 'info'"),
        ("match.colour", "red", "match.colour: Extra inputs are not permitted"),
        ("parameters.service.pattern", None, "parameters.service: a string parameter needs a pattern or an enum"),
        ("parameters.service.pattern", "[a-z", "parameters.service: pattern '[a-z' is not a regular expression"),
        ("parameters.service.pattern", ".*", "parameters.service: pattern '.*' accepts 'a;b' (shell or template"),
        ("parameters.service.pattern", "[a-z{}]+", "pattern '[a-z{}]+' accepts '{{a}}'"),
        ("parameters.mode.enum", ["fast", "x;y"], "parameters.mode: enum value 'x;y' holds shell or template syntax"),
        ("parameters.service.from", "cause.nothing", "parameters.service.from: unknown source 'cause.nothing'"),
        ("parameters.replicas.default", "many", "parameters.replicas.default: 'many' is not an integer"),
        ("parameters.replicas.default", 50, "parameters.replicas.default: 50 is above the maximum 20"),
        ("parameters.replicas.minimum", 30, "parameters.replicas: minimum 30 is above maximum 20"),
        ("parameters.replicas.pattern", "[0-9]+", "parameters.replicas: pattern and enum are for strings"),
        ("parameters.dry.maximum", 1, "parameters.dry: minimum and maximum are for integer and number"),
        ("parameters.path.default", "/tmp/../etc", "parameters.path.default: '/tmp/../etc' holds a '..' path"),
        ("parameters.replicas.type", "float", "parameters.replicas.type: Input should be 'string'"),
        ("steps", [], "steps: List should have at least 1 item"),
        ("steps[0].kind", "ssh", "steps[0].kind: Input should be 'kubernetes', 'http' or 'script'"),
        ("steps[0].action", "delete", "steps[0].action: kubernetes has no action 'delete'"),
        ("steps[0].arguments.namespace", None, "steps[0].arguments.namespace: required for kubernetes scale"),
        ("steps[0].arguments.replicas", -1, "steps[0].arguments.replicas: -1 is outside 0..1000"),
        ("steps[0].arguments.replicas", "3", "steps[0].arguments.replicas: expected an integer, got str"),
        ("steps[0].arguments.replicas", {"param": "service"}, "replicas: parameter 'service' is string; replicas"),
        ("steps[0].arguments.namespace", "Prod_1", "steps[0].arguments.namespace: 'Prod_1' is not a Kubernetes"),
        ("steps[0].arguments.namespace", {"param": "nope"}, "steps[0].arguments.namespace: no parameter 'nope'"),
        ("steps[0].arguments.force", True, "steps[0].arguments.force: not an argument of kubernetes scale"),
        ("steps[0].arguments.deployment", "api-{{ svc }}", "steps[0].arguments.deployment: looks like a template"),
        (
            "steps[0].arguments.deployment",
            {"param": "service", "x": 1},
            "steps[0].arguments.deployment: a {param: NAME} reference stands alone",
        ),
        (
            "steps[0].arguments.deployment",
            {"param": "Bad-Name"},
            "steps[0].arguments.deployment: 'Bad-Name' is not a parameter name",
        ),
        (
            "steps[2].arguments.body",
            {"a": [{"param": 3}]},
            "steps[2].arguments.body.a[0]: 3 is not a parameter name",
        ),
        ("steps[0].arguments", ["namespace"], "steps[0].arguments: Input should be a valid dictionary"),
        ("parameters.service.default", [1], "parameters.service.default: a default is a string, number or boolean"),
        ("verify.match", {"service": 5}, "verify.match.service: a label value is a string or {param: NAME}, not int"),
        ("verify.match", {"service": "a{{b}}"}, "verify.match.service: looks like a template"),
        ("steps[0].timeout_s", 0, "steps[0].timeout_s: Input should be greater than 0"),
        ("steps[1].name", "scale", "steps[1].name: 'scale' is used twice in steps"),
        ("steps[1].action", "exec", "steps[1].action: a script step's action is 'run'"),
        ("steps[1].arguments.argv", [], "steps[1].arguments.argv: expected a non-empty list"),
        ("steps[1].arguments.argv", "/bin/rm -rf /", "steps[1].arguments.argv: expected a non-empty list"),
        ("steps[1].arguments.argv", ["clear-cache"], "steps[1].arguments.argv[0]: 'clear-cache' is not an absolute"),
        ("steps[1].arguments.argv", [{"param": "path"}], "argv[0]: the program must be a literal absolute path"),
        ("steps[1].arguments.argv", ["/bin/x", "a\nb"], "argv[1]: control characters"),
        ("steps[1].arguments.argv", ["/bin/x", 3], "steps[1].arguments.argv[1]: expected a string, got int"),
        ("steps[1].arguments.argv", ["/bin/../x"], "argv[0]: '/bin/../x' climbs out with '..'"),
        ("steps[1].arguments.shell", True, "steps[1].arguments.shell: not an argument of script run"),
        ("steps[1].arguments", {"cwd": "/tmp"}, "steps[1].arguments.argv: required for script run"),
        ("steps[2].action", "post", "steps[2].action: an http step's action is its method"),
        ("steps[2].arguments.url", "ftp://example.com/x", "arguments.url: 'ftp://example.com/x' is not an http://"),
        ("steps[2].arguments.url", "https:///nohost", "is not an http:// or https:// URL with a host"),
        ("steps[2].arguments.url", None, "steps[2].arguments.url: required for http POST"),
        ("steps[2].arguments.headers", ["a"], "steps[2].arguments.headers: expected a mapping of header names"),
        ("steps[2].arguments.headers", {"X-A": {"param": "dry"}}, "headers.X-A: parameter 'dry' is boolean"),
        ("steps[2].arguments.body", {"a": "${HOME}"}, "steps[2].arguments.body.a: looks like a template"),
        ("verify.series", "red latency", "verify.series: String should match pattern"),
        ("verify.upper", None, "verify: give lower, upper or both"),
        ("verify.lower", 5.0, "verify: lower 5 is above upper 1"),
        ("verify.for_s", 900, "verify: for_s 900 is longer than within_s 600"),
        ("verify.within_s", None, "verify.within_s: Field required"),
        ("verify.match", {"service": {"param": "ghost"}}, "verify.match.service: no parameter 'ghost'"),
        ("verify", None, "verify: Field required"),
        ("rollback[0].arguments", {}, "rollback[0].arguments.node: required for kubernetes cordon"),
        ("rollback[0].arguments.node", "Node_1", "rollback[0].arguments.node: 'Node_1' is not a Kubernetes"),
    ],
)
def test_each_mistake_has_its_message(path: str, value: object, expected: str) -> None:
    found = problems(changed(path, value))
    assert any(expected in line for line in found), found


def test_every_problem_of_a_file_is_reported() -> None:
    body = changed("steps[0].arguments.replicas", -1)
    body["steps"][1]["arguments"]["argv"] = ["relative"]
    body["rollback"][0]["arguments"] = {}
    found = problems(body)
    assert found == [
        "steps[0].arguments.replicas: -1 is outside 0..1000",
        "steps[1].arguments.argv[0]: 'relative' is not an absolute path",
        "rollback[0].arguments.node: required for kubernetes cordon",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id: [\n", "line 2: not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("", "expected a mapping"),
        ("id: a\nversion: 1\nid: b\n", "line 3: not valid YAML: key 'id' appears twice in one mapping"),
        ("!!python/object:os.system {}\n", "not valid YAML: could not determine a constructor"),
        ("just text", "expected a mapping"),
    ],
)
def test_text_that_is_no_runbook(text: str, expected: str) -> None:
    with pytest.raises(RunbookError) as caught:
        parse_runbook(text, "broken.yaml")
    assert str(caught.value).startswith("broken.yaml: ") and expected in str(caught.value)
