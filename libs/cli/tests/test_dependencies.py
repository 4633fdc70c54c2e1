"""Every third-party import of each package is declared in pyproject.toml, in the extra that installs it."""

from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
BASE = "base"  # the [project] dependencies every install gets
DEV = "dev"  # what the tests need: a package's ``testing`` module (servers and data for tests) may import it


def _for_tests(path: Path) -> bool:
    return path.stem == "testing" or "testing" in path.parent.parts


#: Where each package lives and which extras (beyond the base) may install its imports.
#: A service's own extra is named like it; aiops_common's embedded broker and Elasticsearch document
#: store, and the CLI's host metrics, import their extra's packages only when used
#: (aiops_common.extras.requires_extra).
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "aiops_common": ("libs/common/aiops_common", ("embedded", "elasticsearch")),
    "aiops_cli": ("libs/cli/aiops_cli", ("host-metrics",)),
    "aiops_ingestion": ("services/ingestion/aiops_ingestion", ("ingestion",)),
    "aiops_stream": ("services/stream/aiops_stream", ("stream",)),
    "aiops_detection": ("services/detection/aiops_detection", ("detection",)),
    "aiops_gateway": ("services/gateway/aiops_gateway", ("gateway", "elasticsearch")),  # its driver errors, when there
    "aiops_action": ("services/action/aiops_action", ("action",)),
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _declared() -> dict[str, set[str]]:
    """Distribution names by extra (``base`` for the plain dependencies), as pyproject.toml declares them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {BASE: project["dependencies"], **project["optional-dependencies"]}
    return {extra: {_canonical(Requirement(r).name) for r in reqs} for extra, reqs in groups.items()}


def _imports(package_dir: Path) -> Iterator[tuple[str, str, Path]]:
    """(module, first imported name or "", file) of every absolute third-party import, lazy ones included.

    A module looked up by a literal name (``find_spec("swagger_ui")``, ``import_module("x")``) counts too.
    """
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [(alias.name, "") for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [(node.module, node.names[0].name)]
            elif (module := _imported_by_name(node)) is not None:
                found = [(module, "")]
            else:
                continue
            for module, name in found:
                top = module.partition(".")[0]
                if top in sys.stdlib_module_names or top == "__future__" or top.startswith("aiops_"):
                    continue
                yield module, name, path


def _imported_by_name(node: ast.AST) -> str | None:
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
        return None
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    name = node.args[0].value
    return name if called in ("find_spec", "import_module") and isinstance(name, str) else None


@cache
def _top_level_distributions() -> dict[str, list[str]]:
    return md.packages_distributions()


@cache
def _distribution(module: str, name: str) -> str:
    """The distribution that installs ``module``; namespace packages (``opentelemetry``) by the module's file."""
    top = module.partition(".")[0]
    candidates = _top_level_distributions().get(top, [])
    if not candidates:
        raise LookupError(f"no installed distribution provides {module!r}")
    if len(set(candidates)) == 1:
        return _canonical(candidates[0])
    origin = None
    for dotted in (f"{module}.{name}", module) if name else (module,):
        try:
            spec = importlib.util.find_spec(dotted)
        except ModuleNotFoundError:
            continue
        if spec is not None and spec.origin not in (None, "namespace"):
            origin = Path(spec.origin).resolve()
            break
    if origin is None:
        raise LookupError(f"cannot tell which of {sorted(set(candidates))} provides {module!r}")
    for dist_name in set(candidates):
        dist = md.distribution(dist_name)
        if any(Path(str(dist.locate_file(f))).resolve() == origin for f in dist.files or ()):
            return _canonical(dist_name)
    raise LookupError(f"none of {sorted(set(candidates))} holds {origin}")


@pytest.mark.parametrize("package", list(PACKAGES))
def test_every_third_party_import_is_declared_where_the_package_gets_it(package: str) -> None:
    folder, extras = PACKAGES[package]
    declared = _declared()
    allowed = set().union(*(declared[e] for e in (BASE, *extras)))
    for_tests = allowed | declared[DEV]
    undeclared = sorted(
        f"{path.relative_to(ROOT)}: {module} ({dist})"
        for module, name, path in _imports(ROOT / folder)
        if (dist := _distribution(module, name)) not in (for_tests if _for_tests(path) else allowed)
    )
    assert not undeclared, f"declare these in {' or '.join((BASE, *extras))} of pyproject.toml:\n" + "\n".join(
        undeclared
    )


def test_every_declared_runtime_dependency_is_imported_by_a_package_that_may_use_it() -> None:
    declared = _declared()
    used: dict[str, set[str]] = {}
    for folder, extras in PACKAGES.values():
        dists = {_distribution(module, name) for module, name, _ in _imports(ROOT / folder)}
        for extra in (BASE, *extras):
            used.setdefault(extra, set()).update(dists & declared[extra])
    stale = {extra: sorted(declared[extra] - used.get(extra, set())) for extra in (BASE, *_service_extras())}
    assert not any(stale.values()), f"declared but imported nowhere that may use them: {stale}"


def _service_extras() -> list[str]:
    return sorted({e for _, extras in PACKAGES.values() for e in extras})


def test_all_installs_every_extra_but_dev() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (everything,) = project["optional-dependencies"]["all"]
    requirement = Requirement(everything)
    assert _canonical(requirement.name) == _canonical(project["name"])
    assert requirement.extras == set(project["optional-dependencies"]) - {"all", "dev"}
