"""Versioned runtime configuration in the document store's ``config`` collection: one document per version.

Versions are numbered without gaps (each is written only if its id ``KIND.vN`` is new), so the newest is found
from the newest by time by probing the ids after it: a writer whose clock is behind cannot hide a later version.
"""

from __future__ import annotations

from aiops_common.documents._protocol import DocumentFilter, DocumentStore
from aiops_common.schemas.config import DetectionConfigVersion, config_doc_id

__all__ = ["CONFIG_COLLECTION", "DETECTION", "detection_config_version", "newest_detection_config"]

CONFIG_COLLECTION = "config"
DETECTION = "detection"


async def detection_config_version(store: DocumentStore, version: int) -> DetectionConfigVersion | None:
    """Version ``version`` of the detection configuration, or None when there is none (versions start at 1)."""
    if version < 1:
        return None
    found = await store.get(CONFIG_COLLECTION, config_doc_id(DETECTION, version))
    return None if found is None else DetectionConfigVersion.model_validate(found.body)


async def newest_detection_config(store: DocumentStore) -> DetectionConfigVersion | None:
    """The newest version of the detection configuration, or None when none was ever written."""
    page = await store.query(CONFIG_COLLECTION, DocumentFilter(terms=(("kind", DETECTION),)), limit=1)
    if not page.documents:
        return None
    newest = DetectionConfigVersion.model_validate(page.documents[0].body)
    while (later := await detection_config_version(store, newest.version + 1)) is not None:
        newest = later
    return newest
