"""The correlator over an ordered log of encoded records: dispatch, suppression, feedback, replay equivalence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgpack
import pytest
from aiops_common.schemas import (
    AlertRecord,
    AlertStatus,
    ChangeEvent,
    CorrelationBatch,
    CorrelationTick,
    FeedbackLabel,
    FeedbackRecord,
    IncidentCommand,
    IncidentRecord,
    IncidentStatus,
    SchemaError,
)
from aiops_common.topology import Dependency, Service
from aiops_correlation.agents.incident_archive import newest
from aiops_correlation.policy.clustering import ClusterConfig
from aiops_correlation.policy.correlator import Correlator
from aiops_correlation.policy.dynamic_xy import DxyConfig
from aiops_correlation.policy.signals import from_alert, severity_of
from aiops_correlation.policy.topology_view import TopologyView

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VIEW = TopologyView.build(
    [Service(s) for s in ("frontend", "checkout", "payment", "search")],
    [Dependency(a, b, frozenset({"file"}), T0, T0) for a, b in (("frontend", "checkout"), ("checkout", "payment"))],
)


def alert(name: str, service: str, pod: str, at: datetime, status: AlertStatus = AlertStatus.FIRING) -> bytes:
    return AlertRecord(
        fingerprint=f"{name}-{service}-{pod}",
        status=status,
        name=name,
        service=service,
        severity="critical",
        labels={"alertname": name, "service": service, "pod": pod},
        starts_at=at,
        ends_at=at + timedelta(minutes=5) if status == AlertStatus.RESOLVED else None,
    ).encode()


def correlator() -> Correlator:
    return Correlator.new(DxyConfig(), ClusterConfig(), VIEW)


def latest(outcomes: list[list[IncidentRecord]]) -> dict[str, IncidentRecord]:
    records = [i for batch in outcomes for i in batch]
    return {i.id: i for i in newest(records, lambda r: r.id, lambda r: r.revision)}


def storm() -> list[bytes]:
    return [
        ChangeEvent(id="dep-1", service="payment", version="v2.4.1", at=T0 - timedelta(minutes=8)).encode(),
        alert("HighLatency", "payment", "p-0", T0),
        alert("HighLatency", "payment", "p-1", T0 + timedelta(seconds=1)),
        alert("DiskFull", "search", "s-0", T0 + timedelta(seconds=10)),
        alert("HighErrorRate", "checkout", "c-0", T0 + timedelta(seconds=40)),
        alert("HighErrorRate", "frontend", "f-0", T0 + timedelta(seconds=70)),
        alert("HighErrorRate", "frontend", "f-0", T0 + timedelta(seconds=70)),  # delivered twice
        CorrelationTick(at=T0 + timedelta(minutes=2)).encode(),
    ]


def run(c: Correlator, records: list[bytes]) -> dict[str, IncidentRecord]:
    return latest([c.take(r).incidents for r in records])


def test_a_storm_gives_one_incident_per_connected_fault() -> None:
    incidents = run(correlator(), storm())
    live = [i for i in incidents.values() if i.merged_into is None]
    by_lead = {i.lead.service: i for i in live if i.lead is not None}
    assert set(by_lead) == {"payment", "search"}
    cascade = by_lead["payment"]
    assert {m.fingerprint for m in cascade.members} == {
        "HighLatency-payment-p-0",
        "HighLatency-payment-p-1",
        "HighErrorRate-checkout-c-0",
        "HighErrorRate-frontend-f-0",
    }
    assert [c.id for c in cascade.changes] == ["dep-1"]
    assert all(m.reason.rule and m.reason.text for m in cascade.members)


def test_replaying_from_a_snapshot_gives_the_records_of_an_uninterrupted_run() -> None:
    records = storm()
    whole = run(correlator(), records)
    first = correlator()
    run(first, records[:4])
    snapshot = msgpack.unpackb(msgpack.packb(first.snapshot(), use_bin_type=True), raw=False, strict_map_key=False)
    second = Correlator.restore(DxyConfig(), ClusterConfig(), VIEW, snapshot)
    resumed = run(second, records[4:])
    for incident_id, incident in resumed.items():
        assert whole[incident_id] == incident


def test_split_and_merge_feedback_and_lifecycle_commands_change_incidents() -> None:
    c = correlator()
    incidents = run(c, storm()[:6])
    cascade = next(i for i in incidents.values() if i.lead is not None and i.lead.service == "payment")
    search = next(i for i in incidents.values() if i.lead is not None and i.lead.service == "search")
    at = T0 + timedelta(minutes=3)
    split = FeedbackRecord(
        subject_id=cascade.id,
        subject_kind="incident",
        related_id="HighErrorRate-frontend-f-0",
        label=FeedbackLabel.NOT_IN_INCIDENT,
        by="alice",
        at=at,
    )
    after_split = latest([c.take(split.encode()).incidents])
    assert after_split[cascade.id].member("HighErrorRate-frontend-f-0") is None
    merge = FeedbackRecord(
        subject_id=cascade.id,
        subject_kind="incident",
        related_id=search.id,
        label=FeedbackLabel.SAME_INCIDENT,
        by="alice",
        at=at,
    )
    merged = latest([c.take(merge.encode()).incidents])
    survivors = [i for i in merged.values() if i.merged_into is None]
    assert len(survivors) == 1 and {m.service for m in survivors[0].members} >= {"payment", "search"}
    (survivor,) = survivors
    ack = IncidentCommand(incident_id=survivor.id, status=IncidentStatus.ACKNOWLEDGED, by="bob", at=at, note="on it")
    acked = latest([c.take(ack.encode()).incidents])[survivor.id]
    assert acked.status == IncidentStatus.ACKNOWLEDGED
    assert acked.history[-1].by == "bob" and acked.history[-1].note == "on it"


def test_feedback_about_anomalies_changes_no_incident() -> None:
    label = FeedbackRecord(subject_id="an-1", label=FeedbackLabel.FALSE_POSITIVE, by="alice", at=T0)
    outcome = correlator().take(label.encode())
    assert outcome.incidents == [] and outcome.ignored


def test_a_flapping_alert_is_held_back_and_opens_nothing() -> None:
    c = correlator()
    held = 0
    opened: set[str] = set()
    # Fires every three minutes for two days: that is how it always behaves.
    for i in range(960):
        at = T0 - timedelta(days=2) + timedelta(minutes=3 * i)
        outcome = c.take(alert("Flappy", "search", "s-9", at))
        held += len(outcome.held)
        opened |= {r.id for r in outcome.incidents}
        c.take(alert("Flappy", "search", "s-9", at + timedelta(minutes=1), AlertStatus.RESOLVED))
    late = c.take(alert("Flappy", "search", "s-9", T0 + timedelta(minutes=1)))
    assert late.incidents == [] and late.held, "the usual flapping opened an incident once learned"
    assert held > 900


def test_undecodable_records_raise_a_schema_error() -> None:
    with pytest.raises(SchemaError):
        correlator().take(b"\x00not msgpack")
    with pytest.raises(SchemaError):
        correlator().take(msgpack.packb({"schema": "something.else", "v": 1, "body": {}}))


def test_signals_from_alerts_take_the_service_from_labels_and_map_severity_words() -> None:
    record = AlertRecord.decode(alert("HighLatency", "", "p-0", T0))
    record = record.model_copy(update={"labels": {"alertname": "HighLatency", "job": "payment"}})
    signal = from_alert(record)
    assert signal.service == "payment" and signal.key.startswith("alert:HighLatency:payment")
    assert severity_of("page").value == "critical" and severity_of("weird").value == "warning"


def test_a_batch_is_taken_in_order_and_a_bad_record_in_it_is_skipped() -> None:
    records = storm()
    one_by_one = run(correlator(), records)
    batch = CorrelationBatch([*records[:3], b"\x00not a record", *records[3:]]).encode()
    outcome = correlator().take(batch)
    assert len(outcome.undecodable) == 1
    assert {i.id: i for i in outcome.incidents} == one_by_one


def test_the_clock_is_event_time_plus_quiet_so_history_is_judged_by_its_own_time() -> None:
    c = correlator()
    month_ago = T0 - timedelta(days=30)
    opened = latest([c.take(alert("HighLatency", "payment", "p-0", month_ago)).incidents])
    (incident_id,) = opened
    resolve = alert("HighLatency", "payment", "p-0", month_ago, AlertStatus.RESOLVED)
    c.take(resolve)
    # Ticks written while the history streams in (a second of quiet each): the wall clock being a month
    # ahead resolves nothing; ten minutes of event time after the member ended have not passed.
    assert c.take(CorrelationTick(at=T0, idle_ms=1_000).encode()).incidents == []
    # The input goes quiet: once the quiet period has passed on the clock, the incident resolves.
    resolved = latest([c.take(CorrelationTick(at=T0, idle_ms=11 * 60_000).encode()).incidents])
    assert resolved[incident_id].status == IncidentStatus.RESOLVED


def test_overrides_from_the_settings_fix_x_and_y_for_matching_signals() -> None:
    from aiops_correlation.agents.incident_builder import dxy_config
    from aiops_correlation.settings import CorrelationSettings

    settings = CorrelationSettings(correlate_dxy_overrides={"alert:Watchdog:*": (3, 600)})
    c = Correlator.new(dxy_config(settings), ClusterConfig(), VIEW)
    first = c.take(alert("Watchdog", "search", "s-0", T0))
    second = c.take(alert("Watchdog", "search", "s-1", T0 + timedelta(seconds=5)))
    third = c.take(alert("Watchdog", "search", "s-2", T0 + timedelta(seconds=10)))
    assert first.held and second.held and not third.held and third.incidents
    assert "override alert:Watchdog:*" in first.held[0].verdict.reason
