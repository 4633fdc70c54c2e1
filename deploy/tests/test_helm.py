"""The Helm chart: lints, renders valid Kubernetes objects, and holds the multi-zone, security and scaling promises."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml
from aiops_cli.variables import declared_variables
from aiops_common.service import discover_services
from aiops_common.topics import ALL_TOPICS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "aiops"
MULTIZONE = CHART / "values-multizone.yaml"
RELEASE = "aiops"
NAMESPACE = "aiops"
#: The newest Kubernetes release whose schemas kubernetes-validate ships.
KUBE_VERSION: str = kubernetes_validate.utils.latest_version()
#: Pods of the release carry these; the default-deny policy selects them all.
RELEASE_LABELS = {"app.kubernetes.io/name": "aiops", "app.kubernetes.io/instance": RELEASE}
DATA_DIR = "/var/lib/aiops"

#: Every optional part switched on, so each template renders into something validated.
EVERYTHING: dict[str, Any] = {
    "ingress": {"enabled": True, "gateway": {"tlsSecretName": "gw-tls"}, "ingestion": {"enabled": True}},
    "gateway": {
        "oidc": {"issuer": "https://id.example.com", "audience": "aiops"},
        "ingestToken": "t0ken",
        "bootstrapAdminKey": {"enabled": True},
    },
    "storeCredentials": {"neo4j": {"username": "neo4j", "password": "p@ss/word"}},
    "action": {
        "notify": {"config": {"channels": [{"name": "ops", "kind": "slack", "url": "https://hooks.example.com/x"}]}},
        "runbooks": {"restart.yaml": "id: restart\nsteps: []\n"},
        "llmApiKey": "k",
        "kubernetes": {"cordon": True},
    },
    "keda": {"enabled": True},
    "services": {
        "stream": {"replicas": 2, "autoscaling": {"enabled": True, "minReplicas": 2}},
        "gateway": {"replicas": 2, "autoscaling": {"enabled": True, "minReplicas": 2}},
        "rca": {"replicas": 2, "dataClaim": "rca-data"},
        "detection": {"gpu": {"enabled": True}, "modelsClaim": "aiops-models"},
    },
}

#: What each Kubernetes client call of the action executor needs: (API group, resource, verb).
CALL_RIGHTS: dict[str, tuple[str, str, str]] = {
    "read_namespaced_deployment": ("apps", "deployments", "get"),
    "patch_namespaced_deployment": ("apps", "deployments", "patch"),
    "read_namespaced_deployment_scale": ("apps", "deployments/scale", "get"),
    "patch_namespaced_deployment_scale": ("apps", "deployments/scale", "patch"),
    "list_namespaced_replica_set": ("apps", "replicasets", "list"),
    "read_node": ("", "nodes", "get"),
    "patch_node": ("", "nodes", "patch"),
}

#: A ScaledObject's shape (KEDA's CRD is not among the built-in schemas): what the chart relies on.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "minReplicaCount", "maxReplicaCount", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"enum": ["cpu", "memory", "kafka"]},
                            "metricType": {"enum": ["Utilization", "AverageValue", "Value"]},
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                        "additionalProperties": False,
                    },
                },
            },
        },
    },
}


# -------------------------------------------------------------------------------------------------- rendering


def _values_file(path: Path) -> dict[str, Any]:
    return helm_python.values_from_yaml(path.read_text(encoding="utf-8"))


def _render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with helm_python.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


@cache
def _rendered(profile: str) -> tuple[dict[str, Any], ...]:
    values = {"default": {}, "multizone": _values_file(MULTIZONE), "everything": EVERYTHING}[profile]
    return tuple(_render(values))


def _of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _by_component(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in _of_kind(docs, kind)}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert not selector.get("matchExpressions"), "the chart selects by labels only"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _default_values() -> dict[str, Any]:
    with helm_python.Chart.load(str(CHART)) as chart:
        values: dict[str, Any] = chart.values
        return values


def _scaling(docs: tuple[dict[str, Any], ...], deployment: dict[str, Any]) -> tuple[int, int]:
    """(fewest, most) replicas of a Deployment: its autoscaler's bounds, or its fixed count."""
    name = deployment["metadata"]["name"]
    for hpa in _of_kind(docs, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == name:
            return hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    for scaled in _of_kind(docs, "ScaledObject"):
        if scaled["spec"]["scaleTargetRef"]["name"] == name:
            return scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]
    replicas: int = deployment["spec"]["replicas"]
    return replicas, replicas


def _env(container: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# ---------------------------------------------------------------------------------------- lint and validation


@pytest.mark.parametrize("values_file", [None, MULTIZONE], ids=["default", "multizone"])
def test_chart_lints_clean(values_file: Path | None) -> None:
    values = _values_file(values_file) if values_file else None
    report = helm_python.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("profile", ["default", "multizone", "everything"])
def test_every_manifest_validates_against_kubernetes(profile: str) -> None:
    docs = _rendered(profile)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ServiceAccount", "NetworkPolicy"} <= kinds
    for doc in docs:
        if doc["kind"] == "ScaledObject":
            # KEDA's CRD is not in kubernetes-validate; its fields are checked against the shape above.
            jsonschema.validate(doc, SCALED_OBJECT_SCHEMA)
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_optional_parts_render_when_switched_on() -> None:
    docs = _rendered("everything")
    kinds = {d["kind"] for d in docs}
    assert {"Ingress", "ConfigMap", "Job", "ClusterRole", "ScaledObject", "HorizontalPodAutoscaler"} <= kinds
    stores = next(d for d in _of_kind(docs, "Secret") if d["metadata"]["name"] == "aiops-stores")
    # Credentials are URL-escaped into the store URL.
    assert stores["stringData"]["AIOPS_TOPOLOGY_URL"].startswith("neo4j://neo4j:p%40ss%2Fword@")
    action = _by_component(docs, "Deployment")["action"]["spec"]["template"]["spec"]
    env = _env(action["containers"][0])
    assert env["AIOPS_ACTION_NOTIFY_FILE"] == "/etc/aiops/notify/notify.yaml"
    assert env["AIOPS_ACTION_RUNBOOKS_DIR"] == "/etc/aiops/runbooks"
    mounts = {m["mountPath"]: m["name"] for m in action["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in action["volumes"]}
    assert volumes[mounts["/etc/aiops/notify"]]["secret"]["secretName"] == "aiops-action-notify"
    assert volumes[mounts["/etc/aiops/runbooks"]]["configMap"]["name"] == "aiops-runbooks"
    notify = next(d for d in _of_kind(docs, "Secret") if d["metadata"]["name"] == "aiops-action-notify")
    assert yaml.safe_load(notify["stringData"]["notify.yaml"])["channels"][0]["url"] == "https://hooks.example.com/x"
    detection = _by_component(docs, "Deployment")["detection"]["spec"]["template"]["spec"]
    assert _env(detection["containers"][0])["AIOPS_DETECT_MODEL_URL"] == "file:///var/lib/aiops-models"
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "aiops-models"}} in detection["volumes"]
    assert _env(action["containers"][0])["AIOPS_ACTION_UI_URL"] == "https://aiops.example.com"
    rca = _by_component(docs, "Deployment")["rca"]["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "rca-data"}} in rca["volumes"]


# ------------------------------------------------------------------------------------------ multi-zone promises


def test_multizone_deployments_spread_over_zones_and_hosts() -> None:
    docs = _rendered("multizone")
    deployments = _by_component(docs, "Deployment")
    assert set(deployments) == set(discover_services())
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        spread = {c["topologyKey"]: c for c in pod["spec"]["topologySpreadConstraints"]}
        assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "DoNotSchedule", name
        assert "kubernetes.io/hostname" in spread, name
        assert all(_selects(c["labelSelector"], labels) for c in spread.values()), name
        anti = pod["spec"]["affinity"]["podAntiAffinity"]
        terms = [t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
        terms += anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        assert any(t["topologyKey"] == "kubernetes.io/hostname" and _selects(t["labelSelector"], labels) for t in terms)


def test_multizone_every_deployment_has_a_pdb_below_its_replicas() -> None:
    docs = _rendered("multizone")
    budgets = _of_kind(docs, "PodDisruptionBudget")
    for name, deployment in _by_component(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        mine = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        assert len(mine) == 1, name
        fewest, _ = _scaling(docs, deployment)
        # A budget as large as the replica count would block every node drain.
        assert 1 <= mine[0]["spec"]["minAvailable"] < fewest, name


def test_multizone_replicas_bounded_by_partitions() -> None:
    docs = _rendered("multizone")
    services = _default_values()["services"]
    topics = {t.name: t.partitions for t in ALL_TOPICS}
    for name, deployment in _by_component(docs, "Deployment").items():
        block = services[name]
        fewest, most = _scaling(docs, deployment)
        if "partitions" in block:
            # The partitions noted in values are the topic table's; beyond them (and one warm standby) pods idle.
            assert block["partitions"] == topics[block["consumes"]], name
            useful = max(block["partitions"], 2)
            assert most <= useful, name
            assert fewest >= min(3, useful), name
        else:
            assert fewest >= 3, name
            assert most >= fewest, name


def test_multizone_pods_are_non_root_read_only_and_probed() -> None:
    docs = _rendered("multizone")
    for name, deployment in _by_component(docs, "Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is (name == "action"), name
        writable = {v["name"] for v in spec["volumes"] if "emptyDir" in v or "persistentVolumeClaim" in v}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][part]), name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts[DATA_DIR] in writable and mounts["/tmp"] in writable, name
            env = _env(container)
            assert env["AIOPS_DATA_DIR"] == DATA_DIR
            assert env["AIOPS_WORKER_HTTP_HOST"] == "0.0.0.0"
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["probes"] == int(env["AIOPS_WORKER_HTTP_PORT"] or 0) == 8081
            probe_port = "http" if name == "gateway" else "probes"
            for probe, path in (
                ("startupProbe", "/health"),
                ("livenessProbe", "/health"),
                ("readinessProbe", "/ready"),
            ):
                assert container[probe]["httpGet"] == {"path": path, "port": probe_port}, (name, probe)
            assert container["args"] == ["worker", name]
            assert (
                container["image"]
                .rsplit(":", 1)[0]
                .endswith(f"/aiops-{name}-cuda" if name == "detection" else f"/aiops-{name}")
            )


def test_multizone_gpu_pool_for_tier_3() -> None:
    docs = _rendered("multizone")
    detection = _by_component(docs, "Deployment")["detection"]["spec"]["template"]["spec"]
    gpu = _default_values()["services"]["detection"]["gpu"]
    assert detection["nodeSelector"] == gpu["nodeSelector"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in detection["tolerations"]
    container = detection["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert _env(container)["AIOPS_DETECT_DEVICE"] == "cuda"
    others = _by_component(docs, "Deployment")
    assert all("nodeSelector" not in d["spec"]["template"]["spec"] for n, d in others.items() if n != "detection")


def test_multizone_keda_scales_faust_services_on_their_consumer_group_lag() -> None:
    docs = _rendered("multizone")
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in _of_kind(docs, "ScaledObject")}
    assert set(scaled) == {"aiops-stream", "aiops-detection"}
    triggers = {t["type"]: t["metadata"] for t in scaled["aiops-stream"]["spec"]["triggers"]}
    assert triggers["kafka"]["consumerGroup"] == "aiops-stream"
    assert triggers["kafka"]["topic"] == "metrics.raw"
    assert triggers["kafka"]["bootstrapServers"].count(":9092") == 3
    # No plain HPA fights KEDA's over the same Deployment.
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in _of_kind(docs, "HorizontalPodAutoscaler")}
    assert not hpas & set(scaled)


# ------------------------------------------------------------------------------------------ network policies


def _policies_for(docs: tuple[dict[str, Any], ...], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [p for p in _of_kind(docs, "NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)]


def _ports(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for r in rules for p in r.get("ports", [])}


@pytest.mark.parametrize("profile", ["default", "multizone", "everything"])
def test_every_pod_is_under_default_deny_and_its_own_policy(profile: str) -> None:
    docs = _rendered(profile)
    deny = [p for p in _of_kind(docs, "NetworkPolicy") if p["metadata"]["name"].endswith("-default-deny")]
    assert len(deny) == 1
    assert deny[0]["spec"]["podSelector"] == {"matchLabels": RELEASE_LABELS}
    assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny[0]["spec"].get("ingress") and not deny[0]["spec"].get("egress")
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in _of_kind(docs, "Deployment") + _of_kind(docs, "Job")]
    for labels in pods:
        policies = _policies_for(docs, labels)
        assert deny[0] in policies, labels
        assert len(policies) == 2, labels


def test_multizone_network_flows_are_the_architectures() -> None:
    docs = _rendered("multizone")
    values = _values_file(MULTIZONE)
    defaults = _default_values()
    backends = defaults["networkPolicy"]["backends"]
    store_ports = {name: set(b["ports"]) for name, b in backends.items()}
    controller = defaults["networkPolicy"]["ingressController"]
    for name, deployment in _by_component(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (policy,) = [p for p in _policies_for(docs, labels) if not p["metadata"]["name"].endswith("-default-deny")]
        ingress, egress = policy["spec"]["ingress"], policy["spec"]["egress"]
        stores = set(defaults["services"][name]["stores"])
        assert "kafka" in stores
        wanted = {53} | {p for s in stores for p in store_ports[s]}
        if name == "gateway":
            wanted.add(4318)  # forwards writes to ingestion
        if name == "action":
            wanted |= set(defaults["networkPolicy"]["kubeApi"]["ports"])
            wanted |= set(values["networkPolicy"]["actionWebhooks"]["ports"])
        assert _ports(egress) == wanted, name
        open_to = {p["port"]: r["from"] for r in ingress for p in r["ports"]}
        expected_in = {8081} | {p["port"] for p in defaults["services"][name]["ports"]}
        assert set(open_to) == expected_in, name
        if name in ("gateway", "ingestion"):
            front = 8080 if name == "gateway" else 4318
            assert all(peer in open_to[front] for peer in controller), name
    action = next(p for p in _of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "aiops-action")
    api = [r for r in action["spec"]["egress"] if set(defaults["networkPolicy"]["kubeApi"]["ports"]) <= _ports([r])]
    assert api[0]["to"] == [{"ipBlock": {"cidr": c}} for c in defaults["networkPolicy"]["kubeApi"]["cidrs"]]


def _opens_the_feedback_store(service: str) -> bool:
    """Whether a service's code opens the feedback store (reads ``feedback_url``), by its package's source."""
    spec = find_spec(f"aiops_{service}")
    assert spec is not None and spec.origin is not None
    return any(".feedback_url" in path.read_text(encoding="utf-8") for path in Path(spec.origin).parent.rglob("*.py"))


def _feedback_env(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in container.get("env", []) if e["name"] == "AIOPS_FEEDBACK_URL"]


@pytest.mark.parametrize("profile", ["default", "multizone"])
def test_every_replica_that_opens_the_feedback_store_gets_the_one_shared_store(profile: str) -> None:
    docs = _rendered(profile)
    readers = {name for name in discover_services() if _opens_the_feedback_store(name)}
    assert readers == {"detection", "rca", "gateway"}
    for name, deployment in _by_component(docs, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        found = _feedback_env(container)
        if name not in readers:
            assert found == [], name
            continue
        # From the stores Secret, never a default under the pod's own data dir (one SQLite file per pod).
        assert found == [
            {
                "name": "AIOPS_FEEDBACK_URL",
                "valueFrom": {"secretKeyRef": {"name": "aiops-stores", "key": "AIOPS_FEEDBACK_URL"}},
            }
        ], name
        assert "elasticsearch" in _default_values()["services"][name]["stores"], f"{name} must reach Elasticsearch"


def test_the_feedback_store_is_the_document_stores_elasticsearch_under_its_own_prefix() -> None:
    from aiops_common.documents import DOCUMENT_BACKENDS
    from aiops_common.feedback import FEEDBACK_BACKENDS

    def urls(values: dict[str, Any]) -> dict[str, str]:
        stores = next(d for d in _render(values) if d["kind"] == "Secret" and d["metadata"]["name"] == "aiops-stores")
        found: dict[str, str] = stores["stringData"]
        return found

    default = urls({})
    feedback, documents = urlsplit(default["AIOPS_FEEDBACK_URL"]), urlsplit(default["AIOPS_DOCUMENTS_URL"])
    assert FEEDBACK_BACKENDS.resolve(default["AIOPS_FEEDBACK_URL"]).__name__ == "ElasticsearchFeedbackStore"
    assert DOCUMENT_BACKENDS.resolve(default["AIOPS_DOCUMENTS_URL"]).__name__ == "ElasticsearchDocumentStore"
    assert (feedback.scheme, feedback.netloc) == (documents.scheme, documents.netloc)
    assert (feedback.path, documents.path) == ("/aiops-feedback", "")
    secured = urls(
        {
            "endpoints": {"elasticsearch": "elasticsearchs://es.example:9243/prod"},
            "storeCredentials": {"elasticsearch": {"username": "aiops", "password": "p@ss/word"}},
        }
    )
    assert secured["AIOPS_DOCUMENTS_URL"] == "elasticsearchs://aiops:p%40ss%2Fword@es.example:9243/prod"
    assert secured["AIOPS_FEEDBACK_URL"] == "elasticsearchs://aiops:p%40ss%2Fword@es.example:9243/aiops-feedback"
    moved = {"feedbackStore": {"url": "elasticsearch://labels.example:9200", "indexPrefix": "ops-feedback"}}
    assert urls(moved)["AIOPS_FEEDBACK_URL"] == "elasticsearch://labels.example:9200/ops-feedback"

    # Moving the store rolls the pods that use it.
    def stores_checksum(docs: tuple[dict[str, Any], ...]) -> str:
        detection = _by_component(docs, "Deployment")["detection"]
        checksum: str = detection["spec"]["template"]["metadata"]["annotations"]["checksum/stores"]
        return checksum

    assert stores_checksum(tuple(_render(moved))) != stores_checksum(_rendered("default"))


# ---------------------------------------------------------------------------------------------------- RBAC


def _executor_rights() -> set[tuple[str, str, str]]:
    spec = find_spec("aiops_action.executors.kubernetes")
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text(encoding="utf-8")
    calls = set(re.findall(r"self\._(?:apps|core)\.(\w+)\(", source))
    unknown = calls - set(CALL_RIGHTS)
    assert not unknown, f"the executor calls {unknown}: add the rights they need to the chart and CALL_RIGHTS"
    return {CALL_RIGHTS[c] for c in calls}


def _granted(docs: tuple[dict[str, Any], ...], *kinds: str) -> set[tuple[str, str, str]]:
    granted: set[tuple[str, str, str]] = set()
    for doc in (d for kind in kinds for d in _of_kind(docs, kind)):
        for rule in doc["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            assert not rule.get("resourceNames") and not rule.get("nonResourceURLs")
            granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return granted


def test_action_rbac_grants_exactly_what_the_executor_calls() -> None:
    rights = _executor_rights()
    assert ("", "nodes", "patch") in rights  # the cordon this test expects to see in a ClusterRole
    docs = _rendered("multizone")
    namespaced = {r for r in rights if r[1] != "nodes"}
    roles = _of_kind(docs, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"shop", "payments"}
    for role in roles:
        assert _granted((role,), "Role") == namespaced
    assert _granted(docs, "ClusterRole") == rights - namespaced
    account = next(s for s in _of_kind(docs, "ServiceAccount") if s["metadata"]["name"] == "aiops-action")
    for binding in _of_kind(docs, "RoleBinding") + _of_kind(docs, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
        ]
    # Only the action's account carries a token.
    assert [s["metadata"]["name"] for s in _of_kind(docs, "ServiceAccount") if s["automountServiceAccountToken"]] == [
        "aiops-action"
    ]


def test_no_cluster_role_without_cordon() -> None:
    docs = _rendered("default")
    assert _of_kind(docs, "ClusterRole") == [] and _of_kind(docs, "ClusterRoleBinding") == []
    assert _granted(docs, "Role") == {r for r in _executor_rights() if r[1] != "nodes"}


# --------------------------------------------------------------------------------------- values and variables


def test_every_catalog_service_has_a_values_block() -> None:
    services = _default_values()["services"]
    assert set(services) == set(discover_services())
    for name, block in services.items():
        assert block["args"] == ["worker", name]
        assert block["image"]["repository"] == f"aiops-{name}"


def _chart_texts() -> Iterator[tuple[str, str]]:
    for path in sorted(CHART.rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".tpl", ".json"):
            yield path.relative_to(CHART).as_posix(), path.read_text(encoding="utf-8")


def test_every_aiops_variable_is_declared_by_a_settings_class() -> None:
    declared = declared_variables()
    seen: dict[str, str] = {}
    for where, text in _chart_texts():
        for variable in re.findall(r"\bAIOPS_[A-Z0-9_]*[A-Z0-9]\b", text):
            seen.setdefault(variable, where)
    for profile in ("default", "multizone", "everything"):
        for doc in _rendered(profile):
            for key in doc.get("stringData", {}):
                if key.startswith("AIOPS_"):
                    seen.setdefault(key, f"{profile} Secret")
            for pod in (doc.get("spec", {}).get("template", {}).get("spec", {}),):
                for container in pod.get("containers", []):
                    for variable in _env(container):
                        seen.setdefault(variable, f"{profile} {doc['metadata']['name']}")
    assert len(seen) > 20
    undeclared = {v: where for v, where in seen.items() if v.startswith("AIOPS_") and v not in declared}
    assert undeclared == {}


def _untyped(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """Paths of ``value`` whose schema gives no type (or accepts anything)."""
    if not any(k in schema for k in ("type", "enum", "const", "oneOf")):
        yield path
        return
    if isinstance(value, dict):
        for key, item in value.items():
            node = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
            if not isinstance(node, dict):
                yield f"{path}.{key}"
                continue
            yield from _untyped(item, node, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _untyped(item, schema.get("items", {}), f"{path}[{index}]")


@pytest.mark.parametrize("values_file", [CHART / "values.yaml", MULTIZONE], ids=["default", "multizone"])
def test_every_value_is_typed_by_the_schema(values_file: Path) -> None:
    with helm_python.Chart.load(str(CHART)) as chart:
        schema = chart.schema
        # What an install uses: the file over the chart's defaults.
        values = chart.merge_values(_values_file(values_file))
    assert isinstance(schema, dict)
    jsonschema.Draft202012Validator(schema).validate(values)
    # Free-form on purpose: the notification file, validated by the action layer when it loads it.
    values.get("action", {}).get("notify", {}).pop("config", None)
    assert list(_untyped(values, schema, "")) == []


# ------------------------------------------------------------------------------------------ refused values


@pytest.mark.parametrize(
    ("values", "error", "says"),
    [
        ({"services": {"stream": {"replicas": "three"}}}, helm_python.HelmValuesError, "/services/stream/replicas"),
        ({"endpoints": {"kafka": "http://kafka:9092"}}, helm_python.HelmValuesError, "/endpoints/kafka"),
        (
            {"services": {"gateway": {"env": {"GATEWAY_PORT": "1"}}}},
            helm_python.HelmValuesError,
            "'GATEWAY_PORT' does not match",
        ),
        ({"topologySpread": {"zone": {"whenUnsatisfiable": "Sometimes"}}}, helm_python.HelmValuesError, "zone"),
        ({"services": {"correlation": {"replicas": 3}}}, helm_python.HelmRenderError, "1 partition"),
        (
            {"services": {"detection": {"autoscaling": {"enabled": True, "maxReplicas": 9}}}},
            helm_python.HelmRenderError,
            "at most 8 replicas",
        ),
        (
            {"podDisruptionBudget": {"enabled": True}, "services": {"rca": {"replicas": 1}}},
            helm_python.HelmRenderError,
            "no node could ever be drained",
        ),
        (
            {"services": {"stream": {"feedback": True}}},
            helm_python.HelmRenderError,
            "services.stream.feedback needs elasticsearch in its stores",
        ),
        (
            {"feedbackStore": {"url": "elasticsearch://es:9200/aiops"}},
            helm_python.HelmValuesError,
            "/feedbackStore/url",
        ),
    ],
    ids=[
        "replicas-not-integer",
        "kafka-url",
        "env-not-aiops",
        "spread-enum",
        "over-partitions",
        "hpa-over",
        "pdb",
        "feedback-unreachable",
        "feedback-url-path",
    ],
)
def test_chart_refuses_bad_values(values: dict[str, Any], error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=re.escape(says)):
        _render(values)
