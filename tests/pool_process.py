"""A real `pool run` as a child process, for the tests that kill and restart it."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


def start_pool(config: Path, log: Path) -> subprocess.Popen:
    """``pool run -c CONFIG``, its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "pool.cli", "run", "-c", str(config)], stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 90.0) -> None:
    """Until the pool's Stratum port accepts a connection; AssertionError if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"pool run exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("pool run did not open its Stratum port")


def postmaster_pid(data_dir: Path) -> int | None:
    """The PID of the embedded PostgreSQL of the pool data directory ``data_dir``, None without one."""
    try:
        return int((data_dir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
