"""The script executor runs real processes: argv only, scrubbed environment, time, output and memory limits."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiops_action.executors import ScriptExecutor, Step
from aiops_common.testing.eventually import eventually

pytestmark = pytest.mark.functional


def _script(folder: Path, name: str, body: str, interpreter: str = "/bin/sh") -> Path:
    path = folder / name
    path.write_text(f"#!{interpreter}\n{body}")
    path.chmod(0o755)
    return path


def _run(argv: list[str], timeout_s: float = 30.0, **arguments: Any) -> Step:
    return Step(name="script", kind="script", action="run", arguments={"argv": argv, **arguments}, timeout_s=timeout_s)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _gone(pid: int) -> bool:
    """The process has ended (absent, or a zombie nobody has reaped yet, as under a container's init)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except FileNotFoundError:
        return True


async def test_exit_codes_and_output(tmp_path: Path) -> None:
    script = _script(tmp_path, "exit.sh", 'echo "out $1"\necho "err $1" >&2\nexit "$1"\n')
    executor = ScriptExecutor()
    ok = await executor.execute(_run([str(script), "0"]))
    assert ok.ok and ok.summary == f"{script} 0: exit code 0"
    assert ok.output == "out 0\nerr 0\n" and ok.details["exit_code"] == 0
    failed = await executor.execute(_run([str(script), "1"]))
    assert not failed.ok and failed.details["exit_code"] == 1 and failed.summary.endswith("exit code 1")


async def test_a_script_past_its_timeout_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = _script(tmp_path, "hang.sh", f'sleep 300 &\necho "$$ $!" > "{pids}"\nsleep 300\n')
    started = time.monotonic()
    result = await ScriptExecutor().execute(_run([str(script)], timeout_s=1.0))
    assert not result.ok and result.details["timed_out"] is True
    assert result.summary == f"{script}: killed after 1s (timeout)"
    assert time.monotonic() - started < 60  # nowhere near the 300 s the script asked for
    shell, child = (int(pid) for pid in pids.read_text().split())
    await eventually(lambda: _gone(shell) and _gone(child), timeout=20, what="the script and its child ended")


async def test_output_is_capped_and_the_rest_counted(tmp_path: Path) -> None:
    script = _script(tmp_path, "loud.py", "import sys\nsys.stdout.write('y' * 1_048_576)\n", sys.executable)
    result = await ScriptExecutor(max_output_bytes=65_536).execute(_run([str(script)]))
    assert result.ok, result.summary
    assert result.output == "y" * 65_536
    assert result.details["output_bytes"] == 1_048_576 and result.details["output_dropped_bytes"] == 1_048_576 - 65_536


async def test_memory_beyond_the_limit_fails(tmp_path: Path) -> None:
    script = _script(
        tmp_path, "hungry.py", "block = bytearray(256 * 1024 * 1024)\nprint('allocated', len(block))\n", sys.executable
    )
    result = await ScriptExecutor(memory_bytes=192 * 1024 * 1024).execute(_run([str(script)]))
    assert not result.ok and "MemoryError" in result.output and "allocated" not in result.output
    roomy = await ScriptExecutor(memory_bytes=1024 * 1024 * 1024).execute(_run([str(script)]))
    assert roomy.ok and roomy.output == "allocated 268435456\n"  # the limit, not the script, made the difference


async def test_shell_metacharacters_are_passed_literally(tmp_path: Path) -> None:
    echo = _script(tmp_path, "argv.py", "import json, sys\nprint(json.dumps(sys.argv[1:]))\n", sys.executable)
    arguments = [
        "; rm -rf /",
        f"; touch {tmp_path}/pwned-semicolon",
        f"$(touch {tmp_path}/pwned-dollar)",
        f"`touch {tmp_path}/pwned-backtick`",
        f"| touch {tmp_path}/pwned-pipe && echo $HOME > {tmp_path}/pwned-redirect",
        "{{ config }} ${PATH} ../../etc/passwd\nsecond line",
    ]
    result = await ScriptExecutor().execute(_run([str(echo), *arguments]))
    assert result.ok, result.summary
    assert json.loads(result.output) == arguments
    assert _names(tmp_path) == ["argv.py"]


async def test_the_environment_is_scrubbed_and_the_folder_is_private(tmp_path: Path) -> None:
    executor = ScriptExecutor()
    env = await executor.execute(_run(["/usr/bin/env"]))
    assert env.ok and sorted(env.output.splitlines()) == ["LANG=C.UTF-8", "PATH=/usr/bin:/bin"]
    where = await executor.execute(_run(["/bin/pwd"]))
    scratch = Path(where.output.strip())
    assert scratch.name.startswith("aiops-script-") and scratch.name not in _names(scratch.parent)  # removed
    given = await executor.execute(_run(["/bin/pwd"], cwd=str(tmp_path)))
    assert given.output.strip() == str(tmp_path)
    stdin = await executor.execute(_run(["/bin/cat"], timeout_s=20))
    assert stdin.ok and stdin.output == ""  # stdin is empty, not the worker's


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sh", "-c", "id"], "must be an absolute path"),
        (["/bin/sh -c id"], "no program at /bin/sh -c id"),
        (["{plain file}"], "is not an executable file"),
        (["/usr/bin"], "is not an executable file"),
        (["/bin/echo", "a\x00b"], "argument 1 contains a NUL character"),
        (["/bin/echo", 5], "argument 1 is not a string"),
        (["/bin/echo", "x" * 200_000], "argument 1 is longer than"),
        ("/bin/echo hi", "argv must be a non-empty list"),
        ([], "argv must be a non-empty list"),
    ],
)
async def test_bad_commands_are_refused_before_anything_runs(argv: Any, expected: str, tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("not a program\n")
    if argv == ["{plain file}"]:
        argv = [str(plain)]
    executor = ScriptExecutor()
    for result in (await executor.dry_run(_run(argv)), await executor.execute(_run(argv))):
        assert not result.ok and expected in result.summary, result.summary
        assert "exit_code" not in result.details


async def test_dry_run_checks_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = _script(tmp_path, "mark.sh", f'touch "{marker}"\n')
    result = await ScriptExecutor().dry_run(_run([str(script), "it's"], timeout_s=7))
    assert result.ok and result.summary == f"would run {script} 'it'\"'\"'s'"
    assert "7s, 512 MiB address space" in result.output
    assert not marker.exists()
    outside = await ScriptExecutor(allowed_dirs=[Path("/usr/local/aiops-scripts")]).dry_run(_run([str(script)]))
    assert not outside.ok and "outside the folders scripts may run from" in outside.summary
    assert os.access(script, os.X_OK)
