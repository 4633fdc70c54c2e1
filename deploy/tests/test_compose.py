"""docker-compose.yml and deploy/compose/: Compose schema, hardening, wiring, settings and the monitoring configs."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest
import yaml
from aiops_cli.variables import declared_variables, settings_types
from aiops_common.service import discover_services

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CONFIG_DIR = ROOT / "deploy" / "compose"
GPU_FILE = CONFIG_DIR / "docker-compose.gpu.yml"
ENV_EXAMPLE = CONFIG_DIR / ".env.example"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "compose-spec.json"
DOCS = ROOT / "docs" / "compose.md"

# Container ports that may be published, by service; nothing else reaches the host's network.
PUBLISHED = {"ingestion": {4318, 4317}, "gateway": {8080}, "grafana": {3000}}
# Settings that name another server: each must be a compose service this one waits for.
URL_SETTINGS = (
    "AIOPS_BROKER_URL",
    "AIOPS_TSDB_URL",
    "AIOPS_DOCUMENTS_URL",
    "AIOPS_TOPOLOGY_URL",
    "AIOPS_FEEDBACK_URL",
    "AIOPS_DETECT_MODEL_URL",
    "AIOPS_GATEWAY_INGEST_URL",
)
# Exactly pinned: a full version (optionally v-prefixed, optionally with a variant suffix), never `latest`.
PINNED_TAG = re.compile(r":v?\d+\.\d+\.\d+(-[a-z0-9.]+)?$")
INTERPOLATION = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})")


# --- loading ------------------------------------------------------------------------------------------------------


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution (``${X}``, ``${X:-default}``, ``${X-default}``, ``$$``) over a loaded file."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op in (":?", "?") and not value:
            raise AssertionError(f"${{{name}}} is required: {arg}")
        if op in (":+", "+"):
            return arg if value else ""
        return value or ""

    if isinstance(node, str):
        return INTERPOLATION.sub(one, node)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


@cache
def raw_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@cache
def compose() -> dict[str, Any]:
    """The file as Compose sees it with the example `.env`: anchors merged, variables substituted."""
    loaded = interpolate(raw_compose(), env_example())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def platform_services() -> list[str]:
    return sorted(discover_services())


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment must be a mapping"
    return {str(key): str(value) for key, value in env.items()}


def exposed_ports(service: str) -> set[int]:
    return {int(str(port).split("/")[0]) for port in services()[service].get("expose", [])}


def mounts(service: str) -> list[tuple[str, str]]:
    """(source, target) of each volume of a service, short syntax."""
    found = []
    for volume in services()[service].get("volumes", []):
        assert isinstance(volume, str), f"{service}: volumes are written in the short syntax"
        source, target = volume.split(":")[:2]
        found.append((source, target))
    return found


def data_mount_targets(service: str) -> set[str]:
    tmpfs = services()[service].get("tmpfs", [])
    tmpfs_targets = {str(entry).split(":")[0] for entry in ([tmpfs] if isinstance(tmpfs, str) else tmpfs)}
    return {target for _, target in mounts(service)} | tmpfs_targets


def depends_on(service: str) -> dict[str, dict[str, Any]]:
    deps = services()[service].get("depends_on", {})
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    assert isinstance(deps, dict)
    return deps


def schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator_type = jsonschema.validators.validator_for(schema)
    validator_type.check_schema(schema)
    return validator_type(schema)


def schema_errors(document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in schema_validator().iter_errors(document)
    ]


# --- the Compose specification ------------------------------------------------------------------------------------


@pytest.mark.unit
def test_compose_file_validates_against_the_compose_specification() -> None:
    assert schema_errors(raw_compose()) == []
    assert schema_errors(compose()) == []


@pytest.mark.unit
def test_gpu_override_validates_and_puts_only_detection_on_a_gpu() -> None:
    override = interpolate(yaml.safe_load(GPU_FILE.read_text()), env_example())
    assert schema_errors(override) == []
    assert set(override["services"]) == {"detection"}
    detection = override["services"]["detection"]
    assert detection["build"] == {"context": ".", "target": "detection-cuda"}
    assert detection["environment"]["AIOPS_DETECT_DEVICE"] == "cuda"
    devices = detection["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


@pytest.mark.unit
def test_the_schema_refuses_what_compose_refuses() -> None:
    # The check is only worth something if the vendored schema is strict: an unknown key and a wrong type fail.
    broken = json.loads(json.dumps(compose()))
    broken["services"]["ingestion"]["restart_policy"] = "always"
    broken["services"]["stream"]["cap_drop"] = "ALL"
    errors = schema_errors(broken)
    assert any("restart_policy" in error for error in errors), errors
    assert any(error.startswith("services/stream/cap_drop") for error in errors), errors


@pytest.mark.unit
def test_every_interpolated_variable_has_a_default_and_is_in_the_example_env() -> None:
    example = env_example()
    used: set[str] = set()
    for path in (COMPOSE_FILE, GPU_FILE):
        for line in path.read_text().splitlines():
            code = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
            for match in INTERPOLATION.finditer(code):
                if match.group(0) == "$$":
                    continue
                used.add(match.group("name"))
                assert match.group("op") == ":-", f"{path.name}: {match.group(0)} needs a default for a bare start"
                assert example.get(match.group("name")) == match.group("arg"), (
                    f"{match.group(0)}: .env.example must show the same default"
                )
    assert used == set(example), "every variable of .env.example is used, and every used one is documented there"


# --- settings -----------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_every_aiops_variable_anywhere_is_declared_by_a_settings_class() -> None:
    declared = declared_variables()
    mentioned: dict[str, set[str]] = {}
    for path in (COMPOSE_FILE, GPU_FILE, ENV_EXAMPLE):
        for name in re.findall(r"\bAIOPS_[A-Z0-9_]+", path.read_text()):
            mentioned.setdefault(name, set()).add(path.name)
    assert len(mentioned) > 10
    unknown = {name: sorted(files) for name, files in mentioned.items() if name not in declared}
    assert unknown == {}, "configures nothing: no settings class declares these"


@pytest.mark.unit
def test_each_service_sets_only_its_own_settings() -> None:
    fields = {owner: {f"AIOPS_{name.upper()}" for name in cls.model_fields} for owner, cls in settings_types()}
    for service in platform_services():
        stray = {name for name in environment(service) if name.startswith("AIOPS_")} - fields[service]
        assert stray == set(), f"{service} sets settings its settings class does not have"


# --- the platform's containers ------------------------------------------------------------------------------------


@pytest.mark.unit
def test_every_service_of_the_catalog_runs_in_its_own_container() -> None:
    assert platform_services() == sorted(
        ["ingestion", "stream", "detection", "correlation", "rca", "gateway", "action"]
    )
    for service in platform_services():
        spec = services()[service]
        assert spec["command"] == ["worker", service]
        assert spec["build"] == {"context": ".", "target": service}
        assert spec["image"] == f"aiops-{service}:dev"


@pytest.mark.unit
def test_every_image_is_pinned_to_an_exact_version() -> None:
    for name, spec in services().items():
        if "build" in spec:
            assert spec["image"].endswith(":dev") and spec["image"].startswith("aiops-"), name
            continue
        image = spec["image"]
        assert "latest" not in image and "@" not in image, f"{name}: {image}"
        assert PINNED_TAG.search(image), f"{name}: {image} is not pinned to an exact version"


@pytest.mark.unit
@pytest.mark.parametrize("service", ["ingestion", "stream", "detection", "correlation", "rca", "gateway", "action"])
def test_platform_containers_are_hardened_and_probed(service: str) -> None:
    spec = services()[service]
    env = environment(service)
    assert spec["restart"] == "unless-stopped"
    assert spec["read_only"] is True
    assert "no-new-privileges:true" in spec["security_opt"]
    assert spec["cap_drop"] == ["ALL"]
    assert spec.get("privileged") is not True
    user = str(spec["user"]).split(":")[0]
    assert user.isdigit() and int(user) != 0, "runs as a non-root uid"
    # State lives on a volume or tmpfs, never on the (read-only) root filesystem.
    assert env["AIOPS_DATA_DIR"] in data_mount_targets(service)
    assert "/tmp" in data_mount_targets(service)
    assert env["AIOPS_LOG_FORMAT"] == "json"
    # The probe server listens where the healthcheck and Prometheus look.
    assert env["AIOPS_WORKER_HTTP_HOST"] == "0.0.0.0"
    probe_port = int(env["AIOPS_WORKER_HTTP_PORT"])
    assert probe_port in exposed_ports(service)
    test = " ".join(spec["healthcheck"]["test"])
    urls = re.findall(r"https?://[^'\" ]+", test)
    assert len(urls) == 1, test
    probe = urlsplit(urls[0])
    assert probe.hostname == "127.0.0.1" and probe.path == "/health"
    expected = int(env["AIOPS_GATEWAY_PORT"]) if service == "gateway" else probe_port
    assert probe.port == expected
    assert probe.port in exposed_ports(service)


@pytest.mark.unit
def test_only_ingestion_the_gateway_and_grafana_publish_ports_on_the_chosen_address() -> None:
    publishing: dict[str, set[int]] = {}
    for name, spec in services().items():
        for port in spec.get("ports", []):
            fields = str(port).split(":")
            assert len(fields) == 3, f"{name}: {port} must name the host address (PUBLISH_ADDRESS)"
            address, host_port, container_port = fields
            assert address == env_example()["PUBLISH_ADDRESS"] == "127.0.0.1", f"{name}: loopback unless .env says"
            assert host_port == container_port
            publishing.setdefault(name, set()).add(int(container_port))
            assert int(container_port) in exposed_ports(name)
    assert publishing == PUBLISHED
    ingestion, gateway = environment("ingestion"), environment("gateway")
    assert {int(ingestion["AIOPS_INGEST_HTTP_PORT"]), int(ingestion["AIOPS_INGEST_GRPC_PORT"])} == PUBLISHED[
        "ingestion"
    ]
    assert ingestion["AIOPS_INGEST_HTTP_HOST"] == ingestion["AIOPS_INGEST_GRPC_HOST"] == "0.0.0.0"
    assert {int(gateway["AIOPS_GATEWAY_PORT"])} == PUBLISHED["gateway"] and gateway["AIOPS_GATEWAY_HOST"] == "0.0.0.0"


def _server_urls(service: str) -> Iterator[tuple[str, str]]:
    for name in URL_SETTINGS:
        if name in environment(service):
            yield name, environment(service)[name]


@pytest.mark.unit
@pytest.mark.parametrize("service", ["ingestion", "stream", "detection", "correlation", "rca", "gateway", "action"])
def test_store_urls_point_at_compose_services_this_one_waits_for(service: str) -> None:
    deps = depends_on(service)
    urls = dict(_server_urls(service))
    assert "AIOPS_BROKER_URL" in urls
    for name, url in urls.items():
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            folder = str(Path(parts.path.removeprefix("/")).parent)
            assert folder in data_mount_targets(service), f"{name}: {url} is not on a volume"
            continue
        for host_port in parts.netloc.rsplit("@", 1)[-1].split(";"):
            host, _, port = host_port.partition(":")
            assert host in services(), f"{service}: {name} names {host}, not a compose service"
            assert int(port) in exposed_ports(host), f"{service}: {name}: {host} does not listen on {port}"
            assert deps.get(host, {}).get("condition") == "service_healthy", f"{service} must wait for {host}"


@pytest.mark.unit
def test_store_credentials_are_the_backends_own() -> None:
    neo4j_user, _, neo4j_password = environment("neo4j")["NEO4J_AUTH"].partition("/")
    elastic_password = environment("elasticsearch")["ELASTIC_PASSWORD"]
    checked = 0
    for service in platform_services():
        for name, url in _server_urls(service):
            parts = urlsplit(url)
            if parts.hostname == "neo4j":
                assert (unquote(parts.username or ""), unquote(parts.password or "")) == (neo4j_user, neo4j_password)
                checked += 1
            if parts.hostname == "elasticsearch":
                assert (parts.username, unquote(parts.password or "")) == ("elastic", elastic_password), name
                checked += 1
    assert checked >= 7


@pytest.mark.unit
def test_the_feedback_store_is_the_document_stores_elasticsearch_under_its_own_prefix() -> None:
    from aiops_common.feedback import FEEDBACK_BACKENDS

    sharing = {
        service: url for service in platform_services() if (url := environment(service).get("AIOPS_FEEDBACK_URL"))
    }
    assert set(sharing) == {"detection", "rca", "gateway"}
    assert len(set(sharing.values())) == 1
    url = next(iter(sharing.values()))
    # A server every replica reaches, not a file on one host's volume.
    assert FEEDBACK_BACKENDS.resolve(url).__name__ == "ElasticsearchFeedbackStore"
    feedback, documents = urlsplit(url), urlsplit(environment("detection")["AIOPS_DOCUMENTS_URL"])
    assert (feedback.scheme, feedback.netloc) == (documents.scheme, documents.netloc)
    # Indices aiops-feedback-*, apart from the document store's aiops-<collection> (it has an anomalies one too).
    assert (feedback.path, documents.path) == ("/aiops-feedback", "")
    assert "aiops-feedback" not in compose()["volumes"]


@pytest.mark.unit
def test_references_between_services_volumes_and_files_exist() -> None:
    declared_volumes = set(compose()["volumes"])
    used_volumes: set[str] = set()
    for name in services():
        for dep, rule in depends_on(name).items():
            assert dep in services(), f"{name} depends on {dep}, which is not a service"
            if rule.get("condition") == "service_healthy":
                assert "healthcheck" in services()[dep], f"{name} waits for {dep} to be healthy; it has no healthcheck"
            if rule.get("condition") == "service_completed_successfully":
                assert services()[dep].get("restart") == "no", f"{dep} runs once"
        for source, _ in mounts(name):
            if source.startswith((".", "/")):
                if source.startswith("./"):
                    assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in declared_volumes, f"{name} uses volume {source}, not declared"
                used_volumes.add(source)
    assert used_volumes == declared_volumes, "every declared volume is used"
    # Every platform volume is handed to the services' uid before they start.
    init = {source for source, _ in mounts("volume-init")}
    for service in platform_services():
        assert {source for source, _ in mounts(service)} <= init
        assert str(services()[service]["user"]).split(":")[0] in services()["volume-init"]["command"][2]


# --- Prometheus, Alertmanager, Grafana ----------------------------------------------------------------------------


def prometheus_config() -> dict[str, Any]:
    loaded = yaml.safe_load((CONFIG_DIR / "prometheus.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def ingestion_routes() -> str:
    return (ROOT / "services" / "ingestion" / "aiops_ingestion" / "http_api.py").read_text()


def assert_names_service_port(address: str) -> None:
    host, _, port = address.partition(":")
    assert host in services(), f"{address}: {host} is not a compose service"
    assert int(port) in exposed_ports(host), f"{address}: {host} does not listen on {port}"


@pytest.mark.unit
def test_prometheus_scrapes_every_service_and_writes_to_ingestion() -> None:
    config = prometheus_config()
    targets = [
        target for job in config["scrape_configs"] for group in job["static_configs"] for target in group["targets"]
    ]
    for target in targets:
        assert_names_service_port(target)
    for service in platform_services():
        assert f"{service}:{environment(service)['AIOPS_WORKER_HTTP_PORT']}" in targets
    assert "node-exporter:9100" in targets
    for alertmanagers in config["alerting"]["alertmanagers"]:
        for group in alertmanagers["static_configs"]:
            for target in group["targets"]:
                assert_names_service_port(target)
    (remote,) = config["remote_write"]
    url = urlsplit(remote["url"])
    assert_names_service_port(url.netloc)
    assert url.hostname == "ingestion" and url.port == int(environment("ingestion")["AIOPS_INGEST_HTTP_PORT"])
    assert f'"{url.path}"' in ingestion_routes(), f"ingestion serves no {url.path}"
    # The rule files sit beside the config in the container as they do here.
    mounted = dict((Path(source).name, target) for source, target in mounts("prometheus") if source.startswith("./"))
    for rule_file in config["rule_files"]:
        assert (CONFIG_DIR / rule_file).exists()
        assert mounted[rule_file] == str(Path(mounted["prometheus.yml"]).parent / rule_file)


@pytest.mark.unit
def test_alertmanager_sends_every_alert_to_ingestion() -> None:
    config = yaml.safe_load((CONFIG_DIR / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    (hook,) = receivers[config["route"]["receiver"]]["webhook_configs"]
    url = urlsplit(hook["url"])
    assert_names_service_port(url.netloc)
    assert url.hostname == "ingestion" and url.path == "/api/v1/alerts/ingest"
    assert f'"{url.path}"' in ingestion_routes()
    assert hook["send_resolved"] is True


def _require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install prometheus prometheus-alertmanager)"
        if os.environ.get("AIOPS_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.mark.functional
def test_promtool_accepts_the_prometheus_config_and_its_rules() -> None:
    promtool = _require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "config", str(CONFIG_DIR / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


@pytest.mark.functional
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    # Each expression becomes a recording rule: `promtool check rules` parses it as Prometheus would.
    exprs = [expr.replace("$__rate_interval", "5m") for _, expr in dashboard_queries()]
    rules = {"groups": [{"name": "dashboards", "rules": [{"record": f"q{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    promtool = _require_binary("promtool")
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


@pytest.mark.functional
def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = _require_binary("amtool")
    done = subprocess.run(
        [amtool, "check-config", str(CONFIG_DIR / "alertmanager.yml")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


METRIC_TYPES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
    "GaugeMetricFamily": ("",),
    "CounterMetricFamily": ("_total", "_created"),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
    "SummaryMetricFamily": ("", "_sum", "_count"),
}


@cache
def metric_names_in_code() -> frozenset[str]:
    """Every series name the platform's prometheus_client metrics expose, found in the package sources."""
    names: set[str] = set()
    for package in [*ROOT.glob("libs/*/aiops_*"), *ROOT.glob("services/*/aiops_*")]:
        for path in package.rglob("*.py"):
            text = path.read_text()
            if "prometheus_client" not in text:
                continue
            for node in ast.walk(ast.parse(text)):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                kind = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if kind not in METRIC_TYPES:
                    continue
                first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    base = first.value.removesuffix("_total") if METRIC_TYPES[kind][0] == "_total" else first.value
                    names.update(base + suffix for suffix in METRIC_TYPES[kind])
    return frozenset(names)


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def promql_metric_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:$])[A-Za-z_:][\w:]*", text):
        if re.match(r"\s*\(", text[match.end() :]) or match.group(0) in PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


def dashboards() -> dict[str, dict[str, Any]]:
    found = {path.name: json.loads(path.read_text()) for path in (CONFIG_DIR / "grafana" / "dashboards").glob("*.json")}
    assert found, "no dashboards"
    return found


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[tuple[str, str]]:
    return [
        (f"{name}: {panel['title']}", target["expr"])
        for name, dashboard in dashboards().items()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


@pytest.mark.unit
def test_promql_metric_name_extraction() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, agent) (rate(a_bucket{agent="x", le!="1e3"}[$__rate_interval]))) or b'
    assert promql_metric_names(expr) == {"a_bucket", "b"}
    assert promql_metric_names("sum(rate(c_total[5m])) by (service) / ignoring(x) d > bool 0.5e3") == {"c_total", "d"}
    code = metric_names_in_code()
    assert {"aiops_consumer_lag", "aiops_agent_dropped_records_total", "aiops_rca_analysis_seconds_bucket"} <= code


@pytest.mark.unit
def test_dashboards_query_only_metrics_the_platform_defines() -> None:
    code = metric_names_in_code()
    used: set[str] = set()
    for where, expr in dashboard_queries():
        names = promql_metric_names(expr)
        assert names, f"{where}: {expr} reads no metric"
        assert names <= code, f"{where}: {sorted(names - code)} is defined nowhere in the code"
        used |= names
    # The panels the platform's operators look at first.
    wanted = {
        "aiops_ingest_samples_total",
        "aiops_ingest_rejected_total",
        "aiops_ingest_broker_unavailable_total",
        "aiops_consumer_lag",
        "aiops_agent_dropped_records_total",
        "aiops_correlation_open_incidents",
        "aiops_rca_analysis_seconds_bucket",
        "aiops_gateway_requests_total",
        "aiops_action_executions_total",
        "aiops_notify_deliveries_total",
    }
    assert wanted <= used, f"no panel for {sorted(wanted - used)}"


@pytest.mark.unit
def test_alert_rules_query_platform_metrics_or_node_exporters() -> None:
    rules = yaml.safe_load((CONFIG_DIR / "alert-rules.yml").read_text())
    code = metric_names_in_code()
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in promql_metric_names(rule["expr"]):
                assert name in code or name == "up" or name.startswith("node_"), f"{rule['alert']}: {name}"


@pytest.mark.unit
def test_grafana_is_provisioned_with_the_prometheus_and_the_dashboards() -> None:
    provisioning = CONFIG_DIR / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert_names_service_port(urlsplit(source["url"]).netloc)
    assert urlsplit(source["url"]).hostname == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "aiops.yml").read_text())["providers"]
    grafana_mounts = dict(mounts("grafana"))
    assert grafana_mounts["./deploy/compose/grafana/dashboards"] == provider["options"]["path"]
    assert grafana_mounts["./deploy/compose/grafana/provisioning"] == "/etc/grafana/provisioning"
    uids = [dashboard["uid"] for dashboard in dashboards().values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in dashboards().items():
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"
        for panel in panels(dashboard):
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == source["uid"], f"{name}: {panel['title']}"
                assert panel["targets"], f"{name}: {panel['title']} shows nothing"


# --- docs ---------------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_docs_list_every_image_with_its_source() -> None:
    text = DOCS.read_text()
    for name, spec in services().items():
        if "build" not in spec:
            assert f"`{spec['image']}`" in text, f"docs/compose.md does not list {spec['image']} ({name})"
