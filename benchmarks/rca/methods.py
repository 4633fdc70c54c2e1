"""The methods compared: each takes a case and returns service names, most probable root cause first.

An empty list means "no root cause" (what PetShop's specificity asks of a normal period).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from importlib import metadata

import numpy as np
import numpy.typing as npt
import pandas as pd
from aiops_rca.case import Case
from aiops_rca.engine import RcaConfig, analyze

__all__ = ["Method", "baro", "ours", "peer_versions", "random_ranking", "robust_z", "split_ms"]

Method = Callable[[Case], list[str]]


def ours(case: Case, config: RcaConfig | None = None) -> list[str]:
    """The engine, as the agent and ``aiops rca analyze`` run it."""
    return [c.service for c in analyze(case, config).causes]


def split_ms(case: Case) -> int:
    """Where the abnormal data begins: the first point after the given normal period, else the onset."""
    if case.baseline_end_ms is not None:
        after = case.ts_ms[case.ts_ms > case.baseline_end_ms]
        return int(after[0]) if after.size else int(case.ts_ms[-1])
    if case.onset_ms is not None:
        return case.onset_ms
    raise ValueError("the case gives neither its normal period nor its onset")


def _dedupe(services: list[str]) -> list[str]:
    return list(dict.fromkeys(services))


def baro(case: Case) -> list[str]:
    """BARO's robust scorer (``fse-baro``, ``baro.root_cause_analysis.robust_scorer``) with the anomaly time.

    Every series becomes one column (named by position: BARO drops columns called ``time``); gaps are
    filled forward then backward, as BARO's own data never has them. Its column ranking becomes a
    service ranking by each service's best column.
    """
    from baro.root_cause_analysis import robust_scorer

    keys = list(case.series)
    frame = pd.DataFrame({f"m{i}": case.series[k] for i, k in enumerate(keys)})
    frame = frame.ffill().bfill().dropna(axis=1, how="all")
    frame["time"] = case.ts_ms / 1000.0
    ranks = robust_scorer(frame, inject_time=split_ms(case) / 1000.0)["ranks"]
    return _dedupe([keys[int(col[1:])].service for col in ranks])


def random_ranking(seed: int = 0) -> Method:
    """Services in a random order (seeded: the same cases give the same figures)."""
    rng = random.Random(seed)

    def rank(case: Case) -> list[str]:
        services = case.all_services()
        rng.shuffle(services)
        return services

    return rank


def robust_z(threshold: float = 5.0) -> Method:
    """A simple reference: services by the largest robust z of their series after the split, those above
    ``threshold`` only. Used to exercise the harness, and as a floor any engine should clear."""

    def rank(case: Case) -> list[str]:
        split = split_ms(case)
        before = case.ts_ms < split
        best: dict[str, float] = {}
        for key, values in case.series.items():
            score = _robust_z(values[before], values[~before])
            if score > best.get(key.service, 0.0):
                best[key.service] = score
        return [s for s, z in sorted(best.items(), key=lambda kv: -kv[1]) if z > threshold]

    return rank


def _robust_z(base: npt.NDArray[np.float64], after: npt.NDArray[np.float64]) -> float:
    base, after = base[~np.isnan(base)], after[~np.isnan(after)]
    if base.size < 3 or after.size == 0:
        return 0.0
    median = float(np.median(base))
    spread = 1.4826 * float(np.median(np.abs(base - median)))
    # A flat baseline (errors at zero) still needs a scale: a tenth of its level, or a tiny constant.
    spread = max(spread, 0.1 * abs(median), 1e-6)
    return float(np.max(np.abs(after - median)) / spread)


def peer_versions() -> dict[str, str]:
    """The installed peers' versions (``not installed`` when missing)."""
    out: dict[str, str] = {}
    for dist in ("fse-baro", "circa-clue", "sfr-pyrca"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
