"""Free TCP ports on the loopback interface, for the servers the pool and its tests start."""
from __future__ import annotations

import socket


def free_loopback_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that are free right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    return free_loopback_ports(1)[0]
