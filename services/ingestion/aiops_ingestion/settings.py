"""Settings of the ingestion service (``AIOPS_INGEST_*``)."""

from __future__ import annotations

from pathlib import Path

from aiops_common.service import Endpoint
from aiops_common.settings import CommonSettings
from pydantic import Field

__all__ = ["IngestionSettings"]


class IngestionSettings(CommonSettings):
    ingest_http_host: str = "127.0.0.1"
    ingest_http_port: int = 4318
    ingest_grpc_host: str = "127.0.0.1"
    ingest_grpc_port: int = 4317

    ingest_max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body accepted on the wire (compressed); larger gets 413."""
    ingest_max_decompressed_bytes: int = 64 * 1024 * 1024
    """Largest body after gzip/snappy decompression; protects against compression bombs."""
    ingest_max_labels_per_series: int = 64
    ingest_max_label_name_length: int = 256
    ingest_max_label_value_length: int = 4096
    ingest_max_series_per_request: int = 200_000
    ingest_max_future_skew_s: float = 600.0
    """Samples stamped further ahead of the server clock than this are rejected."""
    ingest_max_sample_age_s: float = 31 * 24 * 3600.0
    """Samples older than this are rejected (0 disables the check). A month: history sent to a running platform
    (a backfill, ``aiops replay`` of a few weeks) is windowed by its series' own clocks in the stream layer."""
    ingest_series_cache_size: int = Field(default=200_000, ge=2)
    """Most series whose checked, normalized form a process keeps for the next request (about 2 KB each).

    Up to half this many series sent again and again are served from the cache; see docs/ingestion.md.
    """

    ingest_metadata_file: Path | None = None
    """YAML mapping ``service -> {team, tier, zone, ...}`` added to every record of that service."""
    ingest_alert_dedup_ttl_s: float = 7 * 24 * 3600.0
    """How long an alert delivery is remembered for deduplication."""
    ingest_retry_after_s: int = 5
    """Retry-After sent with 503/429 when the broker is unavailable."""

    @property
    def http_url(self) -> str:
        return f"http://{self.ingest_http_host}:{self.ingest_http_port}"

    @property
    def grpc_address(self) -> str:
        return f"{self.ingest_grpc_host}:{self.ingest_grpc_port}"

    def advertised_urls(self) -> dict[str, str]:
        return {Endpoint.TELEMETRY_HTTP: self.http_url, Endpoint.TELEMETRY_GRPC: self.grpc_address}
