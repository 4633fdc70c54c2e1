"""The feedback store in one SQLite file (``sqlite:///path``), WAL so the CLI can read while a worker writes."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aiops_common.feedback._protocol import Sensitivity, StoredLabel
from aiops_common.schemas import AnomalyRecord, FeedbackLabel, FeedbackRecord
from aiops_common.tsdb.sqlite import path_from_url

__all__ = ["SqliteFeedbackStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS anomalies (
    id TEXT PRIMARY KEY,
    series_key TEXT NOT NULL,
    window_start TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS anomalies_by_series ON anomalies (series_key, window_start);
CREATE TABLE IF NOT EXISTS labels (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    at TEXT NOT NULL,
    record TEXT NOT NULL,
    applied_at TEXT,
    series_key TEXT
);
CREATE INDEX IF NOT EXISTS labels_by_subject ON labels (subject_id, at);
CREATE TABLE IF NOT EXISTS sensitivity (
    series_key TEXT PRIMARY KEY,
    slack REAL NOT NULL,
    min_score REAL,
    false_positives INTEGER NOT NULL,
    true_positives INTEGER NOT NULL
);
"""
# Files written before labels recorded their application gain the columns, every label pending.
_ADDED_COLUMNS = {"applied_at": "TEXT", "series_key": "TEXT"}


class SqliteFeedbackStore:
    """A :class:`~aiops_common.feedback.FeedbackStore` in one SQLite file."""

    def __init__(self, url: str) -> None:
        self.url = url
        path = path_from_url(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(labels)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in have:
                    self._db.execute(f"ALTER TABLE labels ADD COLUMN {column} {kind}")

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    async def record_anomaly(self, anomaly: AnomalyRecord) -> None:
        await asyncio.to_thread(
            self._run,
            "INSERT OR REPLACE INTO anomalies (id, series_key, window_start, record) VALUES (?, ?, ?, ?)",
            (anomaly.id, anomaly.series_key, anomaly.window_start.isoformat(), anomaly.model_dump_json()),
        )

    async def anomaly(self, anomaly_id: str) -> AnomalyRecord | None:
        rows = await asyncio.to_thread(self._run, "SELECT record FROM anomalies WHERE id = ?", (anomaly_id,))
        return AnomalyRecord.model_validate_json(rows[0][0]) if rows else None

    def _add_label(self, feedback: FeedbackRecord) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO labels (id, subject_id, at, record) VALUES (?, ?, ?, ?)",
                (feedback.id, feedback.subject_id, feedback.at.isoformat(), feedback.model_dump_json()),
            )
            return cursor.rowcount == 1

    async def add_label(self, feedback: FeedbackRecord) -> bool:
        return await asyncio.to_thread(self._add_label, feedback)

    async def labels(self, subject_id: str | None = None) -> list[FeedbackRecord]:
        if subject_id is None:
            rows = await asyncio.to_thread(self._run, "SELECT record FROM labels ORDER BY at, id")
        else:
            rows = await asyncio.to_thread(
                self._run, "SELECT record FROM labels WHERE subject_id = ? ORDER BY at, id", (subject_id,)
            )
        return [FeedbackRecord.model_validate_json(r[0]) for r in rows]

    async def label(self, label_id: str) -> StoredLabel | None:
        rows = await asyncio.to_thread(
            self._run, "SELECT record, applied_at, series_key FROM labels WHERE id = ?", (label_id,)
        )
        if not rows:
            return None
        record, applied_at, series_key = rows[0]
        return StoredLabel(
            FeedbackRecord.model_validate_json(record),
            datetime.fromisoformat(applied_at) if applied_at else None,
            series_key,
        )

    async def labelled_anomalies(self, label: FeedbackLabel) -> list[AnomalyRecord]:
        latest: dict[str, FeedbackLabel] = {}
        for feedback in await self.labels():
            latest[feedback.subject_id] = feedback.label
        wanted = [subject for subject, last in latest.items() if last == label]
        found = [await self.anomaly(subject) for subject in wanted]
        return sorted((a for a in found if a is not None), key=lambda a: (a.series_key, a.window_start))

    async def series_labels(self, series_key: str) -> list[tuple[AnomalyRecord, FeedbackRecord]]:
        rows = await asyncio.to_thread(
            self._run,
            "SELECT a.record, l.record FROM labels l JOIN anomalies a ON a.id = l.subject_id"
            " WHERE a.series_key = ? ORDER BY l.at, l.id",
            (series_key,),
        )
        return [(AnomalyRecord.model_validate_json(a), FeedbackRecord.model_validate_json(f)) for a, f in rows]

    async def sensitivity(self, series_key: str) -> Sensitivity:
        return (await self.sensitivities([series_key]))[series_key]

    def _sensitivities(self, keys: list[str]) -> dict[str, Sensitivity]:
        out = dict.fromkeys(keys, Sensitivity())
        # SQLite caps the number of bound parameters per statement.
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, slack, min_score, fps, tps in self._run(
                "SELECT series_key, slack, min_score, false_positives, true_positives FROM sensitivity"
                f" WHERE series_key IN ({marks})",
                tuple(chunk),
            ):
                out[key] = Sensitivity(slack, min_score, fps, tps)
        return out

    async def sensitivities(self, series_keys: Iterable[str]) -> dict[str, Sensitivity]:
        return await asyncio.to_thread(self._sensitivities, list(dict.fromkeys(series_keys)))

    def _record_applied(self, series_key: str, sensitivity: Sensitivity, label_ids: list[str], at: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO sensitivity"
                    " (series_key, slack, min_score, false_positives, true_positives) VALUES (?, ?, ?, ?, ?)",
                    (
                        series_key,
                        sensitivity.slack,
                        sensitivity.min_score,
                        sensitivity.false_positives,
                        sensitivity.true_positives,
                    ),
                )
                # The first application is the one recorded: a re-delivery re-applies nothing new.
                self._db.executemany(
                    "UPDATE labels SET applied_at = COALESCE(applied_at, ?), series_key = ? WHERE id = ?",
                    [(at, series_key, label_id) for label_id in label_ids],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    async def record_applied(
        self, series_key: str, sensitivity: Sensitivity, label_ids: Iterable[str], at: datetime
    ) -> None:
        await asyncio.to_thread(self._record_applied, series_key, sensitivity, list(label_ids), at.isoformat())

    # --- export: what copy_feedback reads (not part of the protocol) ----------------------------------------

    async def anomalies_after(self, after_id: str, limit: int) -> list[AnomalyRecord]:
        """Kept anomalies with ids above ``after_id`` (``""``: from the first), by id, at most ``limit``."""
        rows = await asyncio.to_thread(
            self._run, "SELECT record FROM anomalies WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        )
        return [AnomalyRecord.model_validate_json(r[0]) for r in rows]

    async def stored_labels(self) -> list[StoredLabel]:
        """Every kept label with its application, oldest first."""
        rows = await asyncio.to_thread(self._run, "SELECT record, applied_at, series_key FROM labels ORDER BY at, id")
        return [
            StoredLabel(
                FeedbackRecord.model_validate_json(record),
                datetime.fromisoformat(applied_at) if applied_at else None,
                series_key,
            )
            for record, applied_at, series_key in rows
        ]

    async def all_sensitivities(self) -> dict[str, Sensitivity]:
        """The sensitivity of every series feedback has moved."""
        rows = await asyncio.to_thread(
            self._run, "SELECT series_key, slack, min_score, false_positives, true_positives FROM sensitivity"
        )
        return {key: Sensitivity(slack, min_score, fps, tps) for key, slack, min_score, fps, tps in rows}

    async def close(self) -> None:
        with self._lock:
            self._db.close()
