"""``eventually()`` waits on state: returns the first truthy value, scales its budget, and says what it missed."""

from __future__ import annotations

import doctest

import pytest
from aiops_common.testing import eventually as eventually_module
from aiops_common.testing.eventually import EventuallyTimeoutError, TestTimingSettings, eventually, scaled

pytestmark = pytest.mark.unit


async def test_returns_the_first_truthy_value_of_a_plain_or_async_check() -> None:
    calls: list[int] = []

    def plain() -> list[int]:
        calls.append(1)
        return calls if len(calls) >= 3 else []

    assert await eventually(plain, timeout=5, interval=0) == [1, 1, 1]

    async def rows() -> dict[str, int] | None:
        calls.append(1)
        return {"rows": len(calls)} if len(calls) >= 5 else None

    assert await eventually(rows, timeout=5, interval=0) == {"rows": 5}


async def test_an_assertion_means_not_yet_and_is_the_last_value_reported() -> None:
    seen: list[int] = []

    def check() -> bool:
        seen.append(1)
        assert len(seen) > 10**9, f"only {len(seen)} so far"
        return True

    with pytest.raises(EventuallyTimeoutError) as failed:
        await eventually(check, timeout=0.05, what="a billion calls", interval=0.01)
    message = str(failed.value)
    assert message.startswith("gave up waiting for a billion calls after 0.05s")
    assert f"last value: AssertionError: only {len(seen)} so far" in message


async def test_other_exceptions_end_the_wait_at_once() -> None:
    def dead() -> bool:
        raise RuntimeError("the worker exited")

    with pytest.raises(RuntimeError, match="the worker exited"):
        await eventually(dead, timeout=60)


async def test_the_budget_is_scaled_by_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPS_TEST_TIMEOUT_SCALE", "3")
    assert TestTimingSettings().test_timeout_scale == 3.0
    assert scaled(2.0) == 6.0
    with pytest.raises(EventuallyTimeoutError, match=r"after 0\.03s \(0\.01s x 3\); last value: False"):
        await eventually(lambda: False, timeout=0.01, what="nothing")
    monkeypatch.setenv("AIOPS_TEST_TIMEOUT_SCALE", "0")
    with pytest.raises(ValueError, match="greater than 0"):
        TestTimingSettings()


def test_docstring_examples() -> None:
    result = doctest.testmod(eventually_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
