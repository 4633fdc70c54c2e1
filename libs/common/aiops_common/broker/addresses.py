"""Broker URLs (``kafka://host:port;host2:port``) and loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["bootstrap_servers", "broker_accepts_connections", "free_port", "port_is_free"]


def bootstrap_servers(url: str) -> list[str]:
    """``kafka://a:9092;b:9092`` -> ``["a:9092", "b:9092"]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("kafka", "aiokafka"):
        raise ValueError(f"broker URL must start with kafka://, got {url!r}")
    hosts = [h.strip() for h in parts.netloc.replace(",", ";").split(";") if h.strip()]
    if not hosts:
        raise ValueError(f"broker URL {url!r} names no host")
    return [h if ":" in h else f"{h}:9092" for h in hosts]


_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LISTEN_FLOOR = 20000


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port a server can listen on now, for one that starts a moment later.

    Taken below the kernel's ephemeral range: a port from that range (what binding port 0 gives) can be taken
    meanwhile as the source port of any outgoing connection (a Kafka client's, an HTTP client's), and the server
    then fails with "address already in use". Random within the range, so processes picking at once rarely
    meet; checked free before it is returned.
    """
    top = _ephemeral_start() - 1
    if top - _LISTEN_FLOOR >= 1000:
        for _ in range(200):
            port = random.randint(_LISTEN_FLOOR, top)
            if port_is_free(port, host) and _not_listening(port, host):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _not_listening(port: int, host: str) -> bool:
    """No server answers there (a listener with SO_REUSEPORT would let a bind through)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) != 0


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on the port now (TIME_WAIT leftovers do not count, as for servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


async def broker_accepts_connections(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a bootstrap server of ``url`` accepts a TCP connection within ``timeout_s`` (a readiness check)."""
    for server in bootstrap_servers(url):
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout_s)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False
