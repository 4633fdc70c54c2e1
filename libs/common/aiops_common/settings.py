"""Settings shared by every service; each service extends ``CommonSettings`` once.

All settings come from ``AIOPS_``-prefixed environment variables (or a ``.env``
file). Nothing else in the code base reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CommonSettings"]


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AIOPS_", env_file=".env", frozen=True, extra="ignore", use_attribute_docstrings=True
    )

    broker_url: str | None = None
    """``kafka://host:port[;host2:port]``; unset means the embedded broker started by ``aiops up``."""
    broker_port: int | None = None
    """Port of the embedded broker; unset picks a free loopback port."""
    topic_prefix: str = ""
    """Prepended to every topic name, so several installations can share one broker."""
    data_dir: Path = Path(".aiops")
    """Folder holding all local state (worker tables, SQLite stores, models)."""
    tsdb_url: str = ""
    """Time-series store the stream writes and training reads: ``sqlite:///path``, ``prometheus://host:port``,
    ``victoriametrics://host:port``; empty means ``sqlite:///<data_dir>/tsdb.sqlite``."""
    feedback_url: str = ""
    """Feedback store (operator labels, the anomalies they name, per-series sensitivity): ``sqlite:///path``,
    ``elasticsearch://host:port[/index-prefix]`` (``elasticsearchs://`` for TLS; one store shared by every replica);
    empty means ``sqlite:///<data_dir>/feedback.sqlite``."""
    documents_url: str = ""
    """Document store (incidents, RCA results, executions, audit, logs): ``sqlite:///path``,
    ``elasticsearch://host:port[/index-prefix]`` (``elasticsearchs://`` for TLS); empty means
    ``sqlite:///<data_dir>/documents.sqlite``."""
    topology_url: str = ""
    """Topology store (services, call edges, changes): ``sqlite:///path``, ``memory://``, ``neo4j://host:port``,
    ``bolt://host:port``; empty means ``sqlite:///<data_dir>/topology.sqlite``."""

    @model_validator(mode="after")
    def _store_urls_under_data_dir(self) -> Self:
        # The defaults depend on another field, so they are filled once it is known; the
        # model is frozen afterwards, hence the object-level set.
        if not self.tsdb_url:
            object.__setattr__(self, "tsdb_url", f"sqlite:///{self.data_dir / 'tsdb.sqlite'}")
        if not self.feedback_url:
            object.__setattr__(self, "feedback_url", f"sqlite:///{self.data_dir / 'feedback.sqlite'}")
        if not self.documents_url:
            object.__setattr__(self, "documents_url", f"sqlite:///{self.data_dir / 'documents.sqlite'}")
        if not self.topology_url:
            object.__setattr__(self, "topology_url", f"sqlite:///{self.data_dir / 'topology.sqlite'}")
        return self

    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    """``auto``: readable lines on a terminal, JSON lines otherwise (containers, files)."""
    producer_acks: Literal["all", "1"] = "all"
    consumer_session_timeout_s: float = 6.0
    """Consumer-group session timeout: a worker that stops heartbeating this long loses its partitions.

    It also sets how long joining a group takes on the embedded broker (about half of it),
    so it is kept short; raise it when agents run long blocking batches.
    """
    consumer_fetch_wait_ms: int = 100
    """Longest a worker's fetch waits at the broker for new records (Faust fixes 1500 ms).

    Kafka answers a waiting fetch as soon as records arrive, so this only sets how often an idle
    consumer asks; the embedded broker answers when the wait ends, so on it every hop between
    agents took up to that long.
    """
    checkpoint_store_url: Literal["disk://", "memory://"] = "disk://"
    """Where a worker keeps the newest entries of its replaying stages' checkpoint tables (windows, detection
    states, incidents): ``disk://``, a SQLite file of its own in the data folder, unlinked while open
    (``aiops_common/table_store.py``), or ``memory://``, Faust's store in the heap. Either way nothing outlives the
    process: the table is rebuilt from its changelog topic on start."""
    publish_timeout_s: float = 10.0
    """How long a publish may wait for the broker's acknowledgement before the request fails."""
    worker_http_host: str = "127.0.0.1"
    """Address the worker's probe server (``/health``, ``/ready``, ``/metrics``) listens on; ``0.0.0.0`` in a pod."""
    worker_http_port: int = 0
    """Port of the worker's probe server; 0 picks a free one, recorded in the run state for ``aiops status``."""
    heap_trim_interval_s: float = 10.0
    """How often a worker hands its C heap's free pages back to the system (glibc ``malloc_trim``, in a thread,
    about 10 ms); 0 turns it off. Without it the freed space between live blocks stays in the process."""
    heap_mmap_threshold_bytes: int = 131_072
    """Blocks this large or larger (window and batch buffers) that no free heap space fits get pages of their own,
    returned when freed; 0 leaves glibc's default, which raises the threshold as large blocks are freed, so they
    grow the heap and fragment it."""
    heap_arena_max: int = 2
    """Most malloc arenas the process's threads share (glibc's default is 8 per core, each keeping its own free
    space); 0 leaves the default."""

    def require_broker_url(self) -> str:
        if not self.broker_url:
            raise RuntimeError("AIOPS_BROKER_URL is not set and no embedded broker is running")
        return self.broker_url

    def advertised_urls(self) -> dict[str, str]:
        """Where this service can be reached, by :class:`~aiops_common.service.Endpoint` value; none by default."""
        return {}
