"""Loading runbooks from a folder of YAML files: every bad file is one error that names the file and the field."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from aiops_action.runbooks.model import Runbook

if TYPE_CHECKING:
    from aiops_action.settings import ActionSettings

__all__ = [
    "SHIPPED_DIR",
    "RunbookError",
    "RunbookFolder",
    "RunbookLoadError",
    "load_configured",
    "load_folder",
    "load_runbook",
    "parse_runbook",
    "runbooks_dir",
]

SHIPPED_DIR = Path(__file__).parent / "shipped"
"""The runbooks shipped with the platform, used when ``AIOPS_ACTION_RUNBOOKS_DIR`` is unset."""

MAX_FILE_BYTES = 1 << 20
_INNER = re.compile(r"([A-Za-z_\[][\w.\[\]-]*): (.*)")


class RunbookError(ValueError):
    """One bad runbook file: ``problems`` are ``field: message`` lines, each shown after the file's name."""

    def __init__(self, file: str, problems: Sequence[str]) -> None:
        self.file = file
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{file}: {p}" for p in self.problems))


class RunbookLoadError(ValueError):
    """A folder with bad runbooks: every problem of every file, one per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class RunbookFolder:
    """What a folder holds: the valid runbooks (by id), the file of each, and every problem found."""

    folder: Path
    runbooks: tuple[Runbook, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def checked(self) -> tuple[Runbook, ...]:
        """The runbooks, or ``RunbookLoadError`` with every problem when there is any."""
        if self.problems:
            raise RunbookLoadError(self.problems)
        return self.runbooks


def _location(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("function-after[_references(), dict[str,any]]",):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def _messages(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        # a union of str and {param: NAME} reports one error per branch: the location ends in the branch's type
        loc = [p for p in error["loc"] if not (isinstance(p, str) and (p in ("str", "ParamRef") or "[" in p))]
        message = str(error["msg"]).removeprefix("Value error, ")
        where = _location(loc)
        for line in message.splitlines():
            # a check of a whole part names the field inside it first ("service: ..."): one path, not two
            inner = _INNER.match(line)
            if inner and where:
                sep = "" if inner[1].startswith("[") else "."
                problems.append(f"{where}{sep}{inner[1]}: {inner[2]}")
            else:
                problems.append(line if not where else f"{where}: {line}")
    return list(dict.fromkeys(problems))


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (plain YAML keeps the last one, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_runbook(path: Path, name: str | None = None) -> Runbook:
    """One runbook file, checked; ``RunbookError`` (named ``name``, default the file's name) with every problem."""
    shown = name or path.name
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise RunbookError(shown, [f"larger than {MAX_FILE_BYTES} bytes"])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookError(shown, [f"cannot be read: {exc}"]) from None
    return parse_runbook(text, shown)


def parse_runbook(text: str, name: str) -> Runbook:
    """A runbook from its YAML text, checked; ``RunbookError`` names ``name`` (the file) with every problem."""
    try:
        body: Any = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RunbookError(name, [f"{where}not valid YAML: {problem}"]) from None
    if not isinstance(body, dict):
        raise RunbookError(name, ["expected a mapping (id, version, title, match, steps, ...)"])
    try:
        return Runbook.model_validate(body)
    except ValidationError as exc:
        raise RunbookError(name, _messages(exc)) from None


def load_folder(folder: Path) -> RunbookFolder:
    """Every ``*.yaml``/``*.yml`` below ``folder``, in name order; ids must be unique across the folder."""
    if not folder.is_dir():
        return RunbookFolder(folder, problems=(f"{folder}: not a folder",))
    paths = sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    runbooks: list[Runbook] = []
    files: dict[str, str] = {}
    problems: list[str] = []
    for path in paths:
        name = path.relative_to(folder).as_posix()
        try:
            runbook = load_runbook(path, name)
        except RunbookError as exc:
            problems += [f"{exc.file}: {p}" for p in exc.problems]
            continue
        if runbook.id in files:
            problems.append(f"{name}: id: {runbook.id!r} is already the id of {files[runbook.id]}")
            continue
        runbooks.append(runbook)
        files[runbook.id] = name
    return RunbookFolder(folder, tuple(runbooks), files, tuple(problems))


def runbooks_dir(settings: ActionSettings) -> Path:
    """The configured folder, else the shipped runbooks."""
    return settings.action_runbooks_dir if settings.action_runbooks_dir is not None else SHIPPED_DIR


def load_configured(settings: ActionSettings) -> tuple[Runbook, ...]:
    """The runbooks the action service uses; ``RunbookLoadError`` lists every problem (the service does not start
    with a half-read knowledge base)."""
    return load_folder(runbooks_dir(settings)).checked()
