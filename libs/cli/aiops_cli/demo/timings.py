"""The loop's milestones after a fault, from the records on the platform's topics (pure), and demo.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiops_cli.demo.faults import SERVICES, Fault

__all__ = ["EXPECTED_RUNBOOK", "MILESTONES", "LoopTimings", "render_table", "write_results"]

MILESTONES: tuple[tuple[str, str], ...] = (
    ("first_anomaly", "first anomaly"),
    ("incident", "incident"),
    ("rca", "root causes ranked"),
    ("right_cause_first", "right root cause first"),
    ("approval_request", "approval requested"),
    ("executed", "executed"),
    ("outcome", "outcome"),
)
"""Milestone key and its label, in loop order; each is seconds after the fault's onset."""

EXPECTED_RUNBOOK = {
    "latency": "demo-scale-out-slow",
    "cpu": "demo-scale-out-slow",
    "errors": "demo-restart-on-errors",
    "bad-deploy": "demo-rollback-bad-deploy",
}
"""The runbook that fixes each fault kind: another one's verification can pass while the fault goes on (scaling
out a failing service leaves its errors; its latency check passes anyway)."""

_SUPERSEDED = "superseded"
_RAN = {"running", "verifying", "succeeded", "rolled_back", "rollback_failed", "failed", "interrupted"}
_DONE = {"succeeded", "rolled_back", "rollback_failed", "failed", "interrupted", "rejected", "expired"}


@dataclass
class LoopTimings:
    """One fault run: fed every record the demo reads (topic name, the record as JSON, when it was seen)."""

    service: str
    kind: str
    onset: float
    fault_id: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    incident_id: str = ""
    top_cause: str = ""
    top_cause_kind: str = ""
    execution_id: str = ""
    runbook: str = ""
    acted_on: str = ""
    """The service the execution changed (its cause's)."""
    status: str = ""
    """The execution's last status (``succeeded``: verified and the incident mitigated)."""
    notifications: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, fault: Fault) -> LoopTimings:
        return cls(fault.service, fault.kind.value, fault.started_at, fault.id)

    def _mark(self, key: str, at: float) -> bool:
        if key in self.seconds:
            return False
        self.seconds[key] = round(max(0.0, at - self.onset), 3)
        return True

    def observe(self, topic: str, record: dict[str, Any], at: float) -> list[str]:
        """Take one record seen at ``at``; the milestones it reached (as printable lines)."""
        if at < self.onset:
            return []
        reached: list[str] = []

        def mark(key: str, detail: str) -> None:
            if self._mark(key, at):
                label = dict(MILESTONES)[key]
                reached.append(f"+{self.seconds[key]:6.1f}s  {label}: {detail}")

        if topic == "anomalies":
            service = str(record.get("service") or record.get("labels", {}).get("service", ""))
            if service in SERVICES and _after(record.get("window_end"), self.onset - 10):
                mark("first_anomaly", f"{record.get('series_name')} of {service}")
        elif topic == "incidents":
            services = [s for s in record.get("services", []) if s in SERVICES]
            # The fault's incident: the first one holding the faulted service updated after onset (an older
            # incident of other services, a warm-up false alarm, is not it).
            fresh = _after(record.get("updated_at"), self.onset - 10)
            if self.service in services and not self.incident_id and fresh:
                self.incident_id = str(record.get("id"))
                mark("incident", f"{self.incident_id} {record.get('title', '')}")
        elif topic == "rca.results" and self.incident_id and record.get("incident_id") == self.incident_id:
            causes = record.get("causes") or []
            if causes:
                self.top_cause = str(causes[0].get("service", ""))
                self.top_cause_kind = str(causes[0].get("kind", ""))
                mark("rca", f"top cause {self.top_cause} ({self.top_cause_kind})")
                if self.top_cause == self.service:
                    mark("right_cause_first", f"{self.service} ranked first")
        elif topic == "actions" and self.incident_id and record.get("incident_id") == self.incident_id:
            status = str(record.get("status", ""))
            # Another execution for the incident: the one that superseded ours (a newer ranking named another cause
            # while ours waited for approval) is followed from then on; any other is not the loop's.
            other = bool(self.execution_id) and record.get("id") != self.execution_id
            if other and (status == _SUPERSEDED or self.status not in {"pending_approval", _SUPERSEDED}):
                return reached
            self.execution_id = str(record.get("id"))
            self.runbook = str(record.get("runbook_id", ""))
            self.acted_on = str(record.get("cause_service", ""))
            self.status = status
            if status == "pending_approval" or status in _RAN:
                mark("approval_request", f"{self.runbook} for {record.get('cause_service')} ({self.execution_id})")
            if status in _RAN:
                mark("executed", self.runbook)
            if status in _DONE:
                mark("outcome", status)
        return reached

    def notified(self, channel: str) -> None:
        self.notifications[channel] = self.notifications.get(channel, 0) + 1

    @property
    def closed(self) -> bool:
        """The loop closed: the right cause first, the runbook that fixes the fault run on the faulted service and
        verified (the incident mitigated)."""
        return (
            "right_cause_first" in self.seconds
            and self.acted_on == self.service
            and self.runbook == EXPECTED_RUNBOOK.get(self.kind)
            and self.status == "succeeded"
        )

    def to_json(self) -> dict[str, Any]:
        entry = asdict(self)
        entry["onset"] = datetime.fromtimestamp(self.onset, UTC).isoformat(timespec="seconds")
        entry["closed"] = self.closed
        return entry


def _after(value: Any, ts_s: float) -> bool:
    if not isinstance(value, str):
        return True  # a record without the time: judged by when it was seen
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() >= ts_s
    except ValueError:
        return True


def render_table(runs: list[LoopTimings]) -> str:
    """Fault runs as rows, milestones as columns (seconds after onset; '-' not reached)."""
    head = ["fault", *(label for _, label in MILESTONES[:-1]), "status", "top cause", "acted on"]
    rows = [head]
    for run in runs:
        cells = [f"{run.service}:{run.kind}"]
        cells += [f"{run.seconds[k]:.1f}" if k in run.seconds else "-" for k, _ in MILESTONES[:-1]]
        cells += [run.status or "-", run.top_cause or "-", run.acted_on or "-"]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows
    )


def write_results(path: Path, run: LoopTimings, machine: str = "") -> dict[str, Any]:
    """Append ``run`` to ``path`` (``{"runs": [...]}``, newest last); the file's content."""
    try:
        content = json.loads(path.read_text())
        runs = content["runs"] if isinstance(content, dict) and isinstance(content.get("runs"), list) else []
    except (OSError, ValueError):
        runs = []
    entry = run.to_json()
    if machine:
        entry["machine"] = machine
    runs.append(entry)
    content = {"description": "aiops demo: seconds from fault onset to each milestone of the loop", "runs": runs}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")
    return content
