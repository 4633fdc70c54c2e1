"""The per-incident debounce: a revision is analysed once quiet or after the longest wait, a new incident not before
the debounce after it opened, and a record is acknowledged only once the revision it stands for was analysed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiops_common.testing.records import incident_revision
from aiops_rca.agents.debounce import Debouncer
from aiops_rca.agents.root_cause import RootCause
from aiops_rca.gather import Sources
from aiops_rca.settings import RcaSettings
from pydantic import ValidationError

pytestmark = pytest.mark.unit

ONSET = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_new_incident_waits_the_debounce_after_it_opened_then_its_newest_revision_is_due() -> None:
    d: Debouncer[str] = Debouncer(quiet_s=15.0, max_wait_s=60.0)
    d.add(incident_revision("inc-1", 1, ["payment"], ONSET), "r1", now_s=100.0)
    # The first ranking came about 1 s after the incident opened with batches on their own clock: not any more.
    assert d.due(101.0) == [] and d.due(114.9) == []
    d.add(incident_revision("inc-1", 2, ["payment", "checkout"], ONSET), "r2", now_s=110.0)
    assert d.due(124.9) == []  # quiet for 15 s since revision 2, not since revision 1
    [held] = d.due(125.0)
    assert (held.incident.revision, held.tokens, held.superseded) == (2, ["r1", "r2"], 1)
    assert len(d) == 0 and d.due(1000.0) == []


def test_an_incident_that_keeps_changing_is_analysed_after_the_longest_wait() -> None:
    d: Debouncer[int] = Debouncer(quiet_s=2.0, max_wait_s=10.0)
    taken = []
    for i in range(12):  # a revision every second: never quiet for 2 s
        d.add(incident_revision("inc-1", i + 1, ["payment"] * (i + 1), ONSET), i, now_s=50.0 + i)
        taken += [(50.0 + i, h.incident.revision, h.tokens) for h in d.due(50.0 + i)]
    # The longest wait ran out 10 s after the first revision held: the newest then, with every record before it.
    assert taken == [(60.0, 11, list(range(11)))]
    assert d.held["inc-1"].first_s == 61.0 and d.held["inc-1"].tokens == [11]
    # An older revision arriving late does not replace the newer one, nor restart the quiet period.
    d.add(incident_revision("inc-1", 1, ["payment"], ONSET), 99, now_s=62.5)
    [held] = d.due(63.0)
    assert held.incident.revision == 12 and held.tokens == [11, 99]


def test_the_longest_wait_is_never_shorter_than_the_debounce_and_incidents_are_held_apart() -> None:
    d: Debouncer[str] = Debouncer(quiet_s=5.0, max_wait_s=1.0)
    assert d.max_wait_s == 5.0
    d.add(incident_revision("a", 1, ["payment"], ONSET), "a1", now_s=0.0)
    d.add(incident_revision("b", 1, ["db"], ONSET), "b1", now_s=3.0)
    assert [h.incident.id for h in d.due(5.0)] == ["a"]
    assert d.drop_where(lambda token: token.startswith("b")) == 1 and len(d) == 0


def test_the_debounce_settings_are_validated() -> None:
    assert RcaSettings(rca_debounce_s=15, rca_debounce_max_s=45).rca_debounce_max_s == 45
    with pytest.raises(ValidationError):
        RcaSettings(rca_debounce_s=-1)
    with pytest.raises(ValidationError):
        RcaSettings(rca_debounce_max_s=0)


async def test_records_are_acknowledged_only_once_their_revision_was_analysed() -> None:
    settings = RcaSettings(rca_debounce_s=15.0, rca_debounce_max_s=60.0)
    rc = RootCause(settings, Sources(None, None, None, None), None, None)
    rc.stale = False  # nothing on rca.results to read: no broker here
    acked: list[str] = []

    async def ack(token: object) -> None:
        acked.append(str(token))

    undecodable = rc.hold(
        [
            (incident_revision("inc-1", 1, ["payment"], ONSET).encode(), "r1"),
            (b"not a record", "bad"),
            (incident_revision("inc-1", 2, ["payment"], ONSET).encode(), "r2"),
        ],
        now_s=100.0,
    )
    assert undecodable == ["bad"]
    # Before the debounce: nothing analysed, nothing acknowledged (a SIGKILL now reads r1 and r2 again).
    assert await rc.flush(ack, now_s=110.0) == [] and acked == []
    results = await rc.flush(ack, now_s=115.0)
    assert [(r.incident_id, r.incident_revision) for r in results] == [("inc-1", 2)]
    assert acked == ["r1", "r2"] and rc.analysed == {"inc-1": 2}
    # The same members again: held, then acknowledged without an analysis.
    rc.hold([(incident_revision("inc-1", 3, ["payment"], ONSET).encode(), "r3")], now_s=120.0)
    assert await rc.flush(ack, now_s=135.0) == [] and acked == ["r1", "r2", "r3"]
