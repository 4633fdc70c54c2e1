"""The Faust app factory: every service's agents run on an app built here."""

from __future__ import annotations

from pathlib import Path

import faust

from aiops_common.broker.addresses import bootstrap_servers
from aiops_common.faust_transport import Transport
from aiops_common.settings import CommonSettings

__all__ = ["checkpoint_store", "create_app"]


class _App(faust.App):
    """A Faust app on :class:`~aiops_common.faust_transport.Transport`, with the settings' fetch wait."""

    fetch_max_wait_ms = 1500
    checkpoint_store_url = "disk://"

    def _new_transport(self) -> Transport:
        transport = Transport(self.conf.broker_consumer, self)
        transport.fetch_max_wait_ms = self.fetch_max_wait_ms
        return transport


def create_app(service: str, settings: CommonSettings, broker_url: str | None = None) -> faust.App:
    """A Faust app for ``service`` on the configured (or given) broker.

    Table state is rebuilt from its changelog topic on start, which is what lets a
    worker killed with SIGKILL come back with its windows: the app's tables live in
    memory, the replaying stages' checkpoint tables in the store
    ``settings.checkpoint_store_url`` names (:func:`checkpoint_store`).
    The app id carries the topic prefix, so consumer groups and changelog topics
    of separate installations (or tests) sharing a broker never collide.
    """
    url = broker_url or settings.require_broker_url()
    servers = ";".join(bootstrap_servers(url))
    app_id = f"{settings.topic_prefix}aiops-{service}".replace("/", "-")
    datadir = Path(settings.data_dir) / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = _App(
        app_id,
        broker=f"kafka://{servers}",
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_replication_factor=1,
        topic_allow_declare=True,
        topic_disable_leader=True,
        producer_acks=-1 if settings.producer_acks == "all" else 1,
        producer_max_request_size=32 * 1024 * 1024,
        consumer_max_fetch_size=32 * 1024 * 1024,
        broker_session_timeout=settings.consumer_session_timeout_s,
        broker_heartbeat_interval=max(settings.consumer_session_timeout_s / 6, 0.5),
        broker_rebalance_timeout=max(settings.consumer_session_timeout_s * 2, 10.0),
        broker_commit_every=100,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        autodiscover=False,
    )
    app.fetch_max_wait_ms = settings.consumer_fetch_wait_ms
    app.checkpoint_store_url = settings.checkpoint_store_url
    return app


def checkpoint_store(app: faust.App) -> str:
    """The table store URL for ``app``'s checkpoint tables: the setting on an app made here, else the app's own.

    ``disk://`` names the app's table folder: Faust takes a URL without a path for no URL at all (it falls back to
    the app's store), so the folder goes into the path.
    """
    if not isinstance(app, _App):
        return str(app.conf.store)
    if app.checkpoint_store_url == "disk://":
        return f"disk://{Path(app.conf.tabledir).resolve()}"
    return app.checkpoint_store_url
