"""The shop's state and what faults do to it: pure, no I/O, every time passed in."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "CALLS",
    "MAX_FAULT_S",
    "ROLLOUT_S",
    "SERVICES",
    "Effect",
    "Fault",
    "FaultKind",
    "ServiceState",
    "ShopError",
    "ShopState",
    "UnknownServiceError",
    "parse_duration",
]

SERVICES = ("frontend", "checkout", "payment", "database", "inventory")
"""The shop's services, callers first."""

CALLS: dict[str, tuple[str, ...]] = {
    "frontend": ("checkout",),
    "checkout": ("payment", "inventory"),
    "payment": ("database",),
    "database": (),
    "inventory": (),
}
"""Who calls whom on every request (frontend -> checkout -> payment -> database, checkout -> inventory)."""

MAX_FAULT_S = 24 * 3600
ROLLOUT_S = 10.0
"""A deployment's new version takes traffic this long after its deployment event (the rollout): a bad version's
failures begin after the change that caused them, as they do in a real shop."""
_BASE_REPLICAS = 2
_BASE_VERSION = "1.4.0"
_BAD_VERSION = "1.5.0"


class ShopError(ValueError):
    """A request the shop refuses (unknown kind, a bad duration, a bad replica count)."""


class UnknownServiceError(ShopError):
    """No such shop service."""


class FaultKind(StrEnum):
    LATENCY = "latency"
    ERRORS = "errors"
    CPU = "cpu"
    BAD_DEPLOY = "bad-deploy"


def _iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h`` as seconds; :class:`ShopError` for anything else or outside 1 s..24 h."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ShopError(f"{text!r} is not a duration (e.g. 90s, 5m, 1h)")
    seconds = float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    if not 1 <= seconds <= MAX_FAULT_S:
        raise ShopError(f"{text!r} is outside 1s..24h")
    return seconds


@dataclass(frozen=True, slots=True)
class Fault:
    id: str
    service: str
    kind: FaultKind
    started_at: float
    until: float

    def active(self, now: float) -> bool:
        return self.started_at <= now < self.until

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "service": self.service,
            "kind": self.kind.value,
            "started_at": _iso(self.started_at),
            "until": _iso(self.until),
        }


@dataclass(slots=True)
class ServiceState:
    replicas: int = _BASE_REPLICAS
    version: str = _BASE_VERSION
    previous_version: str = ""
    bad_version: bool = False
    """The running version is a bad deploy: errors and latency until it is rolled back."""
    deployed_at: float = 0.0
    base_replicas: int = _BASE_REPLICAS

    def to_json(self, healthy: bool) -> dict[str, object]:
        return {"replicas": self.replicas, "version": self.version, "healthy": healthy}


@dataclass(frozen=True, slots=True)
class Effect:
    """How one service behaves now: its own latency times ``latency_factor``, an error probability, cpu in %."""

    latency_factor: float = 1.0
    error_rate: float = 0.0
    cpu_percent: float = 0.0

    @property
    def healthy(self) -> bool:
        return self.latency_factor < 1.5 and self.error_rate < 0.05 and self.cpu_percent < 85


# A service's own latency in seconds without load.
BASE_LATENCY_S: dict[str, float] = {
    "frontend": 0.012,
    "checkout": 0.020,
    "payment": 0.035,
    "database": 0.008,
    "inventory": 0.015,
}
BASE_ERROR_RATE = 0.0
"""No failures without a fault: at about 40 requests a window, a background rate of a fraction of a percent is a
series of zeros with a stray error now and then, which robust scores (a zero spread) take for the strongest
departure of the incident, and the RCA then ranks that bystander first."""


@dataclass
class ShopState:
    """Every service's replicas and version, and the faults injected; changed by the control API and runbooks."""

    services: dict[str, ServiceState] = field(default_factory=lambda: {s: ServiceState() for s in SERVICES})
    faults: list[Fault] = field(default_factory=list)

    def _service(self, name: str) -> ServiceState:
        state = self.services.get(name)
        if state is None:
            raise UnknownServiceError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
        return state

    def inject(self, service: str, kind: str, for_s: float, now: float) -> Fault:
        """Start a fault; a bad deploy also moves the service to a new version (until rolled back)."""
        state = self._service(service)
        try:
            fault_kind = FaultKind(kind)
        except ValueError:
            raise ShopError(f"unknown fault kind {kind!r}; one of {', '.join(k.value for k in FaultKind)}") from None
        if isinstance(for_s, bool) or not isinstance(for_s, int | float) or not 1 <= for_s <= MAX_FAULT_S:
            raise ShopError(f"for_s must be a number of seconds in 1..{MAX_FAULT_S}")
        fault = Fault(uuid.uuid4().hex[:12], service, fault_kind, now, now + float(for_s))
        if fault_kind is FaultKind.BAD_DEPLOY:
            state.previous_version = state.version
            state.version = _BAD_VERSION if state.version != _BAD_VERSION else _BAD_VERSION + "-1"
            state.bad_version = True
            state.deployed_at = now
        self.faults.append(fault)
        return fault

    def active_faults(self, now: float) -> list[Fault]:
        self.faults = [f for f in self.faults if now < f.until]
        return [f for f in self.faults if f.active(now)]

    def clear(self, fault_id: str | None = None) -> int:
        """End one fault (by id) or all; the faults ended. A bad version stays until rolled back."""
        before = len(self.faults)
        self.faults = [f for f in self.faults if fault_id is not None and f.id != fault_id]
        return before - len(self.faults)

    def scale(self, service: str, replicas: int) -> ServiceState:
        state = self._service(service)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 50:
            raise ShopError("replicas must be an integer in 1..50")
        state.replicas = replicas
        return state

    def rollback(self, service: str) -> ServiceState:
        """Back to the previous version: a bad deploy (its fault too) ends."""
        state = self._service(service)
        if state.previous_version:
            state.version, state.previous_version = state.previous_version, ""
        state.bad_version = False
        self.faults = [f for f in self.faults if not (f.service == service and f.kind is FaultKind.BAD_DEPLOY)]
        return state

    def restart(self, service: str) -> ServiceState:
        """A restart clears what a process holds: the service's error and cpu faults end."""
        state = self._service(service)
        cleared = (FaultKind.ERRORS, FaultKind.CPU)
        self.faults = [f for f in self.faults if not (f.service == service and f.kind in cleared)]
        return state

    def effect(self, service: str, now: float, load: float = 1.0) -> Effect:
        """What ``service`` does now under ``load`` (1.0: the daily mean per base replica count).

        A latency or cpu fault is a slow path that queues with the load each replica carries: more
        replicas lower it, which is why scaling fixes latency and cpu faults.
        """
        state = self._service(service)
        per_replica = load * state.base_replicas / state.replicas
        latency = 1.0
        errors = BASE_ERROR_RATE
        cpu = min(95.0, 25.0 * per_replica)
        # Past half a base replica's load the slow path queues; scaled out to a third it no longer does.
        saturation = min(1.0, max(0.0, (per_replica - 0.5) / 0.5))
        for fault in self.active_faults(now):
            if fault.service != service:
                continue
            if fault.kind is FaultKind.LATENCY:
                latency *= 1.0 + 14.0 * saturation
            elif fault.kind is FaultKind.ERRORS:
                errors = max(errors, 0.4)
            elif fault.kind is FaultKind.CPU:
                cpu = max(cpu, 20.0 + 78.0 * saturation)
                latency *= 1.0 + 9.0 * saturation
        if state.bad_version and now >= state.deployed_at + ROLLOUT_S:
            errors = max(errors, 0.3)
            latency *= 4.0
        return Effect(latency, errors, cpu)

    def to_json(self, now: float) -> dict[str, object]:
        return {
            "services": {name: s.to_json(self.effect(name, now).healthy) for name, s in self.services.items()},
            "faults": [f.to_json() for f in self.active_faults(now)],
        }
