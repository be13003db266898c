"""The embedded PostgreSQL left running by a ``pool run`` that died (SIGKILL, the OOM killer).

The postmaster runs in its own session, so it outlives a pool killed with SIGKILL, and PostgreSQL
allows one server per data directory: the next ``pool run`` could not start its own.  Which pool
owns ``<data_dir>/postgres`` is told by an exclusive ``flock`` on ``<data_dir>/pool.lock``, held by
``pool run`` for its whole life (and by a one-off command that starts its own server there, both
through ``open_database``) and released by the kernel however the process ends (the postmaster
and the ledger writer do not inherit it).  A second ``pool run`` on a live pool's data directory
fails to take it and refuses to start; a pool that takes it and finds a server still running there
knows that server's pool is dead, and stops it before starting its own.

Stopping rather than adopting: the dead pool's ledger writer may still be committing its last
batches for a moment (it exits when its input ends).  A *smart* shutdown (SIGTERM) refuses new
connections but lets those sessions finish, so nothing the writer commits is cut off; only if they
have not ended after ``smart_timeout_s`` does a fast shutdown (SIGINT) roll back what is left.  The
new pool then starts a server it owns like any other start (its port, its stop at exit), instead of
depending on a process it did not start.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

_held: dict[Path, IO[bytes]] = {}


class DataDirInUse(RuntimeError):
    """Another live ``pool run`` uses this data directory."""


def lock_data_dir(data_dir: str | os.PathLike[str]) -> None:
    """Take ``<data_dir>/pool.lock`` for the life of this process; DataDirInUse when a live pool holds it."""
    path = Path(data_dir).resolve() / "pool.lock"
    if path in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(f"another pool run uses the data directory {path.parent} (or a one-off command "
                           f"running its own server there; it holds {path})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    _held[path] = handle


def _postmaster(data_dir: Path) -> int | None:
    """The PID of a live postmaster of ``data_dir`` (from its postmaster.pid), else None."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None   # gone (a stale postmaster.pid, which PostgreSQL itself handles)
    return pid if b"postgres" in cmdline else None


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return not Path(f"/proc/{pid}").exists()


def stop_orphaned_server(base_dir: str | os.PathLike[str], *, smart_timeout_s: float = 20.0,
                         fast_timeout_s: float = 20.0) -> bool:
    """Stop the server a dead pool left running in ``base_dir`` (``data/`` inside); True if there was one.
    Call only while holding the data directory's lock (``lock_data_dir``)."""
    data_dir = Path(base_dir).resolve() / "data"
    pid = _postmaster(data_dir)
    if pid is None:
        return False
    logger.warning("the embedded PostgreSQL (PID %d) in %s is still running from a pool that died: "
                   "stopping it (its open sessions may finish) and starting a new one", pid, data_dir)
    for sig, timeout_s in ((signal.SIGTERM, smart_timeout_s), (signal.SIGINT, fast_timeout_s),
                           (signal.SIGQUIT, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        if _wait_gone(pid, timeout_s):
            return True
        logger.warning("the embedded PostgreSQL (PID %d) did not stop on %s", pid, signal.Signals(sig).name)
    return True
