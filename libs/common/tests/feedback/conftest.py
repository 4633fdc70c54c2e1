"""The feedback store under test on every reachable backend, and further handles on it (a second pod)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiops_common.feedback import FeedbackStore, open_feedback_store
from aiops_common.testing import OsmemServer
from aiops_common.testing.plain_json import PlainJsonNode

OpenPod = Callable[[], FeedbackStore]
"""Another handle on the store under test: what a second pod of the platform opens."""


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.functional),
        pytest.param("osmem", marks=pytest.mark.integration),
        pytest.param("elasticsearch", marks=pytest.mark.integration),
    ]
)
async def open_pod(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    external_server: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[OpenPod]:
    opened: list[FeedbackStore] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'feedback.sqlite'}"

        def open_sqlite() -> FeedbackStore:
            opened.append(open_feedback_store(url))
            return opened[-1]

        yield open_sqlite
        for store in opened:
            await store.close()
        return

    from aiops_common.feedback import elasticsearch

    # Pages of a few hits: every search and multi-get of these small tests spans several requests.
    monkeypatch.setattr(elasticsearch, "_PAGE", 3)
    # A prefix of its own per test: a real Elasticsearch may be shared with other runs.
    prefix = f"t{uuid.uuid4().hex[:12]}-feedback"
    options: dict[str, Any] = {}
    if request.param == "osmem":
        server = external_server(OsmemServer)
        url = f"elasticsearch://127.0.0.1:{server.port}/{prefix}"
        options["node_class"] = PlainJsonNode
    else:
        es_url = os.environ.get("AIOPS_TEST_ES_URL")
        if not es_url:
            pytest.skip("AIOPS_TEST_ES_URL is not set (an Elasticsearch server to test against)")
        scheme = "elasticsearchs" if es_url.startswith("https://") else "elasticsearch"
        url = f"{scheme}://{es_url.partition('://')[2].rstrip('/')}/{prefix}"

    def open_es() -> FeedbackStore:
        opened.append(elasticsearch.ElasticsearchFeedbackStore(url, **options))
        return opened[-1]

    # No periodic refresh: a search sees only what the store itself refreshed, so a write some search depends
    # on that the store leaves unrefreshed fails here instead of now and then on a loaded cluster.
    client = await open_es()._client_ready()  # type: ignore[attr-defined]
    await client.indices.put_settings(index=f"{prefix}-*", settings={"index.refresh_interval": "-1"})
    yield open_es
    dropper = elasticsearch.ElasticsearchFeedbackStore(url, **options)
    await dropper.drop()
    for store in (*opened, dropper):
        await store.close()


@pytest.fixture
def store(open_pod: OpenPod) -> FeedbackStore:
    return open_pod()
