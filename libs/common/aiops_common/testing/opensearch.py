"""Start osmem-server (the ``osmem-server`` wheel's in-memory OpenSearch-compatible server) on a free port."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from aiops_common.testing.servers import ExternalServer

__all__ = ["OsmemServer"]


class OsmemServer(ExternalServer):
    """osmem-server on 127.0.0.1: an Elasticsearch/OpenSearch REST API kept in memory, gone when stopped."""

    binary_names = ("osmem-server",)
    ready_path = "/"

    @classmethod
    def binary(cls) -> str | None:
        # The wheel (a dev dependency) ships the Go binary as a package file and puts nothing on PATH;
        # only the file is needed, not the wheel's Python launcher.
        try:
            bundled = Path(
                str(importlib.metadata.distribution("osmem-server").locate_file("osmem_server/bin/osmem-server"))
            )
        except importlib.metadata.PackageNotFoundError:
            return super().binary()
        return str(bundled) if bundled.is_file() else super().binary()

    def args(self, binary: str) -> list[str]:
        # Stdin may be closed (CI runs without one): rely on the parent-pid watch instead of the stdin watch.
        return [
            binary,
            "--addr",
            f"127.0.0.1:{self.port}",
            "--no-ja",
            "--no-stdin-watch",
            "--parent-pid",
            str(os.getpid()),
        ]
