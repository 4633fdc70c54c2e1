"""P(cause | evidence): each service as the hypothesis "the fault began here", scored by what it explains.

A fault in a service shows in that service and may propagate to its callers, their callers
and so on (its *upstream*). Each service ``u`` of the case has ``l(u)``, the log likelihood
ratio that its series moved (from their robust scores). Under "the fault began in ``v``":

- ``v`` itself moved: ``l(v)``;
- each upstream service ``u`` moved with probability ``q`` per call between them (the fault may
  not reach it): ``log(q e^l(u) + 1 - q)``, about ``l(u) + log q`` when it clearly moved and about
  ``log(1 - q)`` (a small cost) when it did not;
- every other service is as it normally is (no term: that is the reference).

So a caller that amplifies its callee's slowdown explains less than the callee, which
explains the caller as well; an unrelated noisy service explains only itself; and a service
that did not move cannot be the origin of what moved above it. Onset order, Granger
directions, changes, traces, alerts and operator feedback enter as further log likelihood
ratios (``extra``), and the prior as a log multiplier. A last hypothesis, "none of these",
scores 0, so the probabilities say how sure the ranking is, not only which is first.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiops_common.schemas import Evidence, EvidenceKind

__all__ = ["Hypothesis", "best_paths", "rank", "upstream_hops"]

PROPAGATION = 0.5
"""q: how likely a service that depends on the origin shows the fault too."""
BACKGROUND = 0.1
"""b: how likely a service moves for a reason of its own (another change, a shifted baseline) during the incident."""
_UNREACHED = 3.0
_DECAY = 0.9
"""How much less likely each further call is to carry the fault up."""
"""The least cost of a symptom the origin cannot reach through calls."""


@dataclass(slots=True)
class Hypothesis:
    service: str
    log_score: float
    probability: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)


def upstream_hops(service: str, callers: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Every service upstream of ``service`` with its distance in calls, nearest first (ties by name)."""
    hops = {service: 0}
    order: dict[str, int] = {}
    queue = deque([service])
    while queue:
        node = queue.popleft()
        for caller in sorted(callers.get(node, ())):
            if caller not in hops:
                hops[caller] = hops[node] + 1
                order[caller] = hops[caller]
                queue.append(caller)
    return order


def best_paths(
    service: str,
    callers: Mapping[str, Sequence[str]],
    llr: Mapping[str, float],
    max_hops: int = 64,
    reach: float = 1.0,
) -> dict[str, tuple[float, list[str]]]:
    """Per service upstream of ``service``, the call path from it up to there whose interior moved most.

    A path's score is the sum of the log likelihood ratios of the services strictly between its ends
    (unknown ones count 0): if a fault travelled that way, every one of them was affected.
    """
    frontier: dict[str, tuple[float, list[str]]] = {service: (0.0, [service])}
    best: dict[str, tuple[float, list[str]]] = {}
    for _ in range(max_hops):
        step: dict[str, tuple[float, list[str]]] = {}
        for node, (score, path) in frontier.items():
            for caller in sorted(callers.get(node, ())):
                if caller in path:
                    continue
                reached = best.get(caller)
                if reached is None or score > reached[0]:
                    best[caller] = (score, [*path, caller])
                through = score + _relative(llr.get(caller, 0.0), reach)
                kept = step.get(caller)
                if kept is None or through > kept[0]:
                    step[caller] = (through, [*path, caller])
        if not step:
            break
        frontier = step
    return best


def _mix(llr: float, p: float) -> float:
    """log(p e^llr + 1 - p): a service affected with probability p, as a log likelihood ratio against normal."""
    if llr > 30:
        return llr + math.log(p)
    return math.log(p * math.exp(llr) + max(1.0 - p, 0.0))


def _relative(llr: float, p: float) -> float:
    """What explaining a service (affected with probability p) gains over leaving it to the background.

    About ``log(p / b)`` for a service that clearly moved, so a long chain of moved services does not
    outweigh everything else; about ``llr`` (negative) for one that did not move, which an explanation
    that needs it affected pays for in full.
    """
    p = max(p, 1e-9)
    return _mix(llr, p) - _mix(llr, BACKGROUND)


def _symptom_terms(
    service: str,
    callers: Mapping[str, Sequence[str]],
    llr: Mapping[str, float],
    symptoms: Sequence[str],
    target: str | None,
    reach: float,
) -> tuple[float, list[Evidence], set[str]]:
    """What reaching (or failing to reach) each symptom adds to the origin ``service``, and the paths' services."""
    score, evidence, on_path = 0.0, [], set()
    paths = best_paths(service, callers, llr, reach=reach) if symptoms else {}
    for symptom in symptoms:
        if symptom == service:
            continue
        found = paths.get(symptom)
        if found is None:
            if symptom == target:
                penalty = -max(llr.get(symptom, 0.0), _UNREACHED)  # the SLO under investigation
            else:
                # An alert it cannot reach is left to the background: another fault, or a decoy.
                penalty = -max(_relative(llr.get(symptom, 0.0), 1.0), 0.0)
            score += penalty
            evidence.append(
                Evidence(
                    kind=EvidenceKind.TOPOLOGY,
                    text=f"cannot explain {symptom}: no call path from it up to {symptom}",
                    weight=penalty,
                    effect=symptom,
                )
            )
            continue
        _, path = found
        # Services on several symptoms' paths count once.
        weight = sum(_relative(llr.get(u, 0.0), reach) for u in path[1:-1] if u not in on_path)
        on_path.update(path)
        score += weight
        evidence.append(
            Evidence(
                kind=EvidenceKind.TOPOLOGY,
                text=f"reaches {symptom} through " + " <- ".join(reversed(path)),
                weight=weight,
                cause=service,
                effect=symptom,
                count=len(path) - 1,
            )
        )
    return score, evidence, on_path


def _upstream_terms(
    service: str, callers: Mapping[str, Sequence[str]], llr: Mapping[str, float], counted: set[str], spread: float
) -> tuple[float, list[Evidence]]:
    """What the origin's other upstream services (not ``counted`` already) add: moved ones it explains, quiet ones."""
    explained: list[str] = []
    weights = {True: 0.0, False: 0.0}
    quiet = 0
    for caller, hops in upstream_hops(service, callers).items():
        caller_llr = llr.get(caller)
        if caller in counted or caller_llr is None:
            continue
        # Each call further away is less likely to show the fault (it may call the origin rarely).
        weights[caller_llr > 0] += _relative(caller_llr, spread * _DECAY ** (hops - 1))
        if caller_llr > 0:
            explained.append(caller)
        else:
            quiet += 1
    evidence = []
    if explained:
        names = ", ".join(explained[:5]) + (f" and {len(explained) - 5} more" if len(explained) > 5 else "")
        evidence.append(
            Evidence(
                kind=EvidenceKind.TOPOLOGY,
                text=f"explains {len(explained)} moved service(s) that depend on it: {names}",
                weight=weights[True],
                count=len(explained),
            )
        )
    if quiet:
        evidence.append(
            Evidence(
                kind=EvidenceKind.TOPOLOGY,
                text=f"{quiet} service(s) that depend on it did not move",
                weight=weights[False],
                count=quiet,
            )
        )
    return weights[True] + weights[False], evidence


def rank(
    candidates: Sequence[str],
    callers: Mapping[str, Sequence[str]],
    llr: Mapping[str, float],
    extra: Mapping[str, Sequence[Evidence]],
    symptoms: Sequence[str] = (),
    q: float = PROPAGATION,
    own: Mapping[str, float] | None = None,
    target: str | None = None,
) -> list[Hypothesis]:
    """Hypotheses for ``candidates``, best first, with probabilities over them and "none of these".

    ``llr``: per service, the log likelihood ratio that it moved (absent: no series, no information).
    ``extra``: per service, further evidence whose ``weight`` is its log likelihood ratio.
    ``symptoms``: what must be explained (a named target's service, or the services the incident's
    alerts are on): each is reached from the origin along its best call path, whose interior services
    must all have been affected (their full log likelihood ratios count), or, if it cannot be reached,
    counts against the origin: fully for ``target`` (the SLO under investigation), as much as leaving
    it to the background costs for the others. ``own``: per service, the log likelihood ratio that it moved by itself
    (what its dependencies do not explain); the origin's own term (``llr`` where absent).
    """
    own = own or {}
    hypotheses = []
    for service in candidates:
        mine = own.get(service, llr.get(service))
        mine = mine if mine is not None else 0.0
        # How far the fault is expected to reach depends on how clearly the origin moved by itself: a fault
        # too small to see in its own series is not expected to show in its callers either, and a service
        # whose move its dependencies explain is not the origin of what moved above it.
        reach = 1.0 / (1.0 + math.exp(-mine))
        path_score, path_evidence, on_path = _symptom_terms(service, callers, llr, symptoms, target, reach)
        upstream_score, upstream_evidence = _upstream_terms(service, callers, llr, set(symptoms) | on_path, q * reach)
        extras = list(extra.get(service, ()))
        score = mine + path_score + upstream_score + sum(e.weight for e in extras)
        hypotheses.append(Hypothesis(service, score, evidence=[*extras, *path_evidence, *upstream_evidence]))
    top = max([0.0, *(h.log_score for h in hypotheses)])
    total = math.exp(-top) + sum(math.exp(h.log_score - top) for h in hypotheses)  # "none of these" scores 0
    for h in hypotheses:
        h.probability = math.exp(h.log_score - top) / total
        h.evidence.sort(key=lambda e: -abs(e.weight))
    hypotheses.sort(key=lambda h: (-h.log_score, h.service))
    return hypotheses
