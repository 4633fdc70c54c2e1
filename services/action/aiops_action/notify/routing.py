"""Which channels get a notification (routes by service, team, severity), grouping per incident, rate limits."""

from __future__ import annotations

from dataclasses import dataclass, replace

from aiops_action.notify.config import NotifyConfig, RateLimit, Route
from aiops_action.notify.messages import EventKind, Notification

__all__ = ["Grouper", "RateLimiter", "Router", "route_matches"]


def route_matches(route: Route, n: Notification) -> bool:
    m = route.match
    if n.severity.rank < m.min_severity.rank:
        return False
    if m.services and not set(m.services) & set(n.services):
        return False
    return not (m.teams and not set(m.teams) & set(n.teams))


class Router:
    def __init__(self, config: NotifyConfig) -> None:
        self.routes = list(config.routes)

    def channels(self, n: Notification) -> list[str]:
        """Every matching route's channels, each once, in the order the routes list them."""
        out: list[str] = []
        for route in self.routes:
            if route_matches(route, n):
                out.extend(c for c in route.channels if c not in out)
        return out


@dataclass
class _Group:
    last_sent: float
    pending: Notification | None = None


class Grouper:
    """One message per incident and event kind: the first goes at once; later ones (an alert storm's updates)
    wait so that at most one update per ``interval_s`` goes out, the latest of them.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._groups: dict[tuple[str, EventKind, str], _Group] = {}
        self.folded = 0
        """Notifications replaced by a later one of their group before they went out."""

    def offer(self, n: Notification, now: float) -> Notification | None:
        """The notification to send now, or None when it waits (or was folded into the group's next update)."""
        key = (n.incident_id, n.kind, n.group_key)
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = _Group(last_sent=now)
            return n
        update = replace(n, update=True)
        if group.pending is None and now - group.last_sent >= self.interval_s:
            group.last_sent = now
            return update
        if group.pending is not None:
            self.folded += 1
        group.pending = update
        return None

    def due(self, now: float) -> list[Notification]:
        """Waiting updates whose interval has passed."""
        out = []
        for group in self._groups.values():
            if group.pending is not None and now - group.last_sent >= self.interval_s:
                out.append(group.pending)
                group.pending = None
                group.last_sent = now
        return out

    def forget(self, incident_id: str) -> None:
        """Drop a closed incident's groups (a reopened one starts over with a new message)."""
        for key in [k for k in self._groups if k[0] == incident_id]:
            del self._groups[key]


class RateLimiter:
    """At most ``count`` per ``period_s`` (a fixed window); the excess is held for a digest.

    Held notifications beyond ``max_held`` are not kept (the caller counts them as ``digest_dropped``).
    """

    def __init__(self, limit: RateLimit, max_held: int = 50) -> None:
        self.limit = limit
        self.max_held = max_held
        self._window_start: float | None = None
        self._used = 0
        self.held: list[Notification] = []
        self.held_over = 0
        """Held beyond ``max_held`` since the last digest: counted, not kept."""

    def _roll(self, now: float) -> None:
        if self._window_start is None or now - self._window_start >= self.limit.period_s:
            self._window_start = now
            self._used = 0

    def admit(self, n: Notification, now: float) -> bool:
        """True: send it now. False: it was held (or counted, when too many are held)."""
        self._roll(now)
        if self._used < self.limit.count:
            self._used += 1
            return True
        if len(self.held) < self.max_held:
            self.held.append(n)
        else:
            self.held_over += 1
        return False

    def digest(self, now: float) -> tuple[list[Notification], int] | None:
        """When a new window has room and some were held: the held ones and the count held over; it uses one
        message of the window."""
        if not self.held and not self.held_over:
            return None
        self._roll(now)
        if self._used >= self.limit.count:
            return None
        self._used += 1
        held, over = self.held, self.held_over
        self.held, self.held_over = [], 0
        return held, over
