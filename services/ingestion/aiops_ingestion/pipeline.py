"""What every receiver needs to turn a request into acknowledged records: limits, enricher, cache, publisher."""

from __future__ import annotations

from dataclasses import dataclass

from aiops_common.broker import Publisher

from aiops_ingestion import normalize as nz
from aiops_ingestion.publishing import RecordPublisher
from aiops_ingestion.settings import IngestionSettings

__all__ = ["Pipeline"]


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The normalizers' limits, enricher and series cache, and the publisher their records go to."""

    limits: nz.Limits
    enricher: nz.Enricher
    series_cache: nz.SeriesCache
    records: RecordPublisher

    @classmethod
    def from_settings(
        cls, settings: IngestionSettings, publisher: Publisher, series_cache: nz.SeriesCache | None = None
    ) -> Pipeline:
        """``series_cache`` is shared by the HTTP and gRPC servers when given (one per process)."""
        if series_cache is None:
            series_cache = nz.SeriesCache(settings.ingest_series_cache_size)
        return cls(
            nz.Limits.from_settings(settings),
            nz.Enricher.from_settings(settings),
            series_cache,
            RecordPublisher(publisher),
        )
