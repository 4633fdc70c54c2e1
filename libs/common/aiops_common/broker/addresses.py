"""Broker URLs (``kafka://host:port;host2:port``) and loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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
