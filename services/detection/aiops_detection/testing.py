"""Test support: ``features`` batches of synthetic series, as the stream service sends them, one per partition."""

from __future__ import annotations

from collections.abc import Sequence

from aiops_common.broker.publisher import Message
from aiops_common.schemas import FeatureBatch, SeriesMeta
from aiops_common.schemas.metrics import shard_of
from aiops_common.topics import Topics

__all__ = ["T0", "WINDOW_MS", "feature_messages", "window_batch"]

T0 = 1_700_000_040_000
"""The first window's start (a whole minute)."""
WINDOW_MS = 60_000


def window_batch(
    series: Sequence[SeriesMeta], first: int, columns: Sequence[dict[str, Sequence[float]]], batch_id: str = ""
) -> FeatureBatch:
    """Windows ``first, first+1, ...`` of every series; ``columns[s]`` are series s's feature columns."""
    count = len(next(iter(columns[0].values())))
    sids = [s for s in range(len(series)) for _ in range(count)]
    starts = [T0 + (first + i) * WINDOW_MS for _ in series for i in range(count)]
    merged: dict[str, list[float]] = {}
    for name in columns[0]:
        merged[name] = [float(v) for cols in columns for v in cols[name]]
    return FeatureBatch.from_rows(list(series), sids, starts, [WINDOW_MS] * len(sids), merged, id=batch_id)


def feature_messages(
    series: Sequence[SeriesMeta], first: int, columns: Sequence[dict[str, Sequence[float]]]
) -> list[Message]:
    """Windows ``first...`` of every series as ``features`` messages: one batch per partition, keyed by it."""
    partitions: dict[int, list[int]] = {}
    for i, meta in enumerate(series):
        partitions.setdefault(shard_of(meta.key, Topics.FEATURES.partitions), []).append(i)
    messages = []
    for part, members in sorted(partitions.items()):
        batch = window_batch([series[i] for i in members], first, [columns[i] for i in members], f"w{first}#{part}")
        messages.append(Message(Topics.FEATURES, batch.encode(), key=str(part).encode(), partition=part))
    return messages
