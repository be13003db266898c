"""The pool's own listening ports, checked before anything starts.

A port already taken (another pool still running on it, or any other process) is reported once, by
`check_ports_free`, and ``pool run`` exits non-zero instead of starting half a pool whose API process
would fail to bind again and again.
"""
from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

from pool.config import PoolConfig


class PortTaken(Exception):
    """A listening address of the pool is in use."""


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def listening_addresses(config: PoolConfig) -> Iterator[tuple[str, str, int]]:
    """(what, host, port) of every address ``pool run`` listens on, ports picked by the system (0) left out."""
    for number, port in enumerate(config.stratum.ports):
        if port.port:
            yield f"stratum.ports[{number}]", port.host, port.port
    api = config.api
    if api.enabled and api.port:
        yield "api.port", api.host, api.port
    if api.metrics_listen:
        yield "api.metrics_listen", *_host_port(api.metrics_listen)
    if config.work.notify_listen:
        yield "work.notify_listen", *_host_port(config.work.notify_listen)


def address_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` as a server does (SO_REUSEADDR) fails because it is in use."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # the real bind reports it
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return True
    return False


def check_ports_free(config: PoolConfig) -> None:
    """Raise `PortTaken` naming the first of the pool's listening addresses that is in use."""
    for what, host, port in listening_addresses(config):
        if address_in_use(host, port):
            raise PortTaken(port_taken_message(what, host, port))


def port_taken_message(what: str, host: str, port: int) -> str:
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (f"cannot listen on {shown} ({what}): address already in use (another pool, or a process it left "
            f"behind, may hold it); not starting")
