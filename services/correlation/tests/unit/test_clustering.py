"""Incident clustering: why signals join, leads, merges, feedback, lifecycle, determinism and restore."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import msgpack
import pytest
from aiops_common.schemas import (
    ChangeEvent,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    MemberKind,
    incident_id,
)
from aiops_common.topology import Dependency, Service, millis
from aiops_correlation.policy.clustering import ClusterConfig, Clusterer
from aiops_correlation.policy.signals import Signal
from aiops_correlation.policy.topology_view import TopologyView

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_MS = millis(T0)


def topology(*edges: str, services: Iterable[Service] = ()) -> TopologyView:
    deps = []
    for edge in edges:
        caller, callee = edge.split(">")
        deps.append(Dependency(caller, callee, frozenset({"file"}), T0, T0))
    return TopologyView.build(services, deps)


# frontend -> checkout -> payment -> ledger; frontend -> search; db shared by four callers.
VIEW = topology(
    "frontend>checkout",
    "checkout>payment",
    "payment>ledger",
    "frontend>search",
    "reports>db",
    "billing>db",
    "audit>db",
    "export>db",
)


def sig(
    name: str,
    service: str,
    at_s: float,
    pod: str = "p0",
    *,
    labels: dict[str, str] | None = None,
    severity: IncidentSeverity = IncidentSeverity.WARNING,
    kind: MemberKind = MemberKind.ALERT,
    end_s: float | None = None,
    resolved: bool = False,
) -> Signal:
    return Signal(
        fingerprint=f"{name}-{service}-{pod}",
        kind=kind,
        key=f"alert:{name}:{service}:{pod}",
        name=name,
        service=service,
        severity=severity,
        at_ms=T0_MS + int(at_s * 1000),
        labels={"alertname": name, "service": service, "pod": pod, **(labels or {})},
        resolved=resolved,
        end_ms=T0_MS + int(end_s * 1000) if end_s is not None else None,
    )


def clusterer(view: TopologyView = VIEW, **config: object) -> Clusterer:
    return Clusterer(ClusterConfig(**config), view)  # type: ignore[arg-type]


def only(records: list[IncidentRecord]) -> IncidentRecord:
    assert len(records) == 1, [r.id for r in records]
    return records[0]


def ms(seconds: float) -> int:
    return T0_MS + int(seconds * 1000)


# ----------------------------------------------------------------------------- time, topology, labels


def test_a_signal_opens_an_incident_named_by_its_fingerprint_and_onset() -> None:
    c = clusterer()
    first = sig("HighLatency", "payment", 0)
    opened = only(c.add(first))
    assert opened.id == incident_id(f"{first.fingerprint}@{first.at_ms}")
    assert opened.revision == 1 and opened.status == IncidentStatus.OPEN
    (member,) = opened.members
    assert member.lead and member.reason.rule == "seed" and member.reason.related_to == ""
    assert opened.title == "payment: HighLatency" and opened.services == ["payment"]
    assert opened.started_at == T0 and opened.history[0].status == IncidentStatus.OPEN


def test_same_service_within_the_window_joins_and_beyond_it_opens_another() -> None:
    c = clusterer()
    first = only(c.add(sig("HighLatency", "payment", 0, "p0")))
    second = only(c.add(sig("HighLatency", "payment", 40, "p1")))
    assert second.id == first.id and second.revision == 2
    joined = second.member("HighLatency-payment-p1")
    assert joined is not None
    assert joined.reason.rule == "same_service"
    assert joined.reason.related_to == "HighLatency-payment-p0" and joined.reason.gap_s == 40.0
    assert joined.reason.score >= 0.5 and "same service payment" in joined.reason.text
    # More than five minutes after the latest onset on payment (40 s): a new incident.
    later = only(c.add(sig("HighLatency", "payment", 40 + 301, "p2")))
    assert later.id != first.id and later.revision == 1


def test_a_caller_joins_through_the_call_edge_with_its_path_and_a_sentence() -> None:
    c = clusterer()
    c.add(sig("HighLatency", "payment", 0))
    record = only(c.add(sig("HighErrorRate", "checkout", 30)))
    member = record.member("HighErrorRate-checkout-p0")
    assert member is not None
    assert member.reason.rule == "topology"
    assert member.reason.path == ["payment", "checkout"]
    assert member.reason.text == "checkout calls payment (1 hop), 30 s after payment/HighLatency"
    two_hops = only(c.add(sig("HighErrorRate", "frontend", 50, labels={})))
    joined = two_hops.member("HighErrorRate-frontend-p0")
    assert joined is not None and joined.reason.path == ["checkout", "frontend"], "the nearer member is chosen"


def test_a_service_beyond_the_hops_opens_its_own_incident() -> None:
    c = clusterer()
    a = only(c.add(sig("HighErrorRate", "frontend", 0)))
    b = only(c.add(sig("DiskFull", "ledger", 10)))  # frontend -> checkout -> payment -> ledger: 3 hops
    assert a.id != b.id
    wider = clusterer(hops=3)
    a = only(wider.add(sig("HighErrorRate", "frontend", 0)))
    b = only(wider.add(sig("DiskFull", "ledger", 10)))
    assert b.id == a.id and b.member("DiskFull-ledger-p0").reason.path == ["frontend", "checkout", "payment", "ledger"]  # type: ignore[union-attr]


def test_two_callers_of_a_busy_shared_callee_do_not_group_on_that_alone() -> None:
    c = clusterer()
    a = only(c.add(sig("HighLatency", "reports", 0)))
    b = only(c.add(sig("HighLatency", "billing", 5)))
    assert a.id != b.id, "db has four callers: sharing it is weak evidence"


def test_shared_discriminating_labels_group_unrelated_services() -> None:
    c = clusterer()
    a = only(c.add(sig("DatastoreErrors", "search", 0, labels={"datastore": "ext-1"})))
    b = only(c.add(sig("DatastoreErrors", "ledger", 20, labels={"datastore": "ext-1"})))
    assert b.id == a.id
    member = b.member("DatastoreErrors-ledger-p0")
    assert member is not None and member.reason.rule == "labels"
    assert member.reason.similarity == 1.0 and "datastore=ext-1" in member.reason.text
    other = only(c.add(sig("DatastoreErrors", "reports", 30, labels={"datastore": "ext-2"})))
    assert other.id != a.id
    # Labels every alert carries (severity, namespace, ...) are no evidence.
    plain = only(c.add(sig("HighLatency", "audit", 40, labels={"namespace": "prod", "severity": "warning"})))
    assert plain.id not in (a.id, other.id)


def test_service_attributes_add_to_label_similarity() -> None:
    view = topology(
        services=[Service("search", {"team": "x", "zone": "a"}), Service("ledger", {"team": "y", "zone": "b"})]
    )
    c = clusterer(view, label_similarity=0.9)
    a = only(c.add(sig("E", "search", 0, labels={"datastore": "ext-1"})))
    b = only(c.add(sig("E", "ledger", 10, labels={"datastore": "ext-1"})))
    assert a.id != b.id, "same label, nothing else in common: 0.8 < 0.9"


# ----------------------------------------------------------------------------- changes


def test_a_recent_change_is_linked_with_a_sentence_and_groups_later_signals_of_its_service() -> None:
    c = clusterer()
    assert (
        c.add_change(ChangeEvent(id="dep-1", service="payment", version="v2.4.1", at=T0 - timedelta(minutes=8))) == []
    )
    opened = only(c.add(sig("HighLatency", "payment", 0)))
    (change,) = opened.changes
    assert change.id == "dep-1" and change.before_onset_s == 480.0
    assert change.text == "payment v2.4.1 deployed 8 min before onset"
    assert "payment v2.4.1 deployed 8 min before onset" in opened.summary
    # Twelve minutes later, past the time window, the same deployment still ties it to the incident.
    late = only(c.add(sig("PodRestarting", "payment", 720, "p3")))
    assert late.id == opened.id
    member = late.member("PodRestarting-payment-p3")
    assert member is not None and member.reason.rule == "change" and "v2.4.1" in member.reason.text


def test_a_change_that_arrives_after_the_signals_is_linked_when_it_came_before_them() -> None:
    c = clusterer()
    opened = only(c.add(sig("HighLatency", "search", 0)))
    linked = only(c.add_change(ChangeEvent(id="cfg-9", kind="config", service="search", at=T0 - timedelta(minutes=3))))
    assert linked.id == opened.id and linked.revision == 2
    assert [ch.text for ch in linked.changes] == ["search config changed 3 min before onset"]
    assert c.add_change(ChangeEvent(id="cfg-9", kind="config", service="search", at=T0)) == [], "same id again"
    assert c.add_change(ChangeEvent(id="dep-2", service="search", at=T0 + timedelta(minutes=10))) == []
    assert c.add_change(ChangeEvent(id="dep-3", service="search", at=T0 - timedelta(hours=2))) == []


# ----------------------------------------------------------------------------- lead


def test_the_lead_is_the_callee_that_explains_the_others_even_when_it_fired_a_little_later() -> None:
    c = clusterer()
    c.add(sig("HighErrorRate", "frontend", 0))
    c.add(sig("HighErrorRate", "checkout", 20))
    record = c.add(sig("PodCrashLooping", "payment", 30))[0]
    assert record.lead is not None and record.lead.fingerprint == "PodCrashLooping-payment-p0"
    assert [m.lead for m in record.members].count(True) == 1
    assert record.services == ["payment", "checkout", "frontend"]
    assert record.title == "payment: PodCrashLooping and 2 more alerts on 3 services"
    assert record.summary.startswith("Probable origin: payment/PodCrashLooping")


def test_a_callee_that_starts_minutes_later_is_not_taken_for_the_cause() -> None:
    c = clusterer()
    first = only(c.add(sig("HighLatency", "payment", 0)))
    late = only(c.add(sig("DiskFull", "ledger", 200)))
    assert late.id != first.id


# ----------------------------------------------------------------------------- merges


def test_incidents_merge_when_a_probable_shared_cause_connects_them() -> None:
    c = clusterer()
    a = only(c.add(sig("HighLatency", "reports", 0)))
    b = only(c.add(sig("HighLatency", "billing", 5)))
    out = c.add(sig("DBConnectionsExhausted", "db", 20))
    assert [r.id for r in out] == [a.id, b.id], "the older id survives, the absorbed one is published too"
    survivor, absorbed = out
    assert absorbed.merged_into == a.id and absorbed.status == IncidentStatus.RESOLVED
    assert absorbed.members == [] and absorbed.resolved_at is not None and absorbed.revision == 2
    assert [m.incident_id for m in survivor.merged] == [b.id] and "db" in survivor.merged[0].reason
    assert survivor.lead is not None and survivor.lead.service == "db"
    seed_b = survivor.member("HighLatency-billing-p0")
    assert seed_b is not None and seed_b.reason.rule == "merge" and b.id in seed_b.reason.text
    assert c.incident(b.id) == absorbed
    assert [i.id for i in c.open_incidents()] == [a.id]
    # Signals of billing now find the survivor.
    assert only(c.add(sig("HighLatency", "billing", 30, "p1"))).id == a.id


def test_an_effect_of_two_incidents_joins_one_and_merges_nothing() -> None:
    view = topology("gateway>x", "gateway>y", "gateway>z", "gateway>w")
    c = clusterer(view)
    a = only(c.add(sig("HighLatency", "x", 0)))
    b = only(c.add(sig("HighLatency", "y", 5)))
    assert a.id != b.id
    joined = only(c.add(sig("HighErrorRate", "gateway", 30)))
    assert joined.id in (a.id, b.id) and joined.merged == []
    assert len(c.open_incidents()) == 2


# ----------------------------------------------------------------------------- feedback


def test_a_split_moves_the_member_out_and_the_pair_weighs_less_from_then_on() -> None:
    c = clusterer()
    incident = only(c.add(sig("HighLatency", "payment", 0)))
    c.add(sig("HighErrorRate", "checkout", 30))
    old, new = c.split(incident.id, "HighErrorRate-checkout-p0", "alice", ms(60), "unrelated deploy")
    assert old.id == incident.id and old.member("HighErrorRate-checkout-p0") is None
    assert [m.fingerprint for m in new.members] == ["HighErrorRate-checkout-p0"] and new.revision == 1
    moved = new.members[0]
    assert moved.lead and moved.reason.rule == "feedback" and "alice" in moved.reason.text
    assert "unrelated deploy" in moved.reason.text and old.history[-1].by == "alice"
    assert c.weight("payment", "checkout") == 0.5 == c.weight("checkout", "payment")
    # Another checkout pod alerting now goes with the split-out incident, not the payment one.
    again = only(c.add(sig("HighErrorRate", "checkout", 90, "p1")))
    assert again.id == new.id
    assert c.split(incident.id, "nope", "alice", ms(100)) == [] and c.split("inc-x", "a", "alice", ms(100)) == []
    assert c.split(incident.id, "HighLatency-payment-p0", "alice", ms(100)) == [], "the last member stays"


def test_a_merge_folds_the_younger_incident_and_links_their_services_beyond_the_topology() -> None:
    c = clusterer()
    a = only(c.add(sig("HighLatency", "reports", 0)))
    b = only(c.add(sig("SlowSearch", "search", 10)))
    survivor, absorbed = c.merge(b.id, a.id, "bob", ms(60), "same root cause")
    assert survivor.id == a.id and absorbed.merged_into == a.id and absorbed.members == []
    assert "bob" in survivor.merged[0].reason and "same root cause" in survivor.merged[0].reason
    assert survivor.member("SlowSearch-search-p0") is not None
    assert c.weight("reports", "search") == 1.5
    # Next time, far from the first: a reports alert opens an incident and search joins it, as learned.
    c.set_status(a.id, IncidentStatus.RESOLVED, "bob", ms(100))
    fresh = only(c.add(sig("HighLatency", "reports", 2000, "p1")))
    learned = only(c.add(sig("SlowSearch", "search", 2010, "p1")))
    assert learned.id == fresh.id
    member = learned.member("SlowSearch-search-p1")
    assert member is not None and member.reason.rule == "feedback" and "merged" in member.reason.text
    assert c.merge(a.id, a.id, "bob", ms(3000)) == [] and c.merge(a.id, "inc-none", "bob", ms(3000)) == []


# ----------------------------------------------------------------------------- lifecycle


def test_operators_move_an_incident_through_its_lifecycle_and_the_history_keeps_who_and_why() -> None:
    c = clusterer()
    incident = only(c.add(sig("HighLatency", "payment", 0)))
    acked = only(c.set_status(incident.id, IncidentStatus.ACKNOWLEDGED, "alice", ms(60), "looking"))
    assert acked.status == IncidentStatus.ACKNOWLEDGED and acked.revision == 2
    assert (acked.history[-1].by, acked.history[-1].note) == ("alice", "looking")
    assert c.set_status(incident.id, IncidentStatus.ACKNOWLEDGED, "alice", ms(61)) == []
    # Acknowledged incidents still gather their signals.
    assert only(c.add(sig("HighLatency", "payment", 70, "p1"))).id == incident.id
    mitigated = only(c.set_status(incident.id, IncidentStatus.MITIGATED, "alice", ms(90)))
    resolved = only(c.set_status(incident.id, IncidentStatus.RESOLVED, "alice", ms(120)))
    assert mitigated.status == IncidentStatus.MITIGATED and resolved.resolved_at == T0 + timedelta(seconds=120)
    assert c.open_incidents() == [] and not c.has_key("alert:HighLatency:payment:p0")
    fresh = only(c.add(sig("HighLatency", "payment", 130, "p2")))
    assert fresh.id != incident.id, "a resolved incident gathers nothing"
    reopened = only(c.set_status(incident.id, IncidentStatus.OPEN, "alice", ms(140), "not fixed"))
    assert reopened.status == IncidentStatus.OPEN and reopened.resolved_at is None
    assert c.has_key("alert:HighLatency:payment:p0")
    assert [h.status for h in reopened.history] == [
        IncidentStatus.OPEN,
        IncidentStatus.ACKNOWLEDGED,
        IncidentStatus.MITIGATED,
        IncidentStatus.RESOLVED,
        IncidentStatus.OPEN,
    ]
    assert c.set_status("inc-unknown", IncidentStatus.RESOLVED, "alice", ms(150)) == []


def test_an_incident_resolves_itself_once_every_member_ended_and_it_stayed_quiet() -> None:
    c = clusterer()
    incident = only(c.add(sig("HighLatency", "payment", 0)))
    c.add(sig("HighErrorRate", "checkout", 20))
    assert c.tick(ms(3600)) == [], "members still fire"
    assert only(c.resolve(sig("HighLatency", "payment", 0, end_s=300, resolved=True))).revision == 3
    ended = only(c.resolve(sig("HighErrorRate", "checkout", 20, end_s=400, resolved=True)))
    assert ended.member("HighErrorRate-checkout-p0").ended_at == T0 + timedelta(seconds=400)  # type: ignore[union-attr]
    assert c.resolve(sig("HighErrorRate", "checkout", 20, end_s=400, resolved=True)) == [], "already ended"
    assert c.tick(ms(400 + 599)) == []
    resolved = only(c.tick(ms(400 + 600)))
    assert resolved.id == incident.id and resolved.status == IncidentStatus.RESOLVED
    assert resolved.resolved_at == T0 + timedelta(seconds=1000) and resolved.history[-1].by == "correlation"
    assert c.tick(ms(2000)) == []
    # Kept a while for late news, then forgotten: the state stays bounded.
    assert c.incident(incident.id) is not None
    c.tick(ms(1000 + 3600))
    assert c.incident(incident.id) is None and c.snapshot()["incidents"] == []


def test_anomalies_end_with_their_window_and_a_resolve_for_nothing_changes_nothing() -> None:
    c = clusterer()
    anomaly = sig("latency_p99", "payment", 0, kind=MemberKind.ANOMALY, end_s=60)
    record = only(c.add(anomaly))
    assert record.members[0].ended_at == T0 + timedelta(seconds=60)
    assert record.title == "payment: latency_p99"
    assert only(c.tick(ms(660))).status == IncidentStatus.RESOLVED
    assert c.resolve(sig("Other", "x", 0, resolved=True, end_s=10)) == []


# ----------------------------------------------------------------------------- folding, revisions, text


def test_episodes_of_one_signal_fold_into_one_member_and_duplicates_change_nothing() -> None:
    c = clusterer()
    first = only(c.add(sig("HighLatency", "payment", 0)))
    c.resolve(sig("HighLatency", "payment", 0, end_s=60, resolved=True))
    again = only(c.add(sig("HighLatency", "payment", 120)))
    assert again.id == first.id and len(again.members) == 1
    member = again.members[0]
    assert member.occurrences == 2 and member.last_seen_at == T0 + timedelta(seconds=120)
    assert member.ended_at is None and member.started_at == T0
    assert c.add(sig("HighLatency", "payment", 120)) == [], "the same episode delivered twice"
    assert c.resolve(sig("HighLatency", "payment", 0, end_s=60, resolved=True)) == [], "an older episode's end"
    assert c.has_key("alert:HighLatency:payment:p0")


def test_every_published_change_is_one_revision_more() -> None:
    c = clusterer()
    seen: dict[str, int] = {}
    steps: list[Callable[[], list[IncidentRecord]]] = [
        lambda: c.add(sig("HighLatency", "payment", 0)),
        lambda: c.add(sig("HighLatency", "payment", 10, "p1")),
        lambda: c.add(sig("HighErrorRate", "checkout", 20)),
        lambda: c.add_change(ChangeEvent(id="d", service="payment", at=T0 - timedelta(minutes=1))),
        lambda: c.resolve(sig("HighLatency", "payment", 0, end_s=100, resolved=True)),
    ]
    for step in steps:
        for record in step():
            assert record.revision == seen.get(record.id, 0) + 1
            seen[record.id] = record.revision
    assert list(seen.values()) == [5]


def test_severity_rises_with_the_members_and_the_blast_radius() -> None:
    c = clusterer()
    assert only(c.add(sig("A", "payment", 0))).severity == IncidentSeverity.WARNING
    assert only(c.add(sig("B", "checkout", 10))).severity == IncidentSeverity.WARNING
    three = only(c.add(sig("C", "frontend", 20)))
    assert three.severity == IncidentSeverity.MINOR, "three services: one level up"
    critical = only(c.add(sig("D", "payment", 30, "p1", severity=IncidentSeverity.CRITICAL)))
    assert critical.severity == IncidentSeverity.CRITICAL


def test_a_held_back_signal_opens_nothing_but_may_join_what_it_relates_to() -> None:
    c = clusterer()
    assert c.add(sig("Flappy", "payment", 0), suppression="flapping: 3 events in 10 min is its usual") == []
    incident = only(c.add(sig("HighLatency", "payment", 10)))
    joined = only(c.add(sig("Flappy", "payment", 20), suppression="flapping"))
    assert joined.id == incident.id
    assert "held back: flapping" in joined.member("Flappy-payment-p0").reason.text  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- determinism, restore


def script(c: Clusterer) -> list[Callable[[], list[IncidentRecord]]]:
    """A day in the life: a deployment, a cascade, an unrelated fault, a merge through the shared store,
    refires, feedback, lifecycle commands and ticks."""
    return [
        lambda: c.add_change(ChangeEvent(id="dep-1", service="payment", version="v2", at=T0 - timedelta(minutes=5))),
        lambda: c.add(sig("HighLatency", "payment", 0)),
        lambda: c.add(sig("HighLatency", "payment", 3, "p1")),
        lambda: c.add(sig("DatastoreErrors", "search", 5, labels={"datastore": "s3"})),
        lambda: c.add(sig("HighErrorRate", "checkout", 30)),
        lambda: c.add(sig("HighLatency", "reports", 40)),
        lambda: c.add(sig("HighLatency", "billing", 41)),
        lambda: c.tick(ms(45)),
        lambda: c.add(sig("DBConnectionsExhausted", "db", 50)),
        lambda: c.add(sig("DatastoreErrors", "ledger", 100, labels={"datastore": "s3"})),
        lambda: c.add(sig("HighErrorRate", "frontend", 60)),
        lambda: c.resolve(sig("HighLatency", "payment", 0, end_s=200, resolved=True)),
        lambda: c.add(sig("HighLatency", "payment", 260)),
        lambda: c.split(incident_id(f"HighLatency-payment-p0@{ms(0)}"), "HighErrorRate-frontend-p0", "al", ms(300)),
        lambda: c.merge(
            incident_id(f"HighLatency-reports-p0@{ms(40)}"),
            incident_id(f"DatastoreErrors-search-p0@{ms(5)}"),
            "bo",
            ms(310),
        ),
        lambda: c.set_status(
            incident_id(f"HighLatency-payment-p0@{ms(0)}"), IncidentStatus.ACKNOWLEDGED, "al", ms(320)
        ),
        lambda: c.add(sig("PodRestarting", "payment", 900, "p7")),
        lambda: c.tick(ms(1000)),
        lambda: c.resolve(sig("HighLatency", "payment", 260, end_s=1200, resolved=True)),
        lambda: c.resolve(sig("HighErrorRate", "checkout", 30, end_s=1200, resolved=True)),
        lambda: c.resolve(sig("PodRestarting", "payment", 900, "p7", end_s=1200, resolved=True)),
        lambda: c.resolve(sig("HighLatency", "payment", 3, "p1", end_s=1200, resolved=True)),
        lambda: c.resolve(sig("DatastoreErrors", "ledger", 100, end_s=1300, resolved=True)),
        lambda: c.tick(ms(1200 + 600)),
        lambda: c.add(sig("HighErrorRate", "frontend", 1900, "p2")),
        lambda: c.tick(ms(9000)),
    ]


def run_script(c: Clusterer, start: int = 0, stop: int | None = None) -> list[IncidentRecord]:
    out: list[IncidentRecord] = []
    for step in script(c)[start:stop]:
        out.extend(step())
    return out


def test_the_same_events_in_the_same_order_give_identical_records() -> None:
    first, second = run_script(clusterer()), run_script(clusterer())
    assert first == second and len(first) > 20
    assert {r.merged_into for r in first} - {None}, "the script merges"
    assert any(r.status == IncidentStatus.RESOLVED and r.merged_into is None for r in first), "and resolves"


def test_restoring_a_snapshot_at_any_point_then_going_on_gives_the_records_of_an_uninterrupted_run() -> None:
    whole_clusterer = clusterer()
    steps = script(whole_clusterer)
    per_step = [step() for step in steps]
    for cut in range(1, len(steps)):
        before = clusterer()
        run_script(before, 0, cut)
        packed = msgpack.packb(before.snapshot(), use_bin_type=True)
        after = Clusterer.restore(ClusterConfig(), VIEW, msgpack.unpackb(packed, raw=False, strict_map_key=False))
        rest = run_script(after, cut)
        assert rest == [r for records in per_step[cut:] for r in records], f"cut after step {cut}"


def test_a_snapshot_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        Clusterer.restore(ClusterConfig(), VIEW, {"version": 99})


def test_a_refreshed_topology_is_used_for_the_next_signals() -> None:
    c = clusterer(TopologyView.EMPTY)
    a = only(c.add(sig("HighLatency", "payment", 0)))
    b = only(c.add(sig("HighErrorRate", "checkout", 10)))
    assert a.id != b.id, "no edges known yet"
    c.topology = VIEW
    joined = only(c.add(sig("HighErrorRate", "checkout", 20, "p1")))
    assert joined.id == b.id and only(c.add(sig("HighErrorRate", "frontend", 25))).id in (a.id, b.id)
