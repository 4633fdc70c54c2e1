"""Per-request limits on what a sender may ask the platform to store, taken from the settings."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiops_ingestion.normalize._timestamps import TimeWindow
from aiops_ingestion.settings import IngestionSettings

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Label, series, size and time bounds applied by every normalizer."""

    max_labels_per_series: int = 64
    max_label_name_length: int = 256
    max_label_value_length: int = 4096
    max_series_per_request: int = 200_000
    max_future_skew_s: float = 600.0
    max_sample_age_s: float = 31 * 24 * 3600.0
    """0 disables the age check (timestamps must still be positive)."""
    max_decompressed_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: IngestionSettings) -> Limits:
        return cls(
            max_labels_per_series=settings.ingest_max_labels_per_series,
            max_label_name_length=settings.ingest_max_label_name_length,
            max_label_value_length=settings.ingest_max_label_value_length,
            max_series_per_request=settings.ingest_max_series_per_request,
            max_future_skew_s=settings.ingest_max_future_skew_s,
            max_sample_age_s=settings.ingest_max_sample_age_s,
            max_decompressed_bytes=settings.ingest_max_decompressed_bytes,
        )

    def window(self, now_ms: int | None = None) -> TimeWindow:
        """The sample times accepted at ``now_ms`` (the server clock when not given)."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        return TimeWindow.around(now, self.max_future_skew_s, self.max_sample_age_s)
