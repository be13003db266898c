#!/usr/bin/env python3
"""An honest miner's submit round trip while other connections flood the pool with pipelined invalid submits.

Processes (all on loopback, each bounded in time, all ended by this script, also when it is killed):

* the pool's Stratum server (``StratumServer`` with the native share validator and a counting
  recorder, under uvloop like ``pool run``), with one Litecoin job built from a real mainnet block
  (``bench/replay_daemon.py``'s template: mainnet bits, so no share is a block), on a port with
  difficulty 1e-12 (every share of the honest miner is valid) up to 1e12, and the pool's ban settings;
* a flooder: connects from a fresh loopback address each time (127.0.0.2, .3, ...: a ban is per
  address), asks for difficulty 1e12 (so every share it sends must be hashed, then is rejected as
  low difficulty) and sends ``--flood-submits`` pipelined submits (200,000: about 29 MB) as fast as
  the socket takes them, until the pool closes the connection (the ban); then the next address,
  until the phase ends;
* the honest miner (this process): one connection from 127.0.0.1, one share every 1/``--rate`` s,
  its round trip measured from the send to the answer.

Phases, in one run: ``quiet`` (the honest miner alone), then ``flood`` (both), each ``--seconds``
long; then the time the pool still hashed after the flooder stopped (``busy_after_flood_s``).
Printed: one JSON line with p50/p99/max round trips per phase, ``p99_ratio`` (flood p99 / quiet
p99), and the pool's counters over the flood phase: connections banned, shares hashed, requests of
banned or closed connections dropped unhashed, reads paused at the bound, the pool's RSS before and
after.

    .venv/bin/python bench/flood.py [--seconds 10] [--rate 100] [--flood-submits 200000]
                                    [--ban-min-shares 50] [--max-in-flight N]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import importlib.util
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/payouts.py is named like the payouts package the pool imports: keep this folder off the import path.
sys.path = [entry for entry in sys.path if os.path.abspath(entry or ".") != HERE]
HOST = "127.0.0.1"
FIRST_FLOOD_ADDRESS = int(ipaddress.IPv4Address("127.0.0.2"))
HONEST_DIFFICULTY = 1e-12
FLOOD_DIFFICULTY = 1e12
CHUNK_LINES = 2000


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    print(f"[flood {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def die_with_parent() -> None:
    """Linux: SIGTERM when the orchestrator dies, so no child outlives a crashed run."""
    parent = os.getppid()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def litecoin_template() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("replay_daemon", os.path.join(HERE, "replay_daemon.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.template_from_block("litecoin")


@functools.cache
def user() -> str:
    from share_validator.bitcoin.address import bech32_encode_segwit

    return bech32_encode_segwit("ltc", 0, bytes(range(20))) + ".bench"


def submit_line(msg_id: int, job: list, extranonce2: int, nonce: int) -> bytes:
    return (b'{"id":%d,"method":"mining.submit","params":["%s","%s","%08x","%s","%08x"]}\n'
            % (msg_id, user().encode(), job[0].encode(), extranonce2, job[7].encode(), nonce))


# == the pool ======================================================================================

def pool_main(args: argparse.Namespace) -> int:
    die_with_parent()
    import logging

    import uvloop

    logging.basicConfig(level=logging.ERROR, format="[pool] %(levelname)s %(name)s: %(message)s")  # not each ban

    from pool.config import parse_config
    from pool.ledger.recorder import LogRecorder
    from pool.stratum.server import StratumServer
    from share_validator import hashing
    from share_validator.bitcoin.job import Job, Template
    from share_validator.bitcoin.validator import ShareValidator

    stratum: dict[str, Any] = {
        "ports": [{"port": 0, "host": HOST, "difficulty": HONEST_DIFFICULTY, "min_difficulty": HONEST_DIFFICULTY,
                   "max_difficulty": FLOOD_DIFFICULTY, "vardiff": False}],
        "ban_min_shares": args.ban_min_shares, "handshake_timeout_s": 600.0, "idle_timeout_s": 3600.0,
        "max_connections_per_ip": 1_000_000,
    }
    if args.max_in_flight:
        stratum["max_requests_in_flight"] = args.max_in_flight
    config = parse_config({"pool": {"coin": "litecoin", "address": user().split(".")[0]},
                           "daemons": [{"url": "http://127.0.0.1:1/"}], "stratum": stratum}, source="bench/flood.py")
    hashed = [0]
    real_batch = hashing.scrypt_batch

    def counted_batch(headers):  # the benchmark's instrument: shares hashed
        hashed[0] += len(headers)
        return real_batch(headers)

    hashing.scrypt_batch = counted_batch

    async def main() -> None:
        loop = asyncio.get_running_loop()
        recorder = LogRecorder()
        server = StratumServer(config, ShareValidator(config.coin), recorder)
        await recorder.start()
        await server.start()
        server.new_job(Job("1", config.coin, Template.from_gbt(litecoin_template()),
                           payout_script=config.payout_script), True)
        sys.setswitchinterval(0.0005)  # as pool run does (the hashing threads get the GIL back sooner)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        emit("ready", port=server.ports[0], pid=os.getpid())
        try:
            async with asyncio.timeout(args.max_seconds):
                while line := await reader.readline():
                    if line.strip() == b"stats":
                        emit("stats", stats=dict(server.stats), hashed=hashed[0], rss_kb=rss_kb(os.getpid()),
                             sessions=len(server.sessions), queued=len(server._batch_queue))
        except TimeoutError:
            log("pool: time limit reached")
        finally:
            await server.stop(reconnect=False)
            await recorder.stop()

    uvloop.run(main())
    return 0


# == the flooder ===================================================================================

def handshake(sock: socket.socket, password: str) -> list | None:
    """Subscribe and authorize; the job, or None when the pool closed the connection (a banned address)."""
    sock.sendall(b'{"id":1,"method":"mining.subscribe","params":["flood/1.0"]}\n'
                 b'{"id":2,"method":"mining.authorize","params":["%s","%s"]}\n' % (user().encode(), password.encode()))
    reader = sock.makefile("rb")
    while True:
        line = reader.readline()
        if not line:
            return None
        message = json.loads(line)
        if message.get("method") == "mining.notify":
            return message["params"]


def flood_main(args: argparse.Namespace) -> int:
    die_with_parent()
    deadline = time.monotonic() + args.seconds
    connections = refused = lines_sent = bytes_sent = 0
    while time.monotonic() < deadline:
        source = str(ipaddress.IPv4Address(FIRST_FLOOD_ADDRESS + connections + refused))
        try:
            sock = socket.socket()
            sock.bind((source, 0))
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.connect((HOST, args.port))
            job = handshake(sock, f"d={FLOOD_DIFFICULTY:g}")
        except OSError:
            job = None
        if job is None:
            refused += 1
            sock.close()
            continue
        connections += 1
        try:
            for start in range(0, args.flood_submits, CHUNK_LINES):
                if time.monotonic() >= deadline:
                    break
                data = b"".join(submit_line(10 + n, job, connections, n)
                                for n in range(start, min(start + CHUNK_LINES, args.flood_submits)))
                sock.sendall(data)
                lines_sent += data.count(b"\n")
                bytes_sent += len(data)
        except OSError:  # closed by the pool (the ban), or the phase ended
            pass
        sock.close()
    emit("done", connections=connections, refused=refused, lines_sent=lines_sent, bytes_sent=bytes_sent)
    return 0


# == the honest miner and the run ==================================================================

class Honest:
    """One miner: a share every 1/rate s, the round trip of each."""

    def __init__(self, port: int, rate: float) -> None:
        self.port = port
        self.interval = 1.0 / rate
        self.sequence = 0

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.writer.write(b'{"id":1,"method":"mining.subscribe","params":["honest/1.0"]}\n'
                          b'{"id":2,"method":"mining.authorize","params":["%s","x"]}\n' % user().encode())
        while True:
            message = json.loads(await self.reader.readline())
            if message.get("method") == "mining.notify":
                self.job = message["params"]
                return

    async def run(self, seconds: float) -> tuple[list[float], int]:
        """Round trips in seconds, and how many answers were not "accepted"."""
        round_trips: list[float] = []
        failed = sent_here = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.sequence += 1
            sent_here += 1
            msg_id = 100 + self.sequence
            sent = time.perf_counter()
            self.writer.write(submit_line(msg_id, self.job, 0, self.sequence))
            while True:
                message = json.loads(await asyncio.wait_for(self.reader.readline(), 60))
                if message.get("id") == msg_id:
                    break
            round_trips.append(time.perf_counter() - sent)
            failed += message.get("result") is not True
            next_at = start + sent_here * self.interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        return round_trips, failed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def summary(round_trips: list[float], failed: int) -> dict[str, Any]:
    return {"shares": len(round_trips), "not_accepted": failed,
            "p50_ms": round(percentile(round_trips, 0.50) * 1e3, 3),
            "p99_ms": round(percentile(round_trips, 0.99) * 1e3, 3),
            "max_ms": round(max(round_trips, default=float("nan")) * 1e3, 3)}


class Child:
    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                        cwd=os.path.dirname(HERE))

    def expect(self, event: str) -> dict[str, Any]:
        for line in self.process.stdout:  # type: ignore[union-attr]
            message = json.loads(line)
            if message.get("event") == event:
                return message
        raise RuntimeError(f"the child exited before {event!r} (code {self.process.wait()})")

    def ask(self, command: str, event: str) -> dict[str, Any]:
        self.process.stdin.write(command + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return self.expect(event)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def orchestrate(args: argparse.Namespace) -> int:
    me = [sys.executable, os.path.abspath(__file__)]
    common = ["--ban-min-shares", str(args.ban_min_shares), "--max-in-flight", str(args.max_in_flight)]
    pool = Child([*me, "--role", "pool", "--max-seconds", str(4 * args.seconds + 120), *common])
    flooder = None
    try:
        ready = pool.expect("ready")
        port = ready["port"]
        log(f"pool (pid {ready['pid']}) on port {port}")

        async def measure() -> dict[str, Any]:
            nonlocal flooder
            honest = Honest(port, args.rate)
            await honest.connect()
            await honest.run(1.0)  # warm-up: threads started, caches filled
            log(f"quiet phase: {args.seconds:g} s")
            quiet = await honest.run(args.seconds)
            before = pool.ask("stats", "stats")
            log(f"flood phase: {args.seconds:g} s")
            flooder = Child([*me, "--role", "flood", "--port", str(port), "--seconds", str(args.seconds),
                             "--flood-submits", str(args.flood_submits), *common])
            flooded = await honest.run(args.seconds)
            flood = await asyncio.to_thread(flooder.expect, "done")
            stopped = time.monotonic()
            after = pool.ask("stats", "stats")
            hashed, quiet_since = after["hashed"], time.monotonic()
            while time.monotonic() - quiet_since < 1.0 and time.monotonic() - stopped < 60:
                await asyncio.sleep(0.1)
                latest = pool.ask("stats", "stats")
                if latest["hashed"] != hashed:
                    hashed, quiet_since = latest["hashed"], time.monotonic()
            busy_after = max(0.0, quiet_since - stopped)
            return {"quiet": quiet, "flood": flooded, "flooder": flood, "before": before, "after": latest,
                    "busy_after_flood_s": round(busy_after, 2)}

        result = asyncio.run(measure())
    finally:
        if flooder is not None:
            flooder.stop()
        pool.stop()
    quiet, flood = summary(*result["quiet"]), summary(*result["flood"])
    before, after = result["before"], result["after"]

    def grew(name: str) -> int:
        return after["stats"].get(name, 0) - before["stats"].get(name, 0)

    figures = {
        "quiet": quiet, "flood": flood,
        "p99_ratio": round(flood["p99_ms"] / quiet["p99_ms"], 2),
        "flood_connections": result["flooder"]["connections"],
        "flood_lines_sent": result["flooder"]["lines_sent"],
        "flood_mb_sent": round(result["flooder"]["bytes_sent"] / 1e6, 1),
        "bans": grew("bans"), "shares_hashed": after["hashed"] - before["hashed"],
        "flood_rejected_low_difficulty": grew("shares_rejected_23"),
        "requests_dropped": grew("dropped_requests"), "reading_paused": grew("reading_paused"),
        "busy_after_flood_s": result["busy_after_flood_s"],
        "pool_rss_mb_before": round(before["rss_kb"] / 1024, 1), "pool_rss_mb_after": round(after["rss_kb"] / 1024, 1),
        "seconds": args.seconds, "rate": args.rate, "ban_min_shares": args.ban_min_shares,
        "max_in_flight": args.max_in_flight or "default",
    }
    print(json.dumps(figures))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["orchestrate", "pool", "flood"], default="orchestrate")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rate", type=float, default=100.0, help="the honest miner's shares per second")
    parser.add_argument("--flood-submits", type=int, default=200_000, help="pipelined submits per flood connection")
    parser.add_argument("--ban-min-shares", type=int, default=50, help="stratum.ban_min_shares of the pool")
    parser.add_argument("--max-in-flight", type=int, default=0,
                        help="stratum.max_requests_in_flight of the pool (0: the pool's default)")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=600.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "pool":
        return pool_main(args)
    if args.role == "flood":
        return flood_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
