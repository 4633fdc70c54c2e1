"""Timer: pick up the operators' detection configuration (``PUT /api/v1/config/detection``) while the worker runs.

Every ``detect_config_poll_s`` (and at start) each worker reads the newest version of the
``detection`` configuration from the document store's ``config`` collection; every
replica reads it itself, so no consumer group is involved. A new version is resolved
once into an :class:`ActiveConfig` and published by replacing one reference, as
``model_updates`` does for trained models: each anomaly partition
(``anomaly_detector.AnomalyPartition``) applies it at the start of its next batch (the
cascades' gates and severity levels, static limits), to the series it holds and to those
it meets later, keeping what they learned. Sensitivity overrides are added to what
feedback learned where findings are judged (:meth:`ActiveConfig.sensitivities`). A store
that cannot be read keeps the version in use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import faust
import structlog
from aiops_common.documents import DocumentStore
from aiops_common.documents.config_versions import newest_detection_config
from aiops_common.feedback import Sensitivity
from aiops_common.observability import LogRateLimit
from aiops_common.schemas.config import DetectionConfig, SensitivityOverride
from prometheus_client import Gauge

from aiops_detection.detectors.sensitivity import with_override
from aiops_detection.detectors.series_detectors import Tuning, service_of
from aiops_detection.service_settings import DetectionServiceSettings

__all__ = [
    "CONFIG_VERSION",
    "ActiveConfig",
    "ConfigBook",
    "install",
    "labels_of_key",
]

log = structlog.get_logger(__name__)

CONFIG_VERSION = Gauge(
    "aiops_detect_config_version", "Version of the operators' detection configuration in use (0: none set)"
)

_log_limit = LogRateLimit(60.0)


class ActiveConfig:
    """One configuration version resolved against the service's settings: per series, what applies to it."""

    def __init__(self, version: int, config: DetectionConfig, settings: DetectionServiceSettings) -> None:
        self.version = version
        self.config = config
        self._settings = settings
        self._flag = settings.detect_flag_score if config.flag_score is None else config.flag_score
        self._confirm = settings.detect_confirm_score if config.confirm_score is None else config.confirm_score
        self._severities = settings.detect_severities if config.severities is None else config.severities
        self._rules = {(r.metric, r.service): (r.lower, r.upper) for r in config.static_rules}
        self._by_series = {o.series_key: o for o in config.sensitivity if o.series_key}
        self._by_service = {o.service: o for o in config.sensitivity if o.service}
        self._tunings: dict[tuple[str, str], Tuning] = {}

    def tuning(self, name: str, service: str) -> Tuning:
        """A series' tuning: a rule for its metric and service, else for its metric, else the settings' limits.

        Series of one metric and service share one (resolved once per version)."""
        found = self._tunings.get((name, service))
        if found is None:
            static = self._rules.get((name, service)) if service else None
            if static is None:
                static = self._rules.get((name, ""), self._settings.detect_static_thresholds.get(name))
            found = self._tunings[name, service] = Tuning(self._flag, self._confirm, self._severities, static)
        return found

    @property
    def overrides_sensitivity(self) -> bool:
        return bool(self._by_series or self._by_service)

    def override(self, series_key: str) -> SensitivityOverride | None:
        """The series' own override, else its service's."""
        own = self._by_series.get(series_key)
        if own is not None or not self._by_service:
            return own
        return self._by_service.get(service_of(labels_of_key(series_key)))

    def sensitivities(self, learned: Mapping[str, Sensitivity]) -> dict[str, Sensitivity]:
        """What feedback learned per series with the operators' override on top (``with_override``)."""
        if not self.overrides_sensitivity:
            return dict(learned)
        out: dict[str, Sensitivity] = {}
        for key, sensitivity in learned.items():
            override = self.override(key)
            out[key] = (
                sensitivity if override is None else with_override(sensitivity, override.slack, override.min_score)
            )
        return out


_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r"\\(.)")


def labels_of_key(series_key: str) -> dict[str, str]:
    """The labels of a series key (``series_key``'s output), escapes undone.

    >>> labels_of_key('up{job="a\\\\"b",service="api"}')
    {'job': 'a"b', 'service': 'api'}
    """
    inner = series_key[series_key.find("{") + 1 : series_key.rfind("}")] if "{" in series_key else ""
    return {
        m.group(1): _UNESCAPE.sub(lambda e: "\n" if e.group(1) == "n" else e.group(1), m.group(2))
        for m in _LABEL.finditer(inner)
    }


class ConfigBook:
    """The configuration in use, replaced whole when a new version is read."""

    def __init__(self, store: DocumentStore, settings: DetectionServiceSettings) -> None:
        self.store = store
        self.settings = settings
        self.current = ActiveConfig(0, DetectionConfig(), settings)
        """Replaced, never mutated: a partition holding it sees one consistent version."""
        CONFIG_VERSION.set(0)

    async def poll(self) -> ActiveConfig | None:
        """Read the newest version; the new configuration when it changed, else None. Failures are logged."""
        try:
            newest = await newest_detection_config(self.store)
        except Exception as exc:  # the store is down or a version is unreadable: keep detecting as configured
            held = _log_limit("config")
            if held is not None:
                log.warning(
                    "detection configuration not read; the version in use is kept",
                    version=self.current.version,
                    error=f"{type(exc).__name__}: {exc}",
                    failures_since_last_log=held,
                )
            return None
        version = 0 if newest is None else newest.version
        if version == self.current.version:
            return None
        config = DetectionConfig() if newest is None else newest.config
        self.current = ActiveConfig(version, config, self.settings)
        CONFIG_VERSION.set(version)
        log.info(
            "detection configuration applied",
            version=version,
            by=None if newest is None else newest.by,
            static_rules=len(config.static_rules),
            sensitivity_overrides=len(config.sensitivity),
        )
        return self.current


def install(app: faust.App, settings: DetectionServiceSettings, store: DocumentStore) -> ConfigBook:
    book = ConfigBook(store, settings)

    async def poll() -> None:
        await book.poll()

    app.task(poll)
    app.timer(settings.detect_config_poll_s, name="detection_config_updates")(poll)
    return book
