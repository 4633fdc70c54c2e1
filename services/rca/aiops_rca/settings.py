"""Settings of the RCA service (``AIOPS_RCA_*``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiops_common.settings import CommonSettings
from pydantic import Field

if TYPE_CHECKING:  # the engine needs the rca extra (statsmodels); settings are read without it (aiops config)
    from aiops_rca.engine import RcaConfig

__all__ = ["RcaSettings"]


class RcaSettings(CommonSettings):
    rca_hops: int = 2
    """The affected subgraph: services within this many call edges up- and downstream of the incident's."""
    rca_lookback_s: float = 3600.0
    """Baseline: how much history before the incident's onset is read from the TSDB."""
    rca_after_s: float = 900.0
    """How much after onset is read (never past the time of the analysis)."""
    rca_step_s: float = 10.0
    """The case's time grid: one point per this many seconds (the stream's window length)."""
    rca_max_series_per_service: int = 64
    """Most series read per service (RED and log series first, then the others by name)."""
    rca_debounce_s: float = Field(default=2.0, ge=0)
    """An incident's newest revision is analysed once no newer one has come for this long; a new incident's first
    analysis comes at least this long after it opened (its evidence windows have landed)."""
    rca_debounce_max_s: float = Field(default=30.0, gt=0)
    """The longest a revision waits while newer ones keep coming (never less than ``rca_debounce_s``)."""
    rca_pre_onset_s: float = Field(default=300.0, gt=0)
    """The analysed window starts this long before the incident's onset (a cause moves before the alerts say so);
    the baseline is what comes before it, or the first few points there are when the history is shorter."""
    rca_anomaly_z: float = 5.0
    """Robust z a series must reach after onset to count as moved."""
    rca_max_lag: int = 6
    """Most lags a Granger test considers (chosen by information criterion up to it)."""
    rca_granger_alpha: float = 0.05
    """False discovery rate of one case's Granger tests (Benjamini-Hochberg)."""
    rca_change_window_s: float = 1800.0
    """A deployment or config change this long before onset is linked to it."""
    rca_top: int = 10
    """Most causes in a result."""
    rca_trace_window_s: float = 600.0
    """First failing spans are counted from this long before onset to the end of the case's window."""
    rca_source_timeout_s: float = 10.0
    """Longest one read of a store may take before the case goes on without that source."""
    rca_trace_horizon_s: float = 3 * 3600.0
    """How long the trace index keeps its per-minute counts (bounded memory)."""

    def config(self) -> RcaConfig:
        """The engine's configuration from these settings."""
        from aiops_rca.engine import RcaConfig

        return RcaConfig(
            anomaly_z=self.rca_anomaly_z,
            max_lag=self.rca_max_lag,
            granger_alpha=self.rca_granger_alpha,
            change_window_s=self.rca_change_window_s,
            top=self.rca_top,
            pre_onset_s=self.rca_pre_onset_s,
        )
