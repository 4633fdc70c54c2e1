"""Start Debian's Prometheus, Alertmanager and node exporter as real processes on free ports."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from aiops_common.broker.addresses import free_port
from aiops_common.process import stop_process
from aiops_common.testing.eventually import scaled

__all__ = ["AlertmanagerServer", "ExternalServer", "NodeExporter", "PrometheusServer"]


class ExternalServer:
    """A server binary run in a work folder until stopped; ready once ``ready_path`` answers 200."""

    binary_names: tuple[str, ...] = ()
    ready_path = "/-/ready"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{type(self).__name__.lower()}.log"

    @classmethod
    def binary(cls) -> str | None:
        for name in cls.binary_names:
            path = shutil.which(name)
            if path:
                return path
        return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def args(self, binary: str) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 60.0) -> None:
        binary = self.binary()
        if binary is None:
            raise FileNotFoundError(f"none of {self.binary_names} is installed")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args(binary), stdout=log, stderr=log, cwd=self.workdir)
        timeout_s = scaled(timeout_s)  # a loaded machine starts servers slowly too
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{binary} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{binary} not ready within {timeout_s}s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, 15)

    def __enter__(self) -> ExternalServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class PrometheusServer(ExternalServer):
    """Prometheus with the remote-write receiver enabled and the given scrape/remote_write config."""

    binary_names = ("prometheus",)

    def __init__(self, workdir: Path, config: dict[str, Any] | None = None) -> None:
        super().__init__(workdir)
        self.config = config if config is not None else {"global": {"scrape_interval": "15s"}}

    def args(self, binary: str) -> list[str]:
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config))
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]


class AlertmanagerServer(ExternalServer):
    """Alertmanager with the given configuration (routes, receivers)."""

    binary_names = ("prometheus-alertmanager", "alertmanager")

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        super().__init__(workdir)
        self.config = config

    def args(self, binary: str) -> list[str]:
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config))
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # a single node: no gossip port
            "--log.level=warn",
        ]


class NodeExporter(ExternalServer):
    binary_names = ("prometheus-node-exporter", "node_exporter")
    ready_path = "/metrics"

    def args(self, binary: str) -> list[str]:
        return [binary, f"--web.listen-address=127.0.0.1:{self.port}"]
