#!/usr/bin/env python3
"""The pool's load benchmark: shares per second, submit latency, job broadcast, memory per connection.

Processes (all on 127.0.0.1, each bounded in time, all stopped by this script even on errors):

* a replay daemon (``bench/replay_daemon.py``) serving a template built from a real mainnet
  block (mainnet bits, so no share is a block);
* the pool (``pool.app.run_pool``, under uvloop like ``pool run``) in its own process, on a
  port with fixed difficulty 1e-12 (every hash is a valid share), vardiff off;
* load generators (asyncio, raw lines over TCP): N connections subscribe and authorize, then
  submit shares with unique extranonce2 -- as fast as the pool answers (``--rate 0``: every
  connection keeps ``--window`` submits in flight) or at a fixed total ``--rate``;
* for the idle phase, a fresh pool and one client holding ``--idle-connections`` idle
  authorized connections (plain non-blocking sockets and epoll).

Figures (one JSON line on stdout at the end; progress on stderr):

* ``accepted_per_s``: accepted answers the load generators received per second of the
  measured window (``pool_accepted_per_s``: the pool's own counter over the same window);
  ``submit_p50_ms`` / ``submit_p99_ms``: send -> answer per share, measured by the load
  generator (a share sent in a burst is stamped with the burst's time);
* ``broadcast_ms``: from the first to the last of the idle connections receiving the new
  clean ``mining.notify`` after the daemon announced a block, using the kernel's receive
  timestamps (SO_TIMESTAMPNS), so the client's own processing does not count; this is how
  long the pool takes to hand one job to every connection.  ``tip_to_last_notify_ms`` adds
  the time from the daemon changing its tip (long poll answer, getblocktemplate, job build);
  median over ``--broadcast-rounds`` announcements, the worst one is reported too;
* ``rss_per_conn_kb``: (pool VmRSS with the idle connections - VmRSS with none) / count;
  ``rss_per_conn_kb_after_broadcasts``: the same after the broadcast rounds (every new block
  adds an entry to each connection's job map until it holds 64);
* what the numbers depend on, since the machine may be shared: ``cpu_cores_used`` (the pool, its
  ledger writer process, the load generators) and
  ``runqueue_wait_per_s`` per process (/proc/PID/task/*/schedstat), ``other_processes_cores``
  (the rest of the machine, /proc/stat), ``pool_cpu_us_per_share``,
  ``pool_capacity_per_core_per_s`` (accepted shares per second of pool CPU: the rate on a free
  core), ``pool_kernel_cpu_fraction`` and the pool's time in the cyclic garbage collector;
* ``ledger_written_per_s`` and ``ledger_backlog_at_end``: shares the ledger stored per second of
  the window and the accepted shares not yet stored at its end (a ledger that falls behind makes the
  pool look faster than it can go for long, and breaks the one-flush-interval loss bound);
* scrypt only: ``scrypt_batch_hs``, the native ``scrypt_batch`` hash rate (batches of 64 on
  one thread, as bench/hashing.py) measured in this run before the pool starts, and the ratio
  ``accepted_vs_scrypt_batch`` (``scrypt_batch_hs_threads`` is the rate on as many threads as
  the pool's batcher uses).

Goals (``goals_met``): sha256d >= 40k accepted shares/s per pool process; new-job broadcast to
10k connections <= 100 ms; <= 4 KB of pool process memory per idle connection; scrypt
accepted/s >= 80 % of the native batch hash rate.  The goal flags only count when the run
used the goal's size (for instance 10k idle connections).

    python bench/stratum_load.py --coin bitcoin [--connections 1000] [--seconds 10] [--rate 0]
                                 [--idle-connections 10000] [--load-procs 1] [--py-spy FILE]
    python bench/stratum_load.py --coin litecoin
    python bench/stratum_load.py --rate 40000 --idle-connections 0   # latency at a fixed offered rate
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import http.client
import json
import logging
import math
import os
import queue
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from typing import Any, Self

try:
    from orjson import loads
except ImportError:  # pragma: no cover - orjson is a pool dependency
    from json import loads

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/payouts.py is named like the payouts package the pool imports: keep this folder off the import path.
sys.path = [entry for entry in sys.path if os.path.abspath(entry or ".") != HERE]
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


# == the pool process ===========================================================================


def pool_config(coin: str, daemon_url: str, log_level: str):
    """The pool as operators run it: shares go to the ledger (an embedded PostgreSQL in a temporary
    data directory) and to in-process statistics."""
    import tempfile

    from pool.config import parse_config

    data_dir = tempfile.mkdtemp(prefix="quarry-bench-")
    return parse_config(
        {
            "pool": {
                "coin": coin,
                "address": pool_address(coin),
                "pool_tag": "/quarry-bench/",
                "log_level": log_level,
                "data_dir": data_dir,
            },
            "daemons": [{"url": daemon_url}],
            "stratum": {
                "ports": [
                    {
                        "port": 0,
                        "host": HOST,
                        "difficulty": BENCH_DIFFICULTY,
                        "min_difficulty": BENCH_DIFFICULTY,
                        "max_difficulty": BENCH_DIFFICULTY,
                        "vardiff": False,
                        "name": "bench",
                    }
                ],
                "handshake_timeout_s": 600.0,
                "idle_timeout_s": 3600.0,
                "max_connections": 1_000_000,
                "max_connections_per_ip": 1_000_000,
            },
            "work": {"template_refresh_s": 3600.0, "poll_interval_s": 0.5, "longpoll": True},
        },
        source="bench/stratum_load.py",
    )


def pool_main(args: argparse.Namespace) -> int:
    """The pool in its own process; SIGUSR1 writes its counters to --stats-file."""
    die_with_parent()
    raise_nofile(1 << 20)
    config = pool_config(args.coin, args.daemon_url, args.pool_log_level)
    logging.basicConfig(
        level=getattr(logging, config.log_level),
        format="[pool] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import gc

    from pool.app import run_pool

    gc_totals = {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]}
    gc_started = [0.0]

    def gc_callback(phase: str, info: dict) -> None:  # the benchmark's instrument, not the pool's
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            generation = info["generation"]
            gc_totals["collections"][generation] += 1
            gc_totals["seconds"][generation] += time.perf_counter() - gc_started[0]

    gc.callbacks.append(gc_callback)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        shutdown = asyncio.Event()
        holder: list = []
        sequence = [0]

        def dump_stats() -> None:
            if not holder:
                return
            running = holder[0]
            server = running.server
            sequence[0] += 1
            snapshot = {
                "seq": sequence[0],
                "monotonic": time.monotonic(),
                "stats": dict(server.stats),
                "sessions": len(server.sessions),
                "recorded": getattr(running.recorder, "shares", None),
                "ledger_written": running.ledger.stats["shares_written"] if running.ledger else None,
                "ledger_backlog": running.ledger.buffered if running.ledger else None,
                "work_healthy": running.work.healthy,
                "job_counter": running.work.job_counter,
                "gc": gc_totals,
            }
            temporary = args.stats_file + ".tmp"
            with open(temporary, "w") as out:
                json.dump(snapshot, out)
            os.replace(temporary, args.stats_file)

        def ready(running) -> None:
            holder.append(running)
            emit("ready", pid=os.getpid(), port=running.server.ports[0], loop=type(loop).__module__)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, shutdown.set)
        loop.add_signal_handler(signal.SIGUSR1, dump_stats)
        loop.call_later(args.max_seconds, shutdown.set)
        try:
            await run_pool(config, shutdown, on_ready=ready)
        finally:
            import shutil

            shutil.rmtree(config.data_dir, ignore_errors=True)

    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            run_event_loop(main(), args.uvloop)
        finally:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
    else:
        run_event_loop(main(), args.uvloop)
    return 0


# == the load generator =========================================================================


class LoadGenerator:
    """Counters and the measurement window shared by one process's connections."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.closed_loop = args.rate <= 0
        self.window = args.window
        self.max_in_flight = args.max_in_flight
        self.sending = False
        self.window_start = math.inf
        self.window_end = math.inf
        self.latencies = array("d")
        self.accepted_in_window = 0
        self.rejected_in_window = 0
        self.accepted_total = 0
        self.rejected_total = 0
        self.reject_codes: dict[str, int] = {}
        self.sent_total = 0
        self.skipped = 0  # open loop: shares not sent because a connection had too many in flight
        self.notifies = 0
        self.ready = 0
        self.lost = 0
        self.all_ready: asyncio.Future | None = None
        self.miners: list[Miner] = []


class Miner(asyncio.Protocol):
    """One connection: handshake, then submits with a unique extranonce2 each."""

    def __init__(self, gen: LoadGenerator, user: str) -> None:
        self.gen = gen
        self.user = user.encode()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.pending: dict[int, float] = {}
        self.next_id = 100
        self.counter = 0
        self.extranonce1 = b""
        self.job_id = b""
        self.ntime = b""
        self.authorized = False
        self.is_ready = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(
            b'{"id":1,"method":"mining.subscribe","params":["quarry-bench/1.0"]}\n'
            b'{"id":2,"method":"mining.authorize","params":["%s","x"]}\n' % self.user
        )

    def connection_lost(self, exc) -> None:
        self.transport = None
        self.gen.lost += 1
        if self.gen.all_ready is not None and not self.gen.all_ready.done() and not self.is_ready:
            self.gen.all_ready.set_exception(ConnectionError(f"connection lost during the handshake: {exc}"))

    def data_received(self, data: bytes) -> None:
        try:
            self._data_received(data)
        except Exception as exc:
            all_ready = self.gen.all_ready
            if all_ready is not None and not all_ready.done():
                all_ready.set_exception(exc)
            raise

    def _data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        gen = self.gen
        buffer = self.buffer + data if self.buffer else data
        lines = buffer.split(b"\n")
        self.buffer = lines.pop()
        answered = 0
        in_window = gen.window_start <= now < gen.window_end
        for line in lines:
            if not line:
                continue
            message = loads(line)
            message_id = message.get("id")
            if message_id is None:
                if message.get("method") == "mining.notify":
                    params = message["params"]
                    self.job_id = params[0].encode()
                    self.ntime = params[7].encode()
                    gen.notifies += 1
                    if self.authorized and not self.is_ready:
                        self._became_ready()
                continue
            if message_id >= 100:
                sent = self.pending.pop(message_id, None)
                if sent is None:
                    continue
                answered += 1
                if message.get("result") is True:
                    gen.accepted_total += 1
                    if in_window:
                        gen.accepted_in_window += 1
                        gen.latencies.append(now - sent)
                else:
                    gen.rejected_total += 1
                    error = message.get("error")
                    key = (
                        f"{error[0]} {error[1]}" if isinstance(error, list) and len(error) > 1 else str(error)
                    )
                    gen.reject_codes[key] = gen.reject_codes.get(key, 0) + 1
                    if in_window:
                        gen.rejected_in_window += 1
                        gen.latencies.append(now - sent)
            elif message_id == 1:
                result = message.get("result")
                if not isinstance(result, list):
                    raise RuntimeError(f"subscribe failed: {message}")
                self.extranonce1 = result[1]
            elif message_id == 2:
                if message.get("result") is not True:
                    raise RuntimeError(f"authorize failed: {message}")
                self.authorized = True
                if self.job_id and not self.is_ready:
                    self._became_ready()
        if answered and gen.closed_loop and gen.sending:
            self.send_shares(answered, now)

    def _became_ready(self) -> None:
        self.is_ready = True
        gen = self.gen
        gen.ready += 1
        if gen.ready == len(gen.miners) and gen.all_ready is not None and not gen.all_ready.done():
            gen.all_ready.set_result(None)

    def send_shares(self, count: int, now: float) -> None:
        transport = self.transport
        if transport is None:
            return
        pending = self.pending
        user, job_id, ntime = self.user, self.job_id, self.ntime
        next_id, counter = self.next_id, self.counter
        lines = []
        for _ in range(count):
            next_id += 1
            counter += 1
            lines.append(
                b'{"id":%d,"method":"mining.submit","params":["%s","%s","%08x","%s","%08x"]}\n'
                % (next_id, user, job_id, counter & 0xFFFFFFFF, ntime, (counter * 2654435761) & 0xFFFFFFFF)
            )
            pending[next_id] = now
        self.next_id, self.counter = next_id, counter
        self.gen.sent_total += count
        transport.write(b"".join(lines))


def latency_histogram(latencies: array) -> dict[int, int]:
    histogram: dict[int, int] = {}
    scale = LATENCY_BUCKETS_PER_E
    for latency in latencies:
        key = round(math.log(max(latency, 1e-7)) * scale)
        histogram[key] = histogram.get(key, 0) + 1
    return histogram


def histogram_percentile(histogram: dict[int, int], fraction: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    rank = fraction * total
    seen = 0
    for key in sorted(histogram):
        seen += histogram[key]
        if seen >= rank:
            return math.exp(key / LATENCY_BUCKETS_PER_E)
    return math.exp(max(histogram) / LATENCY_BUCKETS_PER_E)


def load_main(args: argparse.Namespace) -> int:
    die_with_parent()
    raise_nofile(args.connections + 256)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        gen = LoadGenerator(args)
        gen.all_ready = loop.create_future()
        loop.call_later(args.max_seconds, lambda: os._exit(3))  # hard bound whatever happens
        address = pool_address(args.coin)
        for index in range(args.connections):
            gen.miners.append(Miner(gen, f"{address}.p{args.proc_index}c{index}"))
        # Connect in chunks (the pool's accept backlog is 4096).
        for start in range(0, len(gen.miners), 256):
            chunk = gen.miners[start : start + 256]
            await asyncio.gather(*(loop.create_connection(lambda m=m: m, HOST, args.port) for m in chunk))
        await asyncio.wait_for(gen.all_ready, 120)
        emit("ready", connections=len(gen.miners), pid=os.getpid())
        command = await loop.run_in_executor(None, sys.stdin.readline)
        if not command.startswith("go "):
            raise RuntimeError(f"expected 'go T0', got {command!r}")
        start_at = float(command.split()[1])
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        # time.monotonic and time.perf_counter are both CLOCK_MONOTONIC on Linux.
        begin = time.perf_counter()
        gen.window_start = begin + args.warmup
        gen.window_end = gen.window_start + args.seconds
        gen.sending = True
        miners = gen.miners
        if gen.closed_loop:
            for miner in miners:
                miner.send_shares(gen.window, begin)
            await asyncio.sleep(gen.window_end - time.perf_counter())
        else:
            rate, rotor, sent = args.rate, 0, 0
            count = len(miners)
            while True:
                await asyncio.sleep(args.tick_s)
                now = time.perf_counter()
                if now >= gen.window_end:
                    break
                due = int((now - begin) * rate) - sent
                if due <= 0:
                    continue
                sent += due
                per_miner: dict[int, int] = {}
                for _ in range(due):
                    index = rotor % count
                    rotor += 1
                    per_miner[index] = per_miner.get(index, 0) + 1
                for index, wanted in per_miner.items():
                    miner = miners[index]
                    room = gen.max_in_flight - len(miner.pending)
                    if wanted > room:
                        gen.skipped += wanted - max(room, 0)
                        wanted = room
                    if wanted > 0:
                        miner.send_shares(wanted, now)
        gen.sending = False
        drain_until = time.perf_counter() + 3.0
        while any(m.pending for m in miners) and time.perf_counter() < drain_until:
            await asyncio.sleep(0.05)
        unanswered = sum(len(m.pending) for m in miners)
        lost = gen.lost
        for miner in miners:
            if miner.transport is not None:
                miner.transport.close()
        await asyncio.sleep(0.1)
        emit(
            "result",
            proc_index=args.proc_index,
            connections=len(miners),
            seconds=args.seconds,
            accepted=gen.accepted_in_window,
            rejected=gen.rejected_in_window,
            accepted_total=gen.accepted_total,
            rejected_total=gen.rejected_total,
            reject_reasons=gen.reject_codes,
            sent=gen.sent_total,
            skipped=gen.skipped,
            unanswered=unanswered,
            lost=lost,
            histogram=latency_histogram(gen.latencies),
        )

    run_event_loop(main(), args.uvloop)
    return 0


# == the idle connections (broadcast and memory) ================================================


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


# == the orchestrator ===========================================================================


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
            cwd=os.path.dirname(HERE),
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
        os.path.abspath(__file__),
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


def rate_phase(children: Children, args: argparse.Namespace, daemon_url: str, workdir: str) -> dict[str, Any]:
    pool, port = start_pool(children, args, daemon_url, "pool-rate", workdir, cprofile=args.pool_cprofile)
    procs = max(1, args.load_procs)
    loads = []
    for index in range(procs):
        share = args.connections // procs + (1 if index < args.connections % procs else 0)
        per_proc_rate = args.rate / procs if args.rate > 0 else 0
        argv = [
            sys.executable,
            os.path.abspath(__file__),
            "--role",
            "load",
            "--coin",
            args.coin,
            "--port",
            str(port),
            "--connections",
            str(share),
            "--seconds",
            str(args.seconds),
            "--warmup",
            str(args.warmup),
            "--rate",
            str(per_proc_rate),
            "--window",
            str(args.window),
            "--max-in-flight",
            str(args.max_in_flight),
            "--proc-index",
            str(index),
            "--max-seconds",
            str(args.budget),
        ]
        if not args.uvloop:
            argv.append("--no-uvloop")
        loads.append(children.start(f"load-{index}", argv))
    for load in loads:
        load.expect("ready", 180)
    log(f"{args.connections} connections subscribed and authorized over {procs} load process(es)")
    start_at = time.monotonic() + 0.3
    for load in loads:
        load.send(f"go {start_at}")
    window_start = start_at + args.warmup
    time.sleep(max(0.0, window_start - time.monotonic()))
    before = pool.stats()
    pids = {"pool": pool.pid, **{f"load-{i}": c.pid for i, c in enumerate(loads)}}
    for pid in child_pids(pool.pid):  # the pool's ledger writer process (not the embedded PostgreSQL)
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"pool.ledger.writer" in handle.read():
                    pids["ledger-writer"] = pid
    sched_before = {name: schedstat(pid) for name, pid in pids.items()}
    pool_user_system_before = user_system_seconds(pool.pid)
    machine_before = machine_busy_cores_seconds()
    spy = start_py_spy(args, pool.pid, args.py_spy, args.seconds)
    while time.monotonic() < window_start + args.seconds:
        time.sleep(min(1.0, window_start + args.seconds - time.monotonic()))
        log(f"rate run: {pool.stats()['stats'].get('shares_accepted', 0):,} shares accepted so far")
    after = pool.stats()
    sched_after = {name: schedstat(pid) for name, pid in pids.items()}
    pool_user_system_after = user_system_seconds(pool.pid)
    machine_after = machine_busy_cores_seconds()
    pool_rss = rss_kb(pool.pid)
    results = [load.expect("result", args.seconds + 60) for load in loads]
    finish_py_spy(spy, args.py_spy)
    pool.child.stop()
    elapsed = after["monotonic"] - before["monotonic"]
    pool_accepted = after["stats"].get("shares_accepted", 0) - before["stats"].get("shares_accepted", 0)
    histogram: dict[int, int] = {}
    for result in results:
        for key, count in result["histogram"].items():
            histogram[int(key)] = histogram.get(int(key), 0) + count
    accepted = sum(r["accepted"] for r in results)
    rejected = sum(r["rejected"] for r in results)
    reasons: dict[str, int] = {}
    for result in results:
        for key, count in result["reject_reasons"].items():
            reasons[key] = reasons.get(key, 0) + count
    cpu = {name: round((sched_after[name][0] - sched_before[name][0]) / elapsed, 3) for name in pids}
    waited = {name: round((sched_after[name][1] - sched_before[name][1]) / elapsed, 3) for name in pids}
    gc_seconds = sum(after["gc"]["seconds"]) - sum(before["gc"]["seconds"])
    gc_full = after["gc"]["collections"][2] - before["gc"]["collections"][2]
    pool_user = pool_user_system_after[0] - pool_user_system_before[0]
    pool_system = pool_user_system_after[1] - pool_user_system_before[1]
    others = (machine_after - machine_before) / elapsed - sum(cpu.values())
    p50, p99 = histogram_percentile(histogram, 0.50), histogram_percentile(histogram, 0.99)
    figures: dict[str, Any] = {
        "accepted_per_s": round(accepted / args.seconds, 1),
        "pool_accepted_per_s": round(pool_accepted / elapsed, 1),
        "rejected_per_s": round(rejected / args.seconds, 1),
        "submit_p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "submit_p90_ms": None if p50 is None else round(histogram_percentile(histogram, 0.90) * 1000, 3),
        "submit_p99_ms": None if p99 is None else round(p99 * 1000, 3),
        "submit_max_ms": None
        if not histogram
        else round(math.exp(max(histogram) / LATENCY_BUCKETS_PER_E) * 1000, 3),
        "connections": sum(r["connections"] for r in results),
        "mode": f"closed loop, {args.window} in flight per connection"
        if args.rate <= 0
        else f"open loop at {args.rate:g} shares/s offered",
        "cpu_cores_used": cpu,
        "runqueue_wait_per_s": waited,
        "pool_kernel_cpu_fraction": round(pool_system / (pool_user + pool_system), 3)
        if pool_user + pool_system
        else None,
        "other_processes_cores": round(max(0.0, others), 2),
        "pool_cpu_us_per_share": round(cpu["pool"] * 1e6 / (pool_accepted / elapsed), 2)
        if pool_accepted
        else None,
        "pool_gc_fraction": round(gc_seconds / elapsed, 4),
        "pool_gc_full_collections": gc_full,
        "pool_capacity_per_core_per_s": round(pool_accepted / elapsed / cpu["pool"], 1)
        if cpu["pool"]
        else None,
        "pool_rss_kb_under_load": pool_rss,
        # The ledger must keep up: shares it stored per second of the window, and the accepted shares
        # it had not yet stored (committed or spilled) at the window's end.
        "ledger_written_per_s": round((after["ledger_written"] - before["ledger_written"]) / elapsed, 1)
        if after.get("ledger_written") is not None
        else None,
        "ledger_backlog_at_end": after.get("ledger_backlog"),
        "skipped_by_client": sum(r["skipped"] for r in results),
        "unanswered_at_end": sum(r["unanswered"] for r in results),
        "connections_lost": sum(r["lost"] for r in results),
    }
    if reasons:
        figures["reject_reasons"] = reasons
    if after["stats"].get("internal_error"):
        figures["pool_internal_errors"] = after["stats"]["internal_error"]
    return figures


def idle_phase(
    children: Children, args: argparse.Namespace, daemon_url: str, announce_url: str, workdir: str
) -> dict[str, Any]:
    pool, port = start_pool(children, args, daemon_url, "pool-idle", workdir)
    time.sleep(1.0)
    rss_none = rss_kb(pool.pid)
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "--role",
        "idle",
        "--coin",
        args.coin,
        "--port",
        str(port),
        "--connections",
        str(args.idle_connections),
        "--announce-url",
        announce_url,
        "--pool-pid",
        str(pool.pid),
        "--max-seconds",
        str(args.budget),
    ]
    idle = children.start("idle", argv)
    ready = idle.expect("ready", 300)
    time.sleep(1.0)
    snapshot = pool.stats()
    rss_idle = rss_kb(pool.pid)
    log(
        f"pool RSS {rss_none:,} kB with no connection, {rss_idle:,} kB with {ready['connections']:,} "
        f"({snapshot['sessions']:,} sessions)"
    )
    rounds = []
    spy = start_py_spy(args, pool.pid, args.py_spy_idle, args.broadcast_rounds * 1.0 + 1)
    for number in range(args.broadcast_rounds):
        before = pool.stats()
        idle.send("round")
        result = idle.expect("round", 60)
        after = pool.stats()
        result["pool_gc_ms"] = (sum(after["gc"]["seconds"]) - sum(before["gc"]["seconds"])) * 1000
        result["pool_gc_full_collections"] = after["gc"]["collections"][2] - before["gc"]["collections"][2]
        rounds.append(result)
        log(
            f"broadcast {number + 1}: {result.get('received')}/{result.get('connections')} got the job; "
            f"first->last {result.get('spread_ms', float('nan')):.1f} ms, tip->last "
            f"{result.get('tip_to_last_ms', float('nan')):.1f} ms ({result.get('clock')}); pool on CPU "
            f"{result.get('pool_on_cpu_ms', float('nan')):.1f} ms, waiting for a CPU "
            f"{result.get('pool_runqueue_wait_ms', float('nan')):.1f} ms, in gc {result['pool_gc_ms']:.1f} ms"
        )
        time.sleep(0.5)
    finish_py_spy(spy, args.py_spy_idle)
    rss_after = rss_kb(pool.pid)
    idle.send("quit")
    pool.child.stop()
    idle.stop()
    complete = [r for r in rounds if r.get("received") == r.get("connections")]

    def median(key: str) -> float | None:
        values = sorted(r[key] for r in complete)
        return round(values[len(values) // 2], 2) if values else None

    return {
        "idle_connections": ready["connections"],
        "rss_none_kb": rss_none,
        "rss_idle_kb": rss_idle,
        "rss_after_broadcasts_kb": rss_after,
        "rss_per_conn_kb": round((rss_idle - rss_none) / ready["connections"], 3),
        "rss_per_conn_kb_after_broadcasts": round((rss_after - rss_none) / ready["connections"], 3),
        "broadcast_ms": median("spread_ms"),
        "broadcast_worst_ms": round(max(r["spread_ms"] for r in complete), 2) if complete else None,
        "tip_to_first_notify_ms": median("tip_to_first_ms"),
        "tip_to_last_notify_ms": median("tip_to_last_ms"),
        "broadcast_pool_on_cpu_ms": median("pool_on_cpu_ms"),
        "broadcast_pool_runqueue_wait_ms": median("pool_runqueue_wait_ms"),
        "broadcast_pool_gc_ms": median("pool_gc_ms"),
        "broadcast_clock": complete[0]["clock"] if complete else None,
        "broadcast_rounds": [
            {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in rounds
        ],
    }


def orchestrate(args: argparse.Namespace) -> int:
    nofile = raise_nofile(max(args.connections, args.idle_connections) + 1024)
    if nofile < args.idle_connections + 256:
        log(f"RLIMIT_NOFILE is {nofile}: lowering --idle-connections to fit")
        args.idle_connections = max(0, nofile - 256)
    figures: dict[str, Any] = {
        "coin": args.coin,
        "algorithm": "scrypt" if args.coin == "litecoin" else "sha256d",
        "cpus": os.cpu_count(),
    }
    if args.coin == "litecoin":
        threads = max(1, min(4, os.cpu_count() or 1))  # as StratumServer's default hash_threads
        log("measuring the native scrypt_batch hash rate (nothing else running) ...")
        figures["scrypt_batch_hs"] = round(measure_scrypt_batch(args.scrypt_seconds, 1), 1)
        figures["scrypt_batch_hs_threads"] = round(measure_scrypt_batch(args.scrypt_seconds, threads), 1)
        figures["scrypt_threads"] = threads
        log(
            f"scrypt_batch: {figures['scrypt_batch_hs']:,.0f} H/s on 1 thread, "
            f"{figures['scrypt_batch_hs_threads']:,.0f} H/s on {threads}"
        )
    workdir = tempfile.mkdtemp(prefix="stratum_load-")
    try:
        with Children() as children:
            daemon_argv = [
                sys.executable,
                os.path.join(HERE, "replay_daemon.py"),
                "--coin",
                args.coin,
                "--max-seconds",
                str(args.budget),
                "--die-with-parent",
            ]
            daemon = children.start("replay-daemon", daemon_argv)
            ready = daemon.expect("ready", 60)
            log(
                f"replay daemon at {ready['url']}: height {ready['height']}, {ready['transactions']} transactions, "
                f"bits {ready['bits']}{', mweb' if ready['mweb'] else ''}"
            )
            figures["template_transactions"] = ready["transactions"]
            if args.connections > 0 and args.seconds > 0:
                figures.update(rate_phase(children, args, ready["url"], workdir))
            if args.idle_connections > 0:
                figures.update(idle_phase(children, args, ready["url"], ready["announce_url"], workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    goals: dict[str, bool | None] = {}
    accepted = figures.get("accepted_per_s")
    if figures["algorithm"] == "sha256d":
        goals["sha256d_40k_shares_per_s"] = None if accepted is None else accepted >= GOAL_SHA256D_PER_S
    else:
        if accepted is not None:
            figures["accepted_vs_scrypt_batch"] = round(accepted / figures["scrypt_batch_hs"], 3)
            figures["accepted_vs_scrypt_batch_threads"] = round(
                accepted / figures["scrypt_batch_hs_threads"], 3
            )
        goals["scrypt_80pct_of_batch_hash_rate"] = (
            None if accepted is None else figures["accepted_vs_scrypt_batch"] >= GOAL_SCRYPT_RATIO
        )
    if figures.get("broadcast_ms") is not None:
        full_size = figures["idle_connections"] >= GOAL_BROADCAST_CONNECTIONS
        goals["broadcast_10k_within_100ms"] = full_size and figures["broadcast_ms"] <= GOAL_BROADCAST_MS
        goals["rss_4kb_per_idle_conn"] = figures["rss_per_conn_kb"] <= GOAL_RSS_PER_CONN_KB
        # the same connections after --broadcast-rounds new blocks (per-connection job maps fill up)
        goals["rss_4kb_per_idle_conn_after_broadcasts"] = (
            figures["rss_per_conn_kb_after_broadcasts"] <= GOAL_RSS_PER_CONN_KB
        )
    figures["goals_met"] = goals
    figures["goals"] = {
        "sha256d_accepted_per_s": GOAL_SHA256D_PER_S,
        "broadcast_ms_at_10k": GOAL_BROADCAST_MS,
        "rss_per_conn_kb": GOAL_RSS_PER_CONN_KB,
        "scrypt_accepted_vs_batch": GOAL_SCRYPT_RATIO,
    }
    print(json.dumps(figures), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coin", choices=["bitcoin", "litecoin"], default="bitcoin")
    parser.add_argument(
        "--connections", type=int, default=1000, help="connections of the rate run (0: skip it)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window of the rate run")
    parser.add_argument("--warmup", type=float, default=2.0, help="submitting before the window opens")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="total shares/s offered (0: as fast as the pool answers, closed loop)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=1,
        help="closed loop: submits in flight per connection (1: like a real miner)",
    )
    parser.add_argument("--max-in-flight", type=int, default=256, help="open loop: cap per connection")
    parser.add_argument("--tick-s", type=float, default=0.002, help="open loop: send interval")
    parser.add_argument("--load-procs", type=int, default=1, help="load generator processes for the rate run")
    parser.add_argument("--idle-connections", type=int, default=10_000, help="idle phase size (0: skip it)")
    parser.add_argument("--broadcast-rounds", type=int, default=5)
    parser.add_argument("--scrypt-seconds", type=float, default=2.0)
    parser.add_argument(
        "--budget", type=float, default=600.0, help="every child exits after this many seconds"
    )
    parser.add_argument(
        "--no-uvloop", dest="uvloop", action="store_false", help="plain asyncio loops everywhere"
    )
    parser.add_argument("--pool-log-level", default="WARNING")
    parser.add_argument(
        "--py-spy", default="", help="record the pool with py-spy during the rate window to FILE"
    )
    parser.add_argument(
        "--py-spy-idle", default="", help="record the idle-phase pool during the broadcasts to FILE"
    )
    parser.add_argument("--py-spy-format", default="raw", choices=["raw", "flamegraph", "speedscope"])
    parser.add_argument("--py-spy-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--py-spy-native", action="store_true", help="py-spy --native (C frames too)")
    parser.add_argument("--py-spy-bin", default="", help="the py-spy executable (default: on PATH)")
    parser.add_argument(
        "--pool-cprofile", default="", help="run the rate-phase pool under cProfile, dump to FILE"
    )
    # internal: the child roles
    parser.add_argument(
        "--role", choices=["main", "pool", "load", "idle"], default="main", help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--daemon-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--announce-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--proc-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--pool-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=600.0, help=argparse.SUPPRESS)
    parser.add_argument("--cprofile", default="", help=argparse.SUPPRESS)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    if args.role == "pool":
        return pool_main(args)
    if args.role == "load":
        return load_main(args)
    if args.role == "idle":
        return idle_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
