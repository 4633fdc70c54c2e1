"""The notification YAML: channels (Slack, signed webhooks), routes by service/team/severity, and escalation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from aiops_common.schemas.incidents import IncidentSeverity
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

__all__ = [
    "ChannelConfig",
    "EscalationStep",
    "NotifyConfig",
    "NotifyConfigError",
    "RateLimit",
    "Route",
    "RouteMatch",
    "load_config",
    "parse_config",
    "parse_rate_limit",
]

_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*$")


class NotifyConfigError(ValueError):
    """The notification YAML is unreadable or invalid; the message names the file and what is wrong."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateLimit(_Frozen):
    """At most ``count`` messages per ``period_s`` on one channel."""

    count: int = Field(ge=1)
    period_s: float = Field(gt=0)


def parse_rate_limit(text: str) -> RateLimit:
    """``"10/minute"`` -> 10 per 60 s.

    >>> parse_rate_limit("10/minute")
    RateLimit(count=10, period_s=60.0)
    """
    found = _RATE.match(text)
    if not found:
        raise ValueError(f"rate_limit {text!r} is not COUNT/PERIOD with PERIOD one of {', '.join(_PERIODS)}")
    return RateLimit(count=int(found.group(1)), period_s=_PERIODS[found.group(2)])


class ChannelConfig(_Frozen):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    """Also the ``channel`` label of the delivery metrics, hence the plain characters."""
    kind: Literal["slack", "webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = None
    """HMAC-SHA256 key of a webhook channel's signature (``X-AIOps-Signature``)."""
    rate_limit: RateLimit | None = None
    """``10/minute``: more than that in a period are held and sent as one digest when the period ends."""
    timeout_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    queue_size: int = Field(default=1000, ge=1)
    """Messages waiting for this channel; when full the oldest is dropped (and counted)."""

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _rate(cls, value: object) -> object:
        return parse_rate_limit(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _webhook_secret(self) -> ChannelConfig:
        if self.kind == "webhook" and (self.secret is None or not self.secret.get_secret_value()):
            raise ValueError(f"webhook channel {self.name!r} needs a secret to sign its messages")
        return self


class RouteMatch(_Frozen):
    """Every condition given must hold; an empty list matches anything."""

    services: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    min_severity: IncidentSeverity = IncidentSeverity.INFO


class Route(_Frozen):
    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: list[str] = Field(min_length=1)


class EscalationStep(_Frozen):
    """Unacknowledged ``after_s`` seconds after it opened, an incident goes to these channels."""

    after_s: float = Field(ge=0)
    channels: list[str] = Field(min_length=1)


class NotifyConfig(_Frozen):
    channels: list[ChannelConfig] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    escalation: list[EscalationStep] = Field(default_factory=list)
    group_interval_s: float = Field(default=300.0, gt=0)
    """Updates of one incident's message of one kind go out at most once per interval (the latest wins)."""

    @model_validator(mode="after")
    def _known_channels(self) -> NotifyConfig:
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names repeat: {sorted({n for n in names if names.count(n) > 1})}")
        used = [n for r in self.routes for n in r.channels] + [n for s in self.escalation for n in s.channels]
        unknown = sorted(set(used) - set(names))
        if unknown:
            raise ValueError(f"routes or escalation name channels that are not defined: {unknown}")
        return self

    def channel(self, name: str) -> ChannelConfig:
        return next(c for c in self.channels if c.name == name)

    @property
    def escalation_steps(self) -> list[EscalationStep]:
        return sorted(self.escalation, key=lambda s: s.after_s)


def load_config(path: Path) -> NotifyConfig:
    """Read and validate the YAML at ``path``; one :class:`NotifyConfigError` naming the file and the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise NotifyConfigError(f"{path}: cannot read notification config: {exc}") from exc
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<notification config>") -> NotifyConfig:
    """Validate YAML text; errors name ``source`` (the file) and every problem."""
    path = source
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NotifyConfigError(f"{path}: cannot read notification config: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise NotifyConfigError(f"{path}: notification config must be a mapping, not {type(raw).__name__}")
    try:
        return NotifyConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise NotifyConfigError(f"{path}: {problems}") from exc
