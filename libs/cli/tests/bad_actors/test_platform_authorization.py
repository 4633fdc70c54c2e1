"""The gateway's authorisation matrix against the whole demo platform: every mutating route the gateway of a running
``aiops demo`` declares in its OpenAPI document (its demo panel's routes forwarding to the shop's control API among
them) refuses calls without credentials (401) and with a role below its least (403), and admits its own role (so the
refusals are the role check's, not a broken route's). A route the gateway test's table of least roles does not name
fails the test: a new route cannot escape the matrix."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ROLES, Platform

pytestmark = pytest.mark.functional

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GATEWAY_MATRIX = (
    Path(__file__).resolve().parents[4] / "services/gateway/tests/functional/test_authorization.py"
)  # the table of least roles kept beside the gateway's own matrix test


def least_roles() -> dict[tuple[str, str], str]:
    """The gateway test's ``LEAST_ROLE`` table as (method, path) -> role name, read from that file."""
    spec = importlib.util.spec_from_file_location("gateway_authorization_matrix", GATEWAY_MATRIX)
    assert spec is not None and spec.loader is not None, f"cannot load {GATEWAY_MATRIX}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {key: str(role.value) for key, role in module.LEAST_ROLE.items()}


def mutating_operations(platform: Platform) -> list[tuple[str, str]]:
    with platform.client("viewer") as client:
        response = client.get("/api/v1/openapi.json")
    response.raise_for_status()
    paths: dict[str, dict[str, Any]] = response.json()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/v1/")
        for method in operations
        if method.upper() in MUTATING
    )


def call(client: httpx.Client, method: str, template: str) -> tuple[int, str]:
    # No stored subject has this id: an admitted caller gets a 4xx about the subject, never about who they are.
    url = re.sub(r"\{[^}/]+\}", "no-such-subject", template)
    response = client.request(method, url, json={})
    return response.status_code, response.text[:200]


def test_every_mutating_route_refuses_anonymous_and_lower_roles(platform: Platform) -> None:
    operations = mutating_operations(platform)
    assert len(operations) >= 10, f"the gateway declares too few mutating routes: {operations}"
    table = least_roles()
    missing = [op for op in operations if op not in table]
    assert not missing, f"mutating routes of the running gateway without a least role in {GATEWAY_MATRIX}: {missing}"
    wrong: list[str] = []
    with platform.client(None) as anonymous:
        for method, template in operations:
            status, body = call(anonymous, method, template)
            if status != 401:
                wrong.append(f"{method} {template} without credentials: {status} (want 401) {body}")
    for role in ROLES:
        with platform.client(role) as client:
            for method, template in operations:
                least = table[(method, template)]
                status, body = call(client, method, template)
                if ROLES.index(role) < ROLES.index(least):
                    if status != 403:
                        wrong.append(f"{method} {template} as {role}: {status} (want 403, needs {least}) {body}")
                elif status in {401, 403} or status >= 500:  # every upstream of this platform is up
                    wrong.append(f"{method} {template} as {role}: {status} (want it admitted) {body}")
    assert not wrong, "\n".join(wrong)


def test_a_made_up_key_is_refused_on_every_mutating_route(platform: Platform) -> None:
    wrong: list[str] = []
    with httpx.Client(base_url=platform.gateway_url, timeout=30.0) as client:
        client.headers["Authorization"] = f"Bearer {platform.keys['admin']}x"
        for method, template in mutating_operations(platform):
            status, body = call(client, method, template)
            if status != 401:
                wrong.append(f"{method} {template} with a forged key: {status} (want 401) {body}")
    assert not wrong, "\n".join(wrong)
