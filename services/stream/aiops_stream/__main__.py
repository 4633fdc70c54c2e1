"""Run the stream service alone in one Faust worker: ``python -m aiops_stream`` (settings from ``AIOPS_*``)."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import faust
from aiops_common.broker import ensure_topics
from aiops_common.faust_app import create_app
from aiops_common.observability import configure_logging

from aiops_stream.settings import StreamSettings
from aiops_stream.worker import install

__all__ = ["main"]


def main() -> None:
    settings = StreamSettings()
    configure_logging(settings.log_level, settings.log_format)
    broker_url = settings.require_broker_url()
    asyncio.run(ensure_topics(broker_url, settings.topic_prefix))
    app = create_app("stream", settings, broker_url)
    with warnings.catch_warnings():
        # Tansu holds a consumer-group join for half the session timeout (30 s at Faust's default), which is
        # also how long a killed worker's partitions stay orphaned; shorter is better for a single worker.
        warnings.simplefilter("ignore")
        app.conf.broker_session_timeout = settings.stream_group_session_timeout_s
    Path(app.conf.datadir).parent.mkdir(parents=True, exist_ok=True)
    install(app, settings)
    faust.Worker(app, loglevel=settings.log_level, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
