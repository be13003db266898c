"""The idle connections (``--role idle``): many authorized connections on plain sockets, for the pool's
memory per connection and how long a new job takes to reach all of them (kernel receive times)."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from bench.stratum_bench.common import (
    HOST, SCM_TIMESTAMPNS, SO_TIMESTAMPNS, die_with_parent, emit, log, pool_address, raise_nofile, schedstat,
)


class IdleClient:
    """Many idle authorized connections on plain sockets; notify receipt times from the kernel."""

    def __init__(self, port: int, count: int, coin: str, pool_pid: int) -> None:
        self.pool_pid = pool_pid
        self.port = port
        self.count = count
        self.address = pool_address(coin)
        self.epoll = select.epoll()
        self.sockets: dict[int, socket.socket] = {}
        self.buffers: dict[int, bytes] = {}
        self.cmsg_size = socket.CMSG_SPACE(16)

    def connect_all(self) -> None:
        started = time.monotonic()
        for start in range(0, self.count, 500):
            waiting: set[int] = set()
            for index in range(start, min(start + 500, self.count)):
                sock = socket.create_connection((HOST, self.port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                sock.sendall(
                    b'{"id":1,"method":"mining.subscribe","params":["quarry-bench-idle/1.0"]}\n'
                    b'{"id":2,"method":"mining.authorize","params":["%s.i%d","x"]}\n'
                    % (self.address.encode(), index)
                )
                sock.setblocking(False)
                fd = sock.fileno()
                self.sockets[fd] = sock
                self.buffers[fd] = b""
                self.epoll.register(fd, select.EPOLLIN)
                waiting.add(fd)
            deadline = time.monotonic() + 60
            while waiting:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(waiting)} connections got no job within 60 s")
                for fd, _ in self.epoll.poll(1.0):
                    data = self._read(fd)[0]
                    if fd in waiting and b'"mining.notify"' in data:
                        waiting.discard(fd)
                        self.buffers[fd] = b""
            if (start // 500) % 4 == 3:
                log(f"idle client: {start + 500} connections subscribed and authorized")
        log(f"idle client: {len(self.sockets)} connections ready in {time.monotonic() - started:.1f}s")

    def _read(self, fd: int) -> tuple[bytes, float | None]:
        """Everything waiting on ``fd`` (appended to its buffer) and the last kernel timestamp."""
        sock = self.sockets[fd]
        stamp = None
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(65536, self.cmsg_size)
            except BlockingIOError:
                break
            if not data:
                raise ConnectionError("the pool closed an idle connection")
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(payload) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", payload[:16])
                    stamp = seconds + nanoseconds * 1e-9
            self.buffers[fd] += data
        return self.buffers[fd], stamp

    def drain(self) -> None:
        for fd, _ in self.epoll.poll(0):
            self._read(fd)
        for fd in self.buffers:
            self.buffers[fd] = b""

    def broadcast_round(self, announce_url: str, timeout: float = 20.0) -> dict[str, Any]:
        self.drain()
        pool_before = schedstat(self.pool_pid)
        announced = _post_json(announce_url)
        announced_at = announced["time"]  # the daemon's clock (CLOCK_REALTIME) when the tip moved
        kernel_times: list[float] = []
        user_times: list[float] = []
        waiting = set(self.sockets)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for fd, _ in self.epoll.poll(0.2):
                if fd not in waiting:
                    self._read(fd)
                    continue
                data, stamp = self._read(fd)
                if b'"mining.notify"' in data and b"true]}\n" in data:
                    waiting.discard(fd)
                    user_times.append(time.time())
                    if stamp is not None:
                        kernel_times.append(stamp)
        pool_after = schedstat(self.pool_pid)
        received = len(self.sockets) - len(waiting)
        kernel_ok = (
            len(kernel_times) == received
            and received > 0
            and all(announced_at - 1 < t <= time.time() for t in kernel_times)
        )
        times = kernel_times if kernel_ok else user_times
        if not times:
            return {"received": 0, "connections": len(self.sockets)}
        return {
            "connections": len(self.sockets),
            "received": received,
            "clock": "kernel SO_TIMESTAMPNS" if kernel_ok else "client user space",
            "spread_ms": (max(times) - min(times)) * 1000,
            "tip_to_first_ms": (min(times) - announced_at) * 1000,
            "tip_to_last_ms": (max(times) - announced_at) * 1000,
            "client_processed_last_ms": (max(user_times) - announced_at) * 1000,
            "pool_on_cpu_ms": (pool_after[0] - pool_before[0]) * 1000,
            "pool_runqueue_wait_ms": (pool_after[1] - pool_before[1]) * 1000,
            "height": announced["height"],
        }

    def close(self) -> None:
        for sock in self.sockets.values():
            with contextlib.suppress(OSError):
                sock.close()
        self.epoll.close()


def _post_json(url: str) -> dict[str, Any]:
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/" + path, body=b"{}", headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return json.loads(response.read())
    finally:
        connection.close()


def idle_main(args: argparse.Namespace) -> int:
    die_with_parent()
    raise_nofile(args.connections + 256)
    signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
    signal.alarm(int(args.max_seconds))
    client = IdleClient(args.port, args.connections, args.coin, args.pool_pid)
    try:
        client.connect_all()
        emit("ready", connections=len(client.sockets), pid=os.getpid())
        for command in sys.stdin:
            command = command.strip()
            if command == "round":
                emit("round", **client.broadcast_round(args.announce_url))
            elif command == "quit":
                break
    finally:
        client.close()
    return 0

