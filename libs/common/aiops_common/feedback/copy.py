"""Copy a SQLite feedback store into another store (a host's file into the shared Elasticsearch one).

    python -m aiops_common.feedback.copy sqlite:////old/feedback.sqlite elasticsearch://user:pw@es:9200/aiops-feedback

Anomalies, labels (with when and where each was applied) and sensitivities arrive as the SQLite store holds them.
Every write is idempotent: running it again, or over a store that already has some of them, keeps each once.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from aiops_common.feedback import FeedbackStore, Sensitivity, open_feedback_store
from aiops_common.feedback.sqlite import SqliteFeedbackStore
from aiops_common.tsdb.sqlite import path_from_url

__all__ = ["Copied", "copy_feedback", "main"]

_BATCH = 500


@dataclass(frozen=True, slots=True)
class Copied:
    """How many of each the source held (and the target now holds too)."""

    anomalies: int
    labels: int
    sensitivities: int


async def copy_feedback(source: SqliteFeedbackStore, target: FeedbackStore) -> Copied:
    anomalies = 0
    after = ""
    while batch := await source.anomalies_after(after, _BATCH):
        for record in batch:
            await target.record_anomaly(record)
        anomalies += len(batch)
        after = batch[-1].id
    # After the anomalies: a target that joins labels to anomalies as they arrive finds every one.
    labels = await source.stored_labels()
    sensitivities = await source.all_sensitivities()
    applied: dict[tuple[str, datetime], list[str]] = {}
    for stored in labels:
        await target.add_label(stored.feedback)
        if stored.applied_at is not None and stored.series_key is not None:
            applied.setdefault((stored.series_key, stored.applied_at), []).append(stored.feedback.id)
    # Each label's first application as the source recorded it...
    for (series_key, at), ids in applied.items():
        await target.record_applied(series_key, sensitivities.get(series_key, Sensitivity()), ids, at)
    # ...then every series' sensitivity as it stands now.
    now = datetime.now(UTC)
    for series_key, sensitivity in sensitivities.items():
        await target.record_applied(series_key, sensitivity, [], now)
    return Copied(anomalies, len(labels), len(sensitivities))


async def _copy_urls(source_url: str, target_url: str) -> Copied:
    source = SqliteFeedbackStore(source_url)
    target = open_feedback_store(target_url)
    try:
        return await copy_feedback(source, target)
    finally:
        await source.close()
        await target.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m aiops_common.feedback.copy SOURCE_SQLITE_URL TARGET_URL", file=sys.stderr)
        return 2
    source_url, target_url = args
    if not source_url.startswith("sqlite:"):
        raise SystemExit(f"the source must be a SQLite feedback store (sqlite:///path), not {source_url!r}")
    if not path_from_url(source_url).is_file():
        raise SystemExit(f"no SQLite feedback store at {source_url!r}")  # opening it would make an empty one
    copied = asyncio.run(_copy_urls(source_url, target_url))
    print(f"copied {copied.anomalies} anomalies, {copied.labels} labels, {copied.sensitivities} sensitivities")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
