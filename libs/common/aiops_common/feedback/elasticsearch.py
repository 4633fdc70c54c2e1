"""The feedback store on Elasticsearch or OpenSearch (``elasticsearch://host:port[/index-prefix]``,
``elasticsearchs://`` for TLS): one store that every pod of every service shares."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiops_common.documents.elasticsearch import connect
from aiops_common.extras import requires_extra
from aiops_common.feedback._protocol import Sensitivity, StoredLabel
from aiops_common.schemas import AnomalyRecord, FeedbackLabel, FeedbackRecord

with requires_extra("elasticsearch", "the Elasticsearch feedback store"):
    from elasticsearch import AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError

__all__ = ["DEFAULT_INDEX_PREFIX", "ElasticsearchFeedbackStore"]

DEFAULT_INDEX_PREFIX = "aiops-feedback-"
"""Indices of a URL without a path: apart from the document store's ``aiops-<collection>`` on the same cluster."""

_PAGE = 1_000
"""Hits per search request, and ids per ``_mget`` or ``_bulk`` request."""

_NOT_INDEXED = {"type": "text", "index": False}
_KEYWORD = {"type": "keyword"}
_LONG = {"type": "long"}

# The record is kept whole as JSON text and never searched; the fields beside it are what the queries use.
_MAPPINGS: dict[str, dict[str, Any]] = {
    # window_start_us: what a clean-up of the archive by age would select on.
    "anomalies": {"series_key": _KEYWORD, "window_start_us": _LONG, "record": _NOT_INDEXED},
    "labels": {
        "id": _KEYWORD,
        "subject_id": _KEYWORD,
        "subject_kind": _KEYWORD,
        "at_us": _LONG,
        # The series of the subject anomaly, once both the label and the anomaly are kept (whichever comes
        # second sets it): what series_labels looks labels up by.
        "anomaly_series": _KEYWORD,
        # The series the label moved and when it was first applied (record_applied).
        "series_key": _KEYWORD,
        "applied_at": _NOT_INDEXED,
        "record": _NOT_INDEXED,
    },
    "sensitivity": {
        "series_key": _NOT_INDEXED,
        "slack": {"type": "double"},
        "min_score": {"type": "double"},
        "false_positives": _LONG,
        "true_positives": _LONG,
    },
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    """Microseconds since the epoch (a time without a zone taken as UTC): exact, where a date field keeps ms."""
    return ((at if at.tzinfo else at.replace(tzinfo=UTC)) - _EPOCH) // timedelta(microseconds=1)


def _sensitivity_id(series_key: str) -> str:
    # A series key can be longer than the 512 bytes an Elasticsearch id may have.
    return hashlib.sha256(series_key.encode()).hexdigest()


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    return (items[start : start + _PAGE] for start in range(0, len(items), _PAGE))


class ElasticsearchFeedbackStore:
    """A :class:`~aiops_common.feedback.FeedbackStore` on Elasticsearch: indices ``<prefix>anomalies``,
    ``<prefix>labels`` and ``<prefix>sensitivity``.

    Every pod reads what every other pod wrote: lookups by id are real-time, and every write a search depends
    on (a label, the series a label's anomaly names) is refreshed before it returns. Labels are created, never
    overwritten, so two writers of one label keep it once; a label's first application is kept by a write
    conditional on the sequence number it was read at. ``client_options`` go to
    :class:`elasticsearch.AsyncElasticsearch` as they are.
    """

    def __init__(self, url: str, **client_options: Any) -> None:
        self.url = url
        self._client, self.index_prefix = connect(url, "feedback store", DEFAULT_INDEX_PREFIX, **client_options)
        self._ready = False

    def _index(self, kind: str) -> str:
        return f"{self.index_prefix}{kind}"

    async def _client_ready(self) -> AsyncElasticsearch:
        if not self._ready:
            for kind, properties in _MAPPINGS.items():
                mappings = {"dynamic": False, "properties": properties}
                try:
                    await self._client.indices.create(index=self._index(kind), mappings=mappings)
                except BadRequestError as exc:
                    if exc.error != "resource_already_exists_exception":
                        raise
                    # Made by another pod, or by an earlier version: fields added since are mapped.
                    await self._client.indices.put_mapping(
                        index=self._index(kind), dynamic="false", properties=properties
                    )
            self._ready = True
        return self._client

    # --- anomalies ---------------------------------------------------------------------------------------------

    async def record_anomaly(self, anomaly: AnomalyRecord) -> None:
        client = await self._client_ready()
        await client.index(
            index=self._index("anomalies"),
            id=anomaly.id,
            document={
                "series_key": anomaly.series_key,
                "window_start_us": _micros(anomaly.window_start),
                "record": anomaly.model_dump_json(),
            },
        )
        # Written before its labels are looked up, as add_label writes the label before looking up its anomaly:
        # of a label and its anomaly kept at once by two pods, at least one side sees the other.
        unnamed = {
            "bool": {
                "filter": [{"term": {"subject_id": anomaly.id}}],
                "must_not": [{"term": {"anomaly_series": anomaly.series_key}}],
            }
        }
        await self._name_series([hit["id"] async for hit in self._label_hits(unnamed, ("id",))], anomaly.series_key)

    async def _name_series(self, label_ids: Sequence[str], series_key: str) -> None:
        """Record on labels the series of their (now known) anomaly; a partial update keeps the other fields."""
        client = await self._client_ready()
        for chunk in _chunks(label_ids):
            operations: list[Mapping[str, Any]] = []
            for label_id in chunk:
                # Retried on a conflict with a concurrent record_applied: both fields are kept.
                update = {"update": {"_id": label_id, "retry_on_conflict": 5}}
                operations += [update, {"doc": {"anomaly_series": series_key}}]
            done = await client.bulk(index=self._index("labels"), operations=operations, refresh=True)
            if done["errors"]:
                refused = [result for item in done["items"] for result in item.values() if "error" in result]
                raise RuntimeError(f"feedback store: the series of labels not recorded: {refused}")

    async def anomaly(self, anomaly_id: str) -> AnomalyRecord | None:
        client = await self._client_ready()
        try:
            got = await client.get(index=self._index("anomalies"), id=anomaly_id, source_includes=["record"])
        except NotFoundError:
            return None
        return AnomalyRecord.model_validate_json(got["_source"]["record"])

    async def _anomalies(self, anomaly_ids: Iterable[str]) -> dict[str, AnomalyRecord]:
        client = await self._client_ready()
        found: dict[str, AnomalyRecord] = {}
        for chunk in _chunks(list(dict.fromkeys(anomaly_ids))):
            got = await client.mget(index=self._index("anomalies"), ids=list(chunk), source_includes=["record"])
            for doc in got["docs"]:
                if doc.get("found"):
                    found[doc["_id"]] = AnomalyRecord.model_validate_json(doc["_source"]["record"])
        return found

    # --- labels ------------------------------------------------------------------------------------------------

    async def add_label(self, feedback: FeedbackRecord) -> bool:
        client = await self._client_ready()
        try:
            await client.index(
                index=self._index("labels"),
                id=feedback.id,
                document={
                    "id": feedback.id,
                    "subject_id": feedback.subject_id,
                    "subject_kind": feedback.subject_kind,
                    "at_us": _micros(feedback.at),
                    "record": feedback.model_dump_json(),
                },
                op_type="create",
                refresh=True,
            )
            created = True
        except ConflictError:
            created = False  # kept already, by this pod or another
        # Even when kept already: a redelivery finishes what a writer stopped between the two steps did not.
        try:
            got = await client.get(
                index=self._index("anomalies"), id=feedback.subject_id, source_includes=["series_key"]
            )
        except NotFoundError:
            return created
        await self._name_series([feedback.id], got["_source"]["series_key"])
        return created

    async def _label_hits(
        self, query: Mapping[str, Any], fields: Sequence[str] = ("record",)
    ) -> AsyncIterator[Mapping[str, Any]]:
        """The ``_source`` of every label a query matches, oldest first (then by id), page by page."""
        client = await self._client_ready()
        after: list[Any] | None = None
        while True:
            found = await client.search(
                index=self._index("labels"),
                query=query,
                sort=[{"at_us": "asc"}, {"id": "asc"}],
                size=_PAGE,
                search_after=after,
                track_total_hits=False,
                source_includes=list(fields),
            )
            hits = found["hits"]["hits"]
            for hit in hits:
                yield hit["_source"]
            if len(hits) < _PAGE:
                return
            after = hits[-1]["sort"]

    async def labels(self, subject_id: str | None = None) -> list[FeedbackRecord]:
        query = {"match_all": {}} if subject_id is None else {"term": {"subject_id": subject_id}}
        return [FeedbackRecord.model_validate_json(source["record"]) async for source in self._label_hits(query)]

    async def label(self, label_id: str) -> StoredLabel | None:
        client = await self._client_ready()
        try:
            got = await client.get(index=self._index("labels"), id=label_id)
        except NotFoundError:
            return None
        source = got["_source"]
        applied_at = source.get("applied_at")
        return StoredLabel(
            FeedbackRecord.model_validate_json(source["record"]),
            datetime.fromisoformat(applied_at) if applied_at else None,
            source.get("series_key"),
        )

    async def labelled_anomalies(self, label: FeedbackLabel) -> list[AnomalyRecord]:
        latest: dict[str, FeedbackLabel] = {}
        for feedback in await self.labels():
            latest[feedback.subject_id] = feedback.label
        found = await self._anomalies(subject for subject, last in latest.items() if last == label)
        return sorted(found.values(), key=lambda a: (a.series_key, a.window_start))

    async def series_labels(self, series_key: str) -> list[tuple[AnomalyRecord, FeedbackRecord]]:
        named = {"term": {"anomaly_series": series_key}}
        # Anomaly labels whose series is not named yet: while a pod is between keeping an anomaly and naming
        # its series on the labels kept before it, they are found through the anomaly itself.
        unnamed = {
            "bool": {
                "filter": [{"term": {"subject_kind": "anomaly"}}],
                "must_not": [{"exists": {"field": "anomaly_series"}}],
            }
        }
        fields = ("record", "subject_id", "at_us", "id")
        hits = [hit async for hit in self._label_hits({"bool": {"should": [named, unnamed]}}, fields)]
        anomalies = await self._anomalies(hit["subject_id"] for hit in hits)
        paired = [
            (anomalies[hit["subject_id"]], FeedbackRecord.model_validate_json(hit["record"]))
            for hit in hits
            if hit["subject_id"] in anomalies and anomalies[hit["subject_id"]].series_key == series_key
        ]
        return paired

    # --- sensitivity -------------------------------------------------------------------------------------------

    async def sensitivity(self, series_key: str) -> Sensitivity:
        return (await self.sensitivities([series_key]))[series_key]

    async def sensitivities(self, series_keys: Iterable[str]) -> dict[str, Sensitivity]:
        keys = list(dict.fromkeys(series_keys))
        out = dict.fromkeys(keys, Sensitivity())
        if not keys:
            return out
        client = await self._client_ready()
        by_id = {_sensitivity_id(key): key for key in keys}
        for chunk in _chunks(list(by_id)):
            got = await client.mget(index=self._index("sensitivity"), ids=list(chunk))
            for doc in got["docs"]:
                if doc.get("found"):
                    s = doc["_source"]
                    out[by_id[doc["_id"]]] = Sensitivity(
                        float(s["slack"]),
                        None if s.get("min_score") is None else float(s["min_score"]),
                        int(s["false_positives"]),
                        int(s["true_positives"]),
                    )
        return out

    async def record_applied(
        self, series_key: str, sensitivity: Sensitivity, label_ids: Iterable[str], at: datetime
    ) -> None:
        """The sensitivity first, then the labels: a writer stopped in between leaves labels pending, which
        their redelivery applies again (no transaction spans documents here)."""
        client = await self._client_ready()
        await client.index(
            index=self._index("sensitivity"),
            id=_sensitivity_id(series_key),
            document={
                "series_key": series_key,
                "slack": sensitivity.slack,
                "min_score": sensitivity.min_score,
                "false_positives": sensitivity.false_positives,
                "true_positives": sensitivity.true_positives,
            },
        )
        pending = list(dict.fromkeys(label_ids))
        while pending:
            conflicted: list[str] = []
            for chunk in _chunks(pending):
                got = await client.mget(index=self._index("labels"), ids=list(chunk), source_includes=["applied_at"])
                operations: list[Mapping[str, Any]] = []
                for doc in got["docs"]:
                    if not doc.get("found"):
                        continue  # not kept: nothing to mark, as SQLite's UPDATE of no row
                    if doc["_source"].get("applied_at"):
                        # The first application is the one recorded; the series follows the latest.
                        operations += [{"update": {"_id": doc["_id"]}}, {"doc": {"series_key": series_key}}]
                    else:
                        # Conditional on what was read: a second pod applying it at once cannot overwrite the
                        # first application, it reads it again and keeps it.
                        condition = {"if_seq_no": doc["_seq_no"], "if_primary_term": doc["_primary_term"]}
                        operations += [
                            {"update": {"_id": doc["_id"], **condition}},
                            {"doc": {"series_key": series_key, "applied_at": at.isoformat()}},
                        ]
                if not operations:
                    continue
                done = await client.bulk(index=self._index("labels"), operations=operations)
                if not done["errors"]:
                    continue
                for item in done["items"]:
                    (result,) = item.values()
                    if "error" not in result:
                        continue
                    if result.get("status") == 409:
                        conflicted.append(result["_id"])
                    elif result.get("status") != 404:  # deleted in between: as if never kept
                        raise RuntimeError(f"feedback store: label {result['_id']} not updated: {result['error']}")
            pending = conflicted

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def drop(self) -> None:
        """Delete this store's indices (what a test run wrote on a shared server)."""
        for kind in _MAPPINGS:
            await self._client.indices.delete(index=self._index(kind), ignore_unavailable=True)
        self._ready = False

    async def close(self) -> None:
        await self._client.close()
