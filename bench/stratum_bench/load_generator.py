"""The load generator (``--role load``): connections that subscribe, authorize and submit shares over
raw TCP, closed loop or at a fixed rate, with their answers' latencies."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import sys
import time
from array import array

try:
    from orjson import loads
except ImportError:  # pragma: no cover - orjson is a pool dependency
    from json import loads

from bench.stratum_bench.common import (
    HOST, LATENCY_BUCKETS_PER_E, die_with_parent, emit, pool_address, raise_nofile, run_event_loop,
)


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

