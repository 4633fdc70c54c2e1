"""Per-incident debounce: each incident's newest revision is held until it has been quiet, or waited long enough.

An incident's revisions come in storms while the correlator grows it, and its first revision comes
before the fault's first windows are in the TSDB. A revision is due once no newer revision of its
incident has come for ``quiet_s``, or at the latest ``max_wait_s`` after the first revision now held
(an incident that keeps changing is still analysed). A new incident is held from its first revision,
so its first analysis comes at least ``quiet_s`` after it opened. Each held revision keeps the tokens
(the broker's records) of every revision it stands for: they are acknowledged only once it has been
analysed, so what is held when the process dies is read again after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiops_common.schemas import IncidentRecord

__all__ = ["Debouncer", "Held"]

T = TypeVar("T")


@dataclass(slots=True)
class Held(Generic[T]):
    """The newest revision of one incident not analysed yet, and what it stands for."""

    incident: IncidentRecord
    first_s: float
    """When the first revision held now came (monotonic seconds)."""
    last_s: float
    """When the newest one came."""
    tokens: list[T] = field(default_factory=list)
    superseded: int = 0
    """Older revisions this one replaced while held."""


class Debouncer(Generic[T]):
    """Incident id -> its held revision; :meth:`due` hands over those whose wait is over."""

    def __init__(self, quiet_s: float, max_wait_s: float) -> None:
        self.quiet_s = quiet_s
        self.max_wait_s = max(max_wait_s, quiet_s)
        self.held: dict[str, Held[T]] = {}

    def __len__(self) -> int:
        return len(self.held)

    def add(self, incident: IncidentRecord, token: T, now_s: float) -> None:
        """Hold ``incident`` (or keep the newer revision already held); its token is acknowledged with it."""
        held = self.held.get(incident.id)
        if held is None:
            self.held[incident.id] = Held(incident, now_s, now_s, [token])
            return
        held.tokens.append(token)
        held.superseded += 1
        if incident.revision > held.incident.revision:
            held.incident = incident
            held.last_s = now_s  # a newer revision restarts the quiet period; an older one (out of order) does not

    def due_at(self, held: Held[T]) -> float:
        return min(held.last_s + self.quiet_s, held.first_s + self.max_wait_s)

    def due(self, now_s: float) -> list[Held[T]]:
        """Take out the revisions whose wait is over, oldest first."""
        ready = sorted((h for h in self.held.values() if self.due_at(h) <= now_s), key=lambda h: h.first_s)
        for held in ready:
            del self.held[held.incident.id]
        return ready

    def drop_where(self, gone: Callable[[T], bool]) -> int:
        """Forget the held revisions with a token for which ``gone`` is true (a partition taken away: its records
        are read again from the committed offset by whoever holds it now); how many."""
        dropped = [key for key, held in self.held.items() if any(gone(t) for t in held.tokens)]
        for key in dropped:
            del self.held[key]
        return len(dropped)
