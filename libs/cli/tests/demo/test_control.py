"""The shop's control API on loopback: the contract the UI's demo panel and the demo's runbooks call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiops_cli.demo.control import ControlApi
from aiops_cli.demo.faults import Fault, ShopState

pytestmark = pytest.mark.functional

NOW = 1_780_000_000.0


@pytest.fixture
async def control() -> AsyncIterator[tuple[httpx.AsyncClient, ShopState, list[Fault]]]:
    state = ShopState()
    seen: list[Fault] = []

    async def on_fault(fault: Fault) -> None:
        seen.append(fault)

    api = ControlApi(state, clock=lambda: NOW, on_fault=on_fault)
    url = await api.start("127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client, state, seen
    await api.stop()


async def test_a_fault_is_injected_listed_and_cleared(
    control: tuple[httpx.AsyncClient, ShopState, list[Fault]],
) -> None:
    client, state, seen = control
    response = await client.post("/faults", json={"service": "payment", "kind": "latency", "for_s": 120})
    assert response.status_code == 201
    fault = response.json()
    assert fault["service"] == "payment" and fault["kind"] == "latency"
    assert fault["started_at"].endswith("Z") and fault["until"] > fault["started_at"]
    assert [f.id for f in seen] == [fault["id"]]
    status = (await client.get("/status")).json()
    assert status["faults"] == [fault]
    assert status["services"]["payment"] == {"replicas": 2, "version": "1.4.0", "healthy": False}
    assert status["services"]["database"]["healthy"] is True
    assert (await client.delete(f"/faults/{fault['id']}")).json() == {"cleared": 1}
    assert (await client.delete(f"/faults/{fault['id']}")).status_code == 404
    await client.post("/faults", json={"service": "payment", "kind": "errors"})
    await client.post("/faults", json={"service": "frontend", "kind": "cpu"})
    assert (await client.delete("/faults")).json() == {"cleared": 2}
    assert state.active_faults(NOW) == []


@pytest.mark.parametrize(
    "body",
    [
        {"service": "shipping", "kind": "latency"},
        {"service": "payment", "kind": "meltdown"},
        {"service": "payment", "kind": "cpu", "for_s": -5},
        {"service": "payment", "kind": "cpu", "for_s": "5m"},
        {"kind": "cpu"},
        ["payment"],
    ],
)
async def test_a_bad_fault_is_a_400_with_the_reason(
    control: tuple[httpx.AsyncClient, ShopState, list[Fault]], body: object
) -> None:
    client, state, seen = control
    response = await client.post("/faults", json=body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert seen == [] and state.faults == []


async def test_scale_rollback_and_restart_change_the_shop(
    control: tuple[httpx.AsyncClient, ShopState, list[Fault]],
) -> None:
    client, state, _ = control
    await client.post("/faults", json={"service": "checkout", "kind": "bad-deploy"})
    assert state.services["checkout"].version == "1.5.0"
    response = await client.post("/services/checkout/rollback")
    assert response.status_code == 200
    assert response.json() == {"service": "checkout", "replicas": 2, "version": "1.4.0", "healthy": True}
    response = await client.post("/services/payment/scale", json={"replicas": 5})
    assert response.json()["replicas"] == 5 and state.services["payment"].replicas == 5
    assert (await client.post("/services/payment/scale", json={"replicas": 0})).status_code == 400
    assert (await client.post("/services/shipping/restart")).status_code == 404
    assert (await client.post("/services/payment/explode")).status_code == 404
    # The runbooks' form: one literal URL, the service in the body.
    await client.post("/faults", json={"service": "inventory", "kind": "errors"})
    response = await client.post("/actions/restart", json={"service": "inventory"})
    assert response.status_code == 200 and state.active_faults(NOW) == []
    assert (await client.post("/actions/scale", json={"service": "payment", "replicas": 7})).json()["replicas"] == 7
    assert (await client.post("/actions/rollback", json={})).status_code == 400
    assert (await client.post("/actions/rollback", json={"service": "shipping"})).status_code == 404


async def test_the_status_says_when_detection_is_warm() -> None:
    warm = False
    api = ControlApi(ShopState(), clock=lambda: NOW, warm=lambda: warm)
    url = await api.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/status")).json()["warm"] is False
            warm = True
            assert (await client.get("/status")).json()["warm"] is True
    finally:
        await api.stop()
