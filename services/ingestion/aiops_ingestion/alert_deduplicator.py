"""Agent: pass each alert delivery on once per (fingerprint, status, episode).

Alertmanager re-sends firing alerts every ``repeat_interval`` and several
Alertmanager replicas send the same alert; downstream wants each firing and each
resolve exactly once. The set of deliveries already seen is a Faust table, so it
survives a worker restart (rebuilt from its changelog).
"""

from __future__ import annotations

import time

import faust
from aiops_common.agent_loop import install_agent
from aiops_common.schemas import AlertRecord
from aiops_common.topics import Topics, declare

__all__ = ["install_alert_deduplicator"]


def install_alert_deduplicator(app: faust.App, prefix: str, ttl_s: float) -> None:
    received = declare(app, Topics.ALERTS_RECEIVED, prefix)
    deduplicated = declare(app, Topics.ALERTS_RAW, prefix)
    seen = app.Table(
        "alert-deliveries-seen",
        key_type=str,
        value_type=float,
        partitions=Topics.ALERTS_RECEIVED.partitions,
        help="dedup key -> first time it was seen (epoch seconds)",
    )

    async def pass_on_first(alert: AlertRecord) -> int:
        key = alert.dedup_key
        if key in seen:
            return 0
        # Send before recording: a crash in between re-sends (at-least-once), never loses.
        await deduplicated.send(key=alert.fingerprint.encode(), value=alert.encode())
        seen[key] = time.time()
        return 1

    install_agent(app, received, "alert_deduplicator", AlertRecord.decode, pass_on_first)

    @app.timer(interval=max(ttl_s / 10, 1.0), name="alert_deduplicator_expiry")  # type: ignore[untyped-decorator]  # faust leaves it unannotated
    async def expire() -> None:
        cutoff = time.time() - ttl_s
        for key in [k for k, first_seen in seen.items() if first_seen < cutoff]:
            del seen[key]
