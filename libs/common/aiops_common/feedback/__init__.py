"""The feedback store: operator labels and what they move, one protocol, one implementation per URL scheme.

>>> FEEDBACK_BACKENDS.schemes
['elasticsearch', 'elasticsearchs', 'sqlite']
"""

from __future__ import annotations

from aiops_common.feedback._protocol import FeedbackStore, Sensitivity, StoredLabel
from aiops_common.registry import BackendRegistry

__all__ = ["FEEDBACK_BACKENDS", "FeedbackStore", "Sensitivity", "StoredLabel", "open_feedback_store"]

FEEDBACK_BACKENDS: BackendRegistry[FeedbackStore] = BackendRegistry("feedback store")
FEEDBACK_BACKENDS.register("sqlite", "aiops_common.feedback.sqlite:SqliteFeedbackStore")
# The document store's schemes: one Elasticsearch (or OpenSearch) cluster can hold both, under other prefixes.
FEEDBACK_BACKENDS.register("elasticsearch", "aiops_common.feedback.elasticsearch:ElasticsearchFeedbackStore")
FEEDBACK_BACKENDS.register("elasticsearchs", "aiops_common.feedback.elasticsearch:ElasticsearchFeedbackStore")


def open_feedback_store(url: str) -> FeedbackStore:
    """The store a URL names, e.g. ``sqlite:///.aiops/feedback.sqlite`` or ``elasticsearch://es:9200/aiops-feedback``
    (one Elasticsearch shared by every pod)."""
    return FEEDBACK_BACKENDS.by_url(url)
