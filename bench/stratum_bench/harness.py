"""The orchestrator's hold on its children: processes with JSON report lines, the pool's counters, the
native scrypt rate and py-spy."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Self

from bench.stratum_bench.common import REPOSITORY, SCRIPT, log


class Child:
    """A child process with JSON report lines on stdout (read by a thread) and commands on stdin."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.lines: queue.Queue = queue.Queue()
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=REPOSITORY,
        )
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            try:
                message = json.loads(line)
            except ValueError:
                sys.stderr.write(f"[{self.name}] {line}")
                continue
            self.lines.put(message)
        self.lines.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no {event!r} within {timeout:g}s")
            try:
                message = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if message is None:
                raise RuntimeError(f"{self.name} exited (code {self.process.wait()}) before {event!r}")
            if message.get("event") == event:
                return message
            log(f"{self.name}: unexpected {message}")

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop in {grace:g}s: killing it")
                self.process.kill()
                self.process.wait(5)
        with contextlib.suppress(Exception):
            self.process.stdin.close()  # type: ignore[union-attr]


class Children:
    """Every child of the run; all are stopped when the block ends, also on errors."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv)
        self.children.append(child)
        return child

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        for child in reversed(self.children):
            child.stop()


class PoolHandle:
    def __init__(self, child: Child, stats_file: str) -> None:
        self.child = child
        self.stats_file = stats_file
        self.pid = child.pid
        self._seq = 0

    def stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask the pool for its counters (SIGUSR1) and wait for the fresh snapshot."""
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                with open(self.stats_file) as handle:
                    snapshot = json.load(handle)
                if snapshot["seq"] > self._seq:
                    self._seq = snapshot["seq"]
                    return snapshot
            if not self.child.alive():
                raise RuntimeError(f"the pool exited with code {self.child.process.poll()}")
            time.sleep(0.01)
        raise TimeoutError("the pool did not write its stats")


def start_pool(
    children: Children, args: argparse.Namespace, daemon_url: str, name: str, workdir: str, cprofile: str = ""
) -> tuple[PoolHandle, int]:
    stats_file = os.path.join(workdir, f"{name}-stats.json")
    argv = [
        sys.executable,
        SCRIPT,
        "--role",
        "pool",
        "--coin",
        args.coin,
        "--daemon-url",
        daemon_url,
        "--stats-file",
        stats_file,
        "--max-seconds",
        str(args.budget),
        "--pool-log-level",
        args.pool_log_level,
    ]
    if not args.uvloop:
        argv.append("--no-uvloop")
    if cprofile:
        argv += ["--cprofile", cprofile]
    child = children.start(name, argv)
    ready = child.expect("ready", 60)
    pool = PoolHandle(child, stats_file)
    deadline = time.monotonic() + 30
    while True:
        snapshot = pool.stats()
        if snapshot["stats"].get("jobs", 0) >= 1:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: no job from the replay daemon within 30 s")
        time.sleep(0.1)
    log(f"{name} (pid {pool.pid}, {ready['loop']}) listening on port {ready['port']} with a job")
    return pool, ready["port"]


def measure_scrypt_batch(seconds: float, threads: int) -> float:
    """Native scrypt_batch hashes per second, batches of 64 headers, on ``threads`` threads."""
    from share_validator import hashing

    headers = [os.urandom(80) for _ in range(64)]
    stop_at = time.perf_counter() + seconds
    counts = [0] * threads

    def work(slot: int) -> None:
        while time.perf_counter() < stop_at:
            hashing.scrypt_batch(headers)
            counts[slot] += 64

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def start_py_spy(args: argparse.Namespace, pid: int, output: str, seconds: float) -> subprocess.Popen | None:
    """py-spy record of the pool (only when asked for; py-spy is not a pool dependency)."""
    if not output:
        return None
    spy_bin = (
        args.py_spy_bin or shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    )
    argv = [
        spy_bin,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(args.py_spy_rate),
        "--format",
        args.py_spy_format,
        "--output",
        output,
    ]
    # --native must pause the process for each sample (slower run); otherwise sample without stopping it
    argv.append("--native" if args.py_spy_native else "--nonblocking")
    try:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        log(f"cannot start py-spy ({exc}); install it with pip into another virtualenv and pass --py-spy-bin")
        return None


def finish_py_spy(spy: subprocess.Popen | None, output: str) -> None:
    if spy is None:
        return
    try:
        _, errors = spy.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
        log("py-spy did not finish: killed")
        return
    if spy.returncode:
        log(f"py-spy failed: {errors.decode(errors='replace').strip()[:500]}")
    else:
        log(f"py-spy profile of the pool written to {output}")

