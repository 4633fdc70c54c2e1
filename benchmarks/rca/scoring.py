"""How good a ranking is: AC@k (share of the true roots found in the top k) and Avg@5."""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = ["ac_at_k", "summarize"]


def ac_at_k(ranking: Sequence[str], roots: Collection[str], k: int) -> float:
    """|true roots in the top k| / min(k, |true roots|): 1.0 when the top k holds as many roots as it can.

    >>> ac_at_k(["a", "b", "c"], {"b"}, 1), ac_at_k(["a", "b", "c"], {"b"}, 3), ac_at_k(["a", "b"], {"a", "c"}, 3)
    (0.0, 1.0, 0.5)
    """
    if not roots:
        raise ValueError("a case needs at least one true root")
    found = len(set(ranking[:k]) & set(roots))
    return found / min(k, len(roots))


def summarize(rankings: Sequence[Sequence[str]], truths: Sequence[Collection[str]]) -> dict[str, float]:
    """AC@1..AC@5 and Avg@5 (their mean) over cases, plus how many rankings were empty."""
    if len(rankings) != len(truths) or not rankings:
        raise ValueError("one ranking per case, at least one case")
    out: dict[str, float] = {}
    for k in range(1, 6):
        out[f"ac{k}"] = sum(ac_at_k(r, t, k) for r, t in zip(rankings, truths, strict=True)) / len(rankings)
    out["avg5"] = sum(out[f"ac{k}"] for k in range(1, 6)) / 5
    out["empty"] = sum(1 for r in rankings if not r) / len(rankings)
    out["cases"] = len(rankings)
    return out
