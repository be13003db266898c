"""Start and drive a throw-away ``redis-server``, for tests and ``pool devnet``.

The server binds 127.0.0.1 on a port picked at start (kept across `restart`), works in a temporary
directory and persists nothing (``--save ''``, no append-only file): a restart comes back empty, as
after a crash of a cache. It runs in its own process group in the foreground, so `stop` can SIGTERM it,
wait, and kill it if needed.

    with RedisServer() as server:
        stats = RedisStats.from_url(server.url, pool="ltc")
        server.kill()        # SIGKILL: clients see connection refused
        server.restart()     # same port, empty
        server.freeze()      # SIGSTOP: clients see timeouts; thaw() resumes it
        server.flushall()

`command` speaks just enough RESP for these helpers, so this module needs no Redis client library.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from pool.localnet import free_loopback_port

INSTALL_HINT = (
    "redis-server was not found on PATH. Install it, e.g. `apt-get update && apt-get install -y "
    "redis-server` on Debian/Ubuntu, or point the REDIS_SERVER environment variable at the binary."
)


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the process that started it dies, so a test run
    killed hard leaves no server behind. Elsewhere nothing happens."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RedisServerError(RuntimeError):
    """The server could not be started or did not answer as expected."""


class RedisServerNotFound(RedisServerError):
    """No redis-server binary; the message says how to install one."""


def find_redis_server(binary: str | os.PathLike[str] | None = None) -> str:
    """The redis-server to run: `binary`, else $REDIS_SERVER, else ``redis-server`` on PATH."""
    candidate = str(binary) if binary else os.environ.get("REDIS_SERVER") or "redis-server"
    found = shutil.which(candidate)
    if found is None:
        raise RedisServerNotFound(f"{INSTALL_HINT} (looked for {candidate!r})")
    return found


def command(port: int, *args: str | bytes | float, host: str = "127.0.0.1",
            timeout: float = 5.0) -> Any:
    """Send one command and return its decoded reply (``-ERR`` replies raise `RedisServerError`)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(parts))
        reader = sock.makefile("rb")
        return _read_reply(reader)


def _read_reply(reader: IO[bytes]) -> Any:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise RedisServerError(f"connection closed mid-reply: {line!r}")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisServerError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        length = int(body)
        if length < 0:
            return None
        data = reader.read(length + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(reader) for _ in range(count)]
    raise RedisServerError(f"unexpected reply {line!r}")


class RedisServer:
    """One ``redis-server`` on 127.0.0.1 with no persistence, in a temporary directory."""

    def __init__(
        self,
        *,
        port: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        extra_args: list[str] | tuple[str, ...] = (),
    ) -> None:
        self._binary = binary
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = list(extra_args)
        self.base_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._frozen = False

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedisServerError("not started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start the server (on the same port as before, after `stop` or `kill`) and wait for PING."""
        if self.running:
            raise RedisServerError("already running")
        binary = find_redis_server(self._binary)
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="quarry-redis-"))
            atexit.register(self.stop)
        if self.port is None:
            self.port = free_loopback_port()
        self._output = open(self.base_dir / "redis.log", "ab")  # noqa: SIM115 - open until stop()
        command_line = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.base_dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            command_line,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self._frozen = False
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with code {self.process.returncode}\n{self.log_tail()}"
                )
            try:
                if self.ping():
                    return self
            except (OSError, RedisServerError):
                pass
            if time.monotonic() > deadline:
                self._terminate(kill=True)
                raise RedisServerError(f"redis-server did not answer on port {self.port}\n{self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after `stop_timeout`) and remove the directory. Idempotent."""
        self._terminate(kill=False)
        if self.base_dir is not None:
            atexit.unregister(self.stop)
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def kill(self) -> None:
        """SIGKILL, as a crash would; the port and directory stay for `start` or `restart`."""
        self._terminate(kill=True)

    def restart(self) -> Self:
        """Kill if running, then start again on the same port (empty: nothing is persisted)."""
        self._terminate(kill=True)
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP: the server holds connections but answers nothing (a slow or hung Redis)."""
        if self.running and not self._frozen:
            os.killpg(self.process.pid, signal.SIGSTOP)
            self._frozen = True

    def thaw(self) -> None:
        """SIGCONT after `freeze`."""
        if self.running and self._frozen:
            os.killpg(self.process.pid, signal.SIGCONT)
            self._frozen = False

    def _terminate(self, *, kill: bool) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            if self._frozen:
                os.killpg(process.pid, signal.SIGCONT)
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._frozen = False
        self.process = None
        if self._output is not None:
            self._output.close()
            self._output = None

    # -- commands ----------------------------------------------------------------------------------

    def command(self, *args: str | bytes | float, timeout: float = 5.0) -> Any:
        if self.port is None:
            raise RedisServerError("not started")
        return command(self.port, *args, timeout=timeout)

    def ping(self) -> bool:
        return self.command("PING", timeout=1.0) == "PONG"

    def flushall(self) -> None:
        """Delete every key (what an operator's FLUSHALL or a restart without persistence does)."""
        self.command("FLUSHALL")

    def log_tail(self, lines: int = 30) -> str:
        if self.base_dir is None:
            return ""
        try:
            text = (self.base_dir / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])
