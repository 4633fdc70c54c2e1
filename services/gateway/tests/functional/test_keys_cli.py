"""``aiops keys create/list/revoke`` on the data folder a real gateway serves: a created key works against the
gateway, a revoked one stops working within the key cache time; bad input is one line and a non-zero exit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from aiops_common.testing.eventually import eventually
from aiops_gateway.cli import commands
from aiops_gateway.testing import start_gateway
from typer.testing import CliRunner, Result

pytestmark = pytest.mark.functional

runner = CliRunner()


async def aiops_keys(*args: str) -> Result:
    """The command as `aiops keys ...` runs it (in a thread: it runs its own event loop, as from a shell)."""
    return await asyncio.to_thread(lambda: runner.invoke(commands, ["keys", *args]))


async def test_keys_made_by_the_command_work_until_revoked(
    tmp_path: Path, broker_url: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIOPS_GATEWAY_KEY_CACHE_S", "0.5")

    empty = await aiops_keys("list")
    assert empty.exit_code == 0 and "aiops keys create NAME --role admin" in empty.stdout

    first = await aiops_keys("create", "first-admin", "--role", "Admin", "--by", "installer")
    assert first.exit_code == 0, first.output
    admin_key = first.stdout.strip()
    assert admin_key.startswith("aiops_") and "\n" not in admin_key  # stdout is the key alone: KEY=$(aiops ...)
    assert "shown only now" in first.stderr

    made = await aiops_keys("create", "ci-deploy", "--role", "operator", "--json")
    assert made.exit_code == 0, made.output
    ci = json.loads(made.stdout)
    assert ci["name"] == "ci-deploy" and ci["role"] == "operator" and ci["status"] == "active"
    assert ci["key"].startswith(f"aiops_{ci['id']}_") and ci["created_by"]

    listed = await aiops_keys("list", "--json")
    assert listed.exit_code == 0
    keys = json.loads(listed.stdout)
    assert {k["name"]: k["role"] for k in keys} == {"first-admin": "admin", "ci-deploy": "operator"}
    assert "hash" not in listed.stdout and ci["key"] not in listed.stdout and admin_key not in listed.stdout
    table = await aiops_keys("list")
    assert ci["id"] in table.stdout and "installer" in table.stdout

    servers, running = await start_gateway(tmp_path, broker_url, topic_prefix)
    try:
        assert running.settings.gateway_key_cache_s == 0.5
        async with httpx.AsyncClient(base_url=running.url, timeout=30.0) as client:
            as_ci = {"Authorization": f"Bearer {ci['key']}"}
            me = await client.get("/api/v1/me", headers=as_ci)
            assert me.json() == {"name": "ci-deploy", "role": "operator", "via": "key"}
            as_admin = await client.get("/api/v1/me", headers={"X-API-Key": admin_key})
            assert as_admin.json()["role"] == "admin"

            revoked = await aiops_keys("revoke", ci["id"])
            assert revoked.exit_code == 0, revoked.output
            assert f"revoked {ci['id']} (ci-deploy, operator)" in revoked.stdout and "0.5 s" in revoked.stdout

            async def refused() -> bool:
                answer = await client.get("/api/v1/me", headers=as_ci)
                assert answer.status_code == 401, answer.text
                return bool(answer.json()["error"] == "unknown or revoked API key")

            await eventually(refused, timeout=20, what="the revoked key to be refused")
            assert (await client.get("/api/v1/me", headers={"X-API-Key": admin_key})).status_code == 200
    finally:
        await servers.stop()

    again = await aiops_keys("revoke", ci["key"])  # the key's full text names it too
    assert again.exit_code == 0 and "already revoked" in again.stdout
    active = json.loads((await aiops_keys("list", "--json")).stdout)
    assert [k["name"] for k in active] == ["first-admin"]
    everything = json.loads((await aiops_keys("list", "--all", "--json")).stdout)
    assert {k["name"]: k["status"] for k in everything} == {"first-admin": "active", "ci-deploy": "revoked"}


async def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path / "data"))
    cases = [
        (("create", "someone", "--role", "root"), 2, "no role 'root'; one of viewer, operator, approver, admin"),
        (("create", "  ", "--role", "admin"), 2, "a key needs a name"),
        (("create", "two\nlines"), 2, "one printable line"),
        (("revoke", "not-a-key!"), 2, "is not a key id"),
        (("revoke", "0123456789ab"), 1, "no key '0123456789ab'"),
    ]
    for args, code, message in cases:
        result = await aiops_keys(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.stderr and result.stderr.count("\n") == 1, (args, result.stderr)

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AIOPS_DOCUMENTS_URL", f"sqlite:///{blocker / 'documents.sqlite'}")
    unreachable = await aiops_keys("list")
    assert unreachable.exit_code == 1, unreachable.output
    assert unreachable.stderr.startswith("error: the document store sqlite:///") and unreachable.stderr.count("\n") == 1
