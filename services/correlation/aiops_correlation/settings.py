"""Settings of the correlation service (``AIOPS_CORRELATE_*``, ``AIOPS_LOGS_*``)."""

from __future__ import annotations

from aiops_common.settings import CommonSettings
from pydantic import Field

__all__ = ["CorrelationSettings"]


class CorrelationSettings(CommonSettings):
    correlate_window_s: float = 300.0
    """Time proximity: a signal joins an incident only if it starts within this many seconds of a member."""
    correlate_hops: int = 2
    """Topology distance: services within this many call edges of a member's service are related."""
    correlate_label_similarity: float = 0.6
    """Label/attribute similarity from which two signals of unrelated services still group."""
    correlate_change_window_s: float = 1800.0
    """A change on a service this long before onset is linked to the incident (and groups its signals)."""
    correlate_quiet_s: float = 600.0
    """An incident whose members have all resolved is resolved after this long with nothing new."""
    correlate_tick_s: float = 5.0
    """How often the correlator's clock ticks (auto-resolve and idle decisions run on ticks)."""
    correlate_topology_refresh_s: float = 30.0
    """How often the correlator reads the topology store again."""
    correlate_dxy_relearn_s: float = 3600.0
    """How often Dynamic-X-Y relearns each signal's X and Y from its history (event time)."""
    correlate_dxy_history_s: float = 7 * 86400.0
    """How much of each signal's event history Dynamic-X-Y keeps and learns from."""
    correlate_dxy_overrides: dict[str, tuple[int, float]] = Field(default_factory=dict)
    """Fixed X and Y (seconds) by signal pattern instead of learned ones, e.g. ``{"alert:Watchdog:*": [3, 600],
    "anomaly:disk_*": [2, 300]}`` (JSON in the environment; patterns match the signal key, ``alert:NAME:SERVICE``
    or ``anomaly:SERIES_KEY``, first match wins)."""
    correlate_checkpoint_every: int = 500
    """The correlator writes its state to its changelog after this many events (and on ticks)..."""
    correlate_checkpoint_interval_s: float = 5.0
    """...but at most once per this many seconds: a state with 100k learned signals takes about a second to write."""
    logs_index_retention_s: float = 3 * 86400.0
    """Log records older than this are deleted from the document store's ``logs`` collection."""
    logs_index_min_severity: str = "info"
    """Log records below this severity (``debug`` < ``info`` < ``warn`` < ``error`` < ``fatal``) are not indexed."""
