"""What every process of the load benchmark shares: constants and goals, the report lines children
send the orchestrator, and what Linux tells about a process (/proc)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import resource
import signal
import socket
import sys
import time
from typing import Any

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPOSITORY = os.path.dirname(BENCH_DIR)
SCRIPT = os.path.join(BENCH_DIR, "stratum_load.py")  # every child runs it again with its --role
HOST = "127.0.0.1"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux asm-generic value
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
HRP = {"bitcoin": "bc", "litecoin": "ltc"}
BENCH_DIFFICULTY = 1e-12
LATENCY_BUCKETS_PER_E = 200  # histogram resolution: 0.5 % per bucket
GOAL_SHA256D_PER_S = 40_000
GOAL_BROADCAST_MS = 100.0
GOAL_BROADCAST_CONNECTIONS = 10_000
GOAL_RSS_PER_CONN_KB = 4.0
GOAL_SCRYPT_RATIO = 0.8


def log(message: str) -> None:
    print(f"[stratum_load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(event: str, **fields: Any) -> None:
    """A child's report line to the orchestrator (stdout is reserved for these)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def die_with_parent() -> None:
    """Linux: get SIGTERM when the orchestrator dies, so no child outlives a crashed run."""
    parent = os.getppid()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pool_address(coin: str) -> str:
    from share_validator.bitcoin.address import bech32_encode_segwit

    return bech32_encode_segwit(HRP[coin], 0, bytes(20))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def user_system_seconds(pid: int) -> tuple[float, float]:
    """(user, kernel) CPU seconds of a process and its threads, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def schedstat(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) summed over the process's threads."""
    on_cpu = waiting = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                fields = handle.read().split()
            on_cpu += int(fields[0])
            waiting += int(fields[1])
    return on_cpu / 1e9, waiting / 1e9


def child_pids(pid: int) -> list[int]:
    """The processes a process started (Linux /proc/PID/task/*/children), e.g. the pool's ledger writer."""
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                children.extend(int(value) for value in handle.read().split())
    return children


def machine_busy_cores_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_event_loop(coro, use_uvloop: bool):
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log("uvloop is not installed: using the default asyncio loop")
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)

