"""Dynamic-X-Y suppression: a signal raises only when X events fall within Y, both learned from its history."""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from fnmatch import fnmatchcase
from itertools import pairwise
from typing import Any

__all__ = ["Basis", "DxyConfig", "DynamicXY", "Learned", "Verdict", "learn", "poisson_threshold"]

SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class DxyConfig:
    """How Dynamic-X-Y learns and applies each signal's X and Y (all times are event time, in ms)."""

    relearn_ms: int = 3_600_000
    """A key's X and Y are learned again at most this often, when its own events move its clock past it."""
    history_ms: int = 7 * 86_400_000
    """How much event history per key is kept and learned from."""
    default_x: int = 1
    """X for keys with too little history to learn from (1: the first event raises)."""
    default_y_ms: int = 300_000
    overrides: tuple[tuple[str, int, int], ...] = ()
    """``(fnmatch pattern on the key, X, Y ms)``, first match wins: fixed for those keys, never learned."""
    min_events: int = 12
    """Events of history a key needs before its X and Y are learned; fewer keeps the defaults."""
    ma_width_ms: int = 1_800_000
    """Width of the moving average of the event count: a gap longer than this ends a persistent region."""
    bin_ms: int = 60_000
    """Resolution of region durations."""
    min_region_events: int = 3
    """A region with fewer events is a transient, self-resolving blip, not a persistent region."""
    flapping_coverage: float = 0.25
    """A key whose persistent regions cover at least this share of its recent history is flapping."""
    coverage_window_ms: int = 86_400_000
    """Coverage is measured over this most recent span, so a key that starts or stops flapping is followed."""
    min_span_ms: int = 6 * 3_600_000
    """... and over at least this span, so a young key's first long episode is not taken for its normal."""
    min_y_ms: int = 300_000
    max_y_ms: int = 900_000
    """The quantum (Y) is clamped to ``[min_y_ms, max_y_ms]``: long enough for a stable count, short enough
    that a burst is seen within minutes."""
    by_chance: float = 1e-3
    """A flapping key's X is the least count its usual rate reaches by chance in at most this share of Y windows."""
    max_events: int = 1024
    """At most this many most recent events are kept per key."""
    max_keys: int = 250_000
    """At most this many keys are tracked; the one whose last event came longest ago (in arrival order) goes first."""

    def __post_init__(self) -> None:
        for name in ("relearn_ms", "history_ms", "default_y_ms", "ma_width_ms", "bin_ms", "min_y_ms", "max_y_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DxyConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("default_x", "min_events", "min_region_events", "max_events", "max_keys"):
            if getattr(self, name) < 1:
                raise ValueError(f"DxyConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.flapping_coverage <= 1.0:
            raise ValueError(f"DxyConfig.flapping_coverage must be in (0, 1], got {self.flapping_coverage}")
        if self.min_y_ms > self.max_y_ms or self.min_span_ms > self.coverage_window_ms:
            raise ValueError("DxyConfig: min_y_ms must not exceed max_y_ms, nor min_span_ms coverage_window_ms")
        if not 0.0 < self.by_chance < 1.0:
            raise ValueError(f"DxyConfig.by_chance must be in (0, 1), got {self.by_chance}")
        for pattern, x, y_ms in self.overrides:
            if x < 1 or y_ms <= 0:
                raise ValueError(f"override {pattern!r}: X must be at least 1 and Y positive, got X={x} Y={y_ms}")


class Basis(IntEnum):
    """Where a key's X and Y come from."""

    DEFAULT = 0
    """Too little history: the configured defaults."""
    QUIET = 1
    """Learned: no persistent behaviour (or too little of it), so X=1."""
    FLAPPING = 2
    """Learned: persistent regions cover much of the history, so X sits above the usual count per Y."""
    OVERRIDE = 3
    """A configured override pattern matched the key."""


@dataclass(frozen=True, slots=True)
class Verdict:
    raised: bool
    """True: the event may open or join an incident; False: held back."""
    x: int
    y_ms: int
    count: int
    """Events of the key in ``(at_ms - y_ms, at_ms]``, this one included."""
    learned: bool
    """X and Y came from the key's history (False: defaults or an override)."""
    reason: str
    """One line for people, e.g. ``"4 events in 15 min < X=12 learned from 1024 events (flapping: ...)"``."""


@dataclass(frozen=True, slots=True)
class Learned:
    """What one learning pass over a key's history found."""

    basis: Basis
    x: int
    y_ms: int
    events: int
    """Events of history learned from."""
    regions: int
    """Persistent regions found."""
    coverage: float
    """Share of the recent history (``coverage_window_ms``, at least ``min_span_ms``) in persistent regions."""
    usual: float
    """Median of the regions' event counts per quantum Y (the paper's X(i)); 0 when not flapping."""


def poisson_threshold(usual: float, by_chance: float) -> int:
    """The least count k with P(N >= k) <= ``by_chance`` for N ~ Poisson(``usual``).

    >>> poisson_threshold(5.0, 1e-3), poisson_threshold(0.5, 1e-3)
    (14, 5)
    """
    k, below = 0, 0.0  # below: P(N < k)
    log_usual = math.log(usual) if usual > 0 else -math.inf
    far = usual + 40.0 * math.sqrt(usual) + 40.0  # beyond any float tail; guards against rounding
    while 1.0 - below > by_chance and k < far:
        below += math.exp(k * log_usual - usual - math.lgamma(k + 1)) if usual > 0 else float(k == 0)
        k += 1
    return k


def learn(events: Sequence[int], now_ms: int, config: DxyConfig) -> Learned:
    """X and Y from one key's sorted event times, without labels.

    A persistent region is a maximal stretch in which the moving average of the event count over
    ``ma_width_ms`` stays above zero; fewer than ``min_region_events`` events make a transient,
    self-resolving blip instead. The quantum Q is the shortest persistent region (every region lasts at
    least that long), clamped to ``[min_y_ms, max_y_ms]``: it becomes Y. Each region i gives
    X(i) = Q / P(i).duration * P(i).count, its event count per quantum, and their median is the key's
    usual count per Y. If persistent regions cover at least ``flapping_coverage`` of the recent history,
    firing again and again is the key's normal: it is flapping, and X is the least count that its usual
    rate reaches by chance in at most ``by_chance`` of Y windows, so its usual flapping stays below X and a
    burst well above it raises. Otherwise the key is quiet and X is 1.

    >>> cfg = DxyConfig()
    >>> flapping = list(range(0, 86_400_000, 180_000))  # every 3 minutes for a day
    >>> found = learn(flapping, flapping[-1], cfg)
    >>> found.basis.name, found.x, found.y_ms, round(found.usual, 1)
    ('FLAPPING', 14, 900000, 5.0)
    >>> learn([0, 3_600_000, 7_200_000], 7_200_000, cfg).basis.name  # too few events to learn from
    'DEFAULT'
    >>> learn(list(range(0, 7 * 86_400_000, 43_200_000)), 7 * 86_400_000, cfg).basis.name  # twice a day
    'QUIET'
    """
    n = len(events)
    if n < config.min_events:
        return Learned(Basis.DEFAULT, config.default_x, config.default_y_ms, n, 0, 0.0, 0.0)
    bin_ms = config.bin_ms
    regions: list[tuple[int, int, int]] = []  # (start ms, duration ms rounded up to whole bins, event count)
    start = prev = events[0]
    count = 0
    for t in events:
        if t - prev > config.ma_width_ms:  # the moving average fell to zero between prev and t
            if count >= config.min_region_events:
                regions.append((start, ((prev - start) // bin_ms + 1) * bin_ms, count))
            start, count = t, 0
        count += 1
        prev = t
    if count >= config.min_region_events:
        regions.append((start, ((prev - start) // bin_ms + 1) * bin_ms, count))
    recent = now_ms - config.coverage_window_ms
    covered = sum(max(0, start + duration - max(start, recent)) for start, duration, _ in regions)
    span = min(max(now_ms - events[0] + bin_ms, config.min_span_ms), config.coverage_window_ms)
    coverage = min(1.0, covered / span)
    if not regions or coverage < config.flapping_coverage:
        return Learned(Basis.QUIET, 1, config.default_y_ms, n, len(regions), coverage, 0.0)
    y_ms = min(max(min(duration for _, duration, _ in regions), config.min_y_ms), config.max_y_ms)
    usual = float(statistics.median(y_ms / duration * count for _, duration, count in regions))
    # X is capped by the events kept, else a key could never raise.
    x = config.max_events if usual >= config.max_events else max(2, poisson_threshold(usual, config.by_chance))
    x = min(x, config.max_events)
    return Learned(Basis.FLAPPING, x, y_ms, n, len(regions), coverage, usual)


class _Key:
    """One key's kept events (sorted) and its current X, Y."""

    __slots__ = ("basis", "clock", "coverage", "events", "learned_from", "next_learn", "override", "usual", "x", "y_ms")

    def __init__(self, override: int, x: int, y_ms: int, clock: int, next_learn: int) -> None:
        self.events: list[int] = []
        self.clock = clock
        """The latest event time seen for this key: its relearning and pruning run on it."""
        self.next_learn = next_learn
        self.override = override
        self.basis = Basis.OVERRIDE if override >= 0 else Basis.DEFAULT
        self.x = x
        self.y_ms = y_ms
        self.learned_from = 0
        self.coverage = 0.0
        self.usual = 0.0


def _duration(ms: int) -> str:
    if ms % 3_600_000 == 0:
        return f"{ms // 3_600_000} h"
    if ms % 60_000 == 0:
        return f"{ms // 60_000} min"
    if ms % 1000 == 0:
        return f"{ms // 1000} s"
    return f"{ms} ms"


def _events(n: int) -> str:
    return "1 event" if n == 1 else f"{n} events"


class DynamicXY:
    """Per-key Dynamic-X-Y on event time: deterministic, bounded, restorable.

    >>> dxy = DynamicXY()
    >>> dxy.observe("alert:DiskFull:db:db-0", 1_000).reason
    '1 event in 5 min >= X=1 (default: 1 event of history, 12 needed to learn)'
    """

    def __init__(self, config: DxyConfig | None = None) -> None:
        self._config = config if config is not None else DxyConfig()
        self._keys: OrderedDict[str, _Key] = OrderedDict()  # least recently observed first
        self._held_back = 0
        self._evicted = 0
        self._too_old = 0

    @property
    def config(self) -> DxyConfig:
        return self._config

    def _override(self, key: str) -> int:
        for i, (pattern, _, _) in enumerate(self._config.overrides):
            if fnmatchcase(key, pattern):
                return i
        return -1

    def _new_key(self, key: str, at_ms: int) -> _Key:
        cfg = self._config
        override = self._override(key)
        if override >= 0:
            _, x, y_ms = cfg.overrides[override]
        else:
            x, y_ms = cfg.default_x, cfg.default_y_ms
        while len(self._keys) >= cfg.max_keys:
            self._keys.popitem(last=False)
            self._evicted += 1
        state = _Key(override, x, y_ms, at_ms, at_ms + cfg.relearn_ms)
        self._keys[key] = state
        return state

    def _learn(self, state: _Key) -> None:
        found = learn(state.events, state.clock, self._config)
        state.basis, state.x, state.y_ms = found.basis, found.x, found.y_ms
        state.learned_from, state.coverage, state.usual = found.events, found.coverage, found.usual
        state.next_learn = state.clock + self._config.relearn_ms

    def observe(self, key: str, at_ms: int) -> Verdict:
        """Record one event of ``key`` at ``at_ms`` (event time) and judge it."""
        cfg = self._config
        state = self._keys.get(key)
        if state is None:
            state = self._new_key(key, at_ms)
        else:
            self._keys.move_to_end(key)
            if at_ms > state.clock:
                state.clock = at_ms
        events = state.events
        horizon = state.clock - cfg.history_ms
        kept = at_ms >= horizon
        if kept:
            if not events or at_ms >= events[-1]:
                events.append(at_ms)
            else:  # a late event: still counted in the windows it belongs to
                insort(events, at_ms)
            if events[0] < horizon:
                del events[: bisect_left(events, horizon)]
            if len(events) > cfg.max_events:
                del events[: len(events) - cfg.max_events]
                kept = at_ms >= events[0]
        if not kept:
            self._too_old += 1
        if state.override < 0 and state.clock >= state.next_learn:
            self._learn(state)
        x, y_ms = state.x, state.y_ms
        count = bisect_right(events, at_ms) - bisect_right(events, at_ms - y_ms) + (0 if kept else 1)
        raised = count >= x
        if not raised:
            self._held_back += 1
        return Verdict(raised, x, y_ms, count, state.basis in _LEARNED, self._reason(state, count, raised))

    def _reason(self, state: _Key, count: int, raised: bool) -> str:
        head = f"{_events(count)} in {_duration(state.y_ms)} {'>=' if raised else '<'} X={state.x}"
        basis = state.basis
        if basis == Basis.FLAPPING:
            return (
                f"{head} learned from {state.learned_from} events "
                f"(flapping: usually {state.usual:.1f} per {_duration(state.y_ms)})"
            )
        if basis == Basis.QUIET:
            return (
                f"{head} learned from {state.learned_from} events "
                f"(not flapping: persistent regions cover {state.coverage:.0%} of the recent history)"
            )
        if basis == Basis.OVERRIDE:
            return f"{head} (override {self._config.overrides[state.override][0]})"
        return f"{head} (default: {_events(len(state.events))} of history, {self._config.min_events} needed to learn)"

    def parameters(self, key: str) -> tuple[int, int, bool]:
        """``(x, y_ms, learned)`` that the key's next event would be judged by, barring a relearn it triggers."""
        state = self._keys.get(key)
        if state is not None:
            return state.x, state.y_ms, state.basis in _LEARNED
        override = self._override(key)
        if override >= 0:
            _, x, y_ms = self._config.overrides[override]
            return x, y_ms, False
        return self._config.default_x, self._config.default_y_ms, False

    def held_back(self) -> int:
        """Events held back so far."""
        return self._held_back

    def evicted(self) -> int:
        """Keys forgotten so far because ``max_keys`` were tracked (their next event starts from the defaults)."""
        return self._evicted

    def too_old(self) -> int:
        """Events judged but not kept: older than ``history_ms`` (or than every kept event) before their key's clock."""
        return self._too_old

    def __len__(self) -> int:
        return len(self._keys)

    def snapshot(self) -> dict[str, Any]:
        """The whole state, msgpack-able: at most ``max_keys`` keys of at most ``max_events`` events each.

        Event times are delta-encoded (the first absolute), which keeps most of them small integers.
        """
        keys: list[list[Any]] = []
        for key, s in self._keys.items():
            ev = s.events
            deltas = [ev[0], *(b - a for a, b in pairwise(ev))] if ev else []
            keys.append(
                [key, s.clock, s.next_learn, int(s.basis), s.x, s.y_ms, s.learned_from, s.coverage, s.usual, deltas]
            )
        return {
            "v": SNAPSHOT_VERSION,
            "held_back": self._held_back,
            "evicted": self._evicted,
            "too_old": self._too_old,
            "keys": keys,
        }

    @classmethod
    def restore(cls, config: DxyConfig, snapshot: Mapping[str, Any]) -> DynamicXY:
        """The state :meth:`snapshot` took; further events then give the verdicts they would have without it."""
        if snapshot.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"Dynamic-X-Y snapshot version {snapshot.get('v')!r}, expected {SNAPSHOT_VERSION}")
        dxy = cls(config)
        dxy._held_back = int(snapshot["held_back"])
        dxy._evicted = int(snapshot["evicted"])
        dxy._too_old = int(snapshot["too_old"])
        for entry in snapshot["keys"]:
            try:
                key, clock, next_learn, basis, x, y_ms, learned_from, coverage, usual, deltas = entry
            except (TypeError, ValueError) as exc:
                raise ValueError(f"Dynamic-X-Y snapshot: malformed key entry {entry!r:.200}") from exc
            state = dxy._new_key(str(key), int(clock))
            state.next_learn = int(next_learn)
            events: list[int] = []
            t = 0
            for d in deltas:
                t += int(d)
                events.append(t)
            state.events = events[-config.max_events :]
            # An override added since the snapshot wins over what was learned; one removed since leaves the defaults.
            if state.override < 0 and Basis(int(basis)) != Basis.OVERRIDE:
                state.basis = Basis(int(basis))
                state.x, state.y_ms = int(x), int(y_ms)
                state.learned_from, state.coverage, state.usual = int(learned_from), float(coverage), float(usual)
        return dxy


_LEARNED = frozenset({Basis.QUIET, Basis.FLAPPING})
