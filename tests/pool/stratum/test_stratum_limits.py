"""Pipelined requests, bans and closes over real TCP: what a hostile connection may cost the pool.

A connection may have ``stratum.max_requests_in_flight`` requests read but not yet answered; past
that the server stops reading from it. A connection that is banned or closing has its queued
requests dropped without judging them. A ban is one event: one counter increment, one log line.
A line too long is answered and the connection closed after the answer, without a reset.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import pytest
from stratum_harness import USER, make_config, make_pool, submit_params  # noqa: F401 (make_pool: a fixture)

from share_validator import hashing


class HashCounter:
    """Wraps the scrypt batch hashing: how many headers were hashed, and when; optionally slow."""

    def __init__(self, monkeypatch, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[float, int]] = []
        self.delay_s = delay_s
        real = hashing.scrypt_batch

        def counted(headers):
            self.calls.append((time.monotonic(), len(headers)))
            if self.delay_s:
                time.sleep(self.delay_s)
            return real(headers)

        monkeypatch.setattr(hashing, "scrypt_batch", counted)

    def hashed(self, after: float = 0.0) -> int:
        return sum(count for started, count in self.calls if started >= after)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


class RawMiner:
    """A blocking-socket miner driven from a thread, so that a flood costs the test no memory."""

    def __init__(self, port: int, password: str = "x") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")
        self.sock.sendall(b'{"id": 1, "method": "mining.subscribe", "params": []}\n'
                          b'{"id": 2, "method": "mining.authorize", "params": ["%s", "%s"]}\n'
                          % (USER.encode(), password.encode()))
        while True:
            message = json.loads(self.file.readline())
            if message.get("method") == "mining.notify":
                self.job = message["params"]
                return

    def submit_line(self, msg_id: int, nonce: int) -> bytes:
        return json.dumps({"id": msg_id, "method": "mining.submit",
                           "params": submit_params(self.job, nonce=nonce)}).encode() + b"\n"

    def flood(self, count: int, first_nonce: int = 0, chunk: int = 500) -> int:
        """Send ``count`` submits back to back; the bytes sent before the server closed."""
        sent = 0
        try:
            for start in range(0, count, chunk):
                data = b"".join(self.submit_line(10 + n, first_nonce + n)
                                for n in range(start, min(start + chunk, count)))
                self.sock.sendall(data)
                sent += len(data)
        except OSError:
            pass
        return sent

    def read_until_closed(self, timeout: float = 30.0) -> list[dict]:
        self.sock.settimeout(timeout)
        messages = []
        try:
            for line in self.file:
                messages.append(json.loads(line))
        except OSError:
            pass
        return messages

    def close(self) -> None:
        self.file.close()
        self.sock.close()


async def in_thread(function, *args):
    return await asyncio.to_thread(function, *args)


async def settle(server, quiet_s: float = 0.3, timeout: float = 30.0) -> None:
    """Until the server has nothing queued or hashing for ``quiet_s``."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        busy = server._batch_queue or any(not task.done() for task in server._tasks
                                          if task.get_coro().__name__ == "_finish_batch")
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the server is still busy")


async def test_flood_of_invalid_submits_costs_at_most_the_bound_after_the_ban(make_pool, monkeypatch, caplog):
    bound = 64
    pool = await make_pool(make_config({"max_difficulty": 1e12}, ban_min_shares=50, ban_invalid_ratio=0.5,
                                       ban_duration_s=60, max_requests_in_flight=bound))
    counter = HashCounter(monkeypatch, delay_s=0.02)  # hashing slower than reading, as on a busy pool
    banned_at: list[float] = []
    real_ban = pool.server.ban
    monkeypatch.setattr(pool.server, "ban", lambda ip, reason: (banned_at.append(time.monotonic()),
                                                                 real_ban(ip, reason))[1])
    miner = await in_thread(RawMiner, pool.port, "d=1e12")  # every share is below its difficulty: 23
    caplog.set_level(logging.WARNING, logger="pool.stratum.server")
    rss_before = rss_bytes()
    flooded = asyncio.ensure_future(in_thread(miner.flood, 50_000))
    answers = await in_thread(miner.read_until_closed)
    await flooded
    await settle(pool.server)
    grown = rss_bytes() - rss_before
    miner.close()

    assert banned_at, "the flood was banned"
    after_ban = counter.hashed(after=banned_at[0])
    judged = pool.server.stats["shares_rejected_23"]
    print(f"\nflood: {counter.hashed()} hashed, {after_ban} after the ban, {judged} judged, "
          f"{len(answers)} answers, RSS {grown / 1e6:+.1f} MB")
    assert after_ban <= bound
    assert judged <= 50 + bound
    assert grown < 4_000_000
    # One ban, counted once, logged once with the address, the reason and the expiry.
    assert pool.server.stats["bans"] == 1
    warnings = [record.getMessage() for record in caplog.records if "bann" in record.getMessage()]
    assert len(warnings) == 1, warnings
    assert "127.0.0.1" in warnings[0] and "invalid" in warnings[0] and "until" in warnings[0]


async def test_reading_pauses_at_the_bound_and_every_request_is_answered(make_pool, monkeypatch):
    bound = 16
    pool = await make_pool(make_config(max_requests_in_flight=bound))
    HashCounter(monkeypatch, delay_s=0.01)  # hashing slower than the miner sends
    miner = await in_thread(RawMiner, pool.port)
    session = next(iter(pool.server.sessions))
    most = 0

    def read_answers(count: int) -> list[dict]:
        return [json.loads(miner.file.readline()) for _ in range(count)]

    sending = asyncio.ensure_future(in_thread(miner.flood, 600))
    reading = asyncio.ensure_future(in_thread(read_answers, 600))
    while not reading.done():
        most = max(most, session.pending, len(pool.server._batch_queue))
        await asyncio.sleep(0.001)
    answers = await reading
    await sending
    miner.close()
    assert sorted(answer["id"] for answer in answers) == list(range(10, 610))
    assert all(answer["result"] is True for answer in answers)
    assert 0 < most <= bound
    assert pool.server.stats["shares_accepted"] == 600


async def test_a_connection_closed_by_its_peer_has_its_submits_dropped(make_pool, monkeypatch):
    """Queued and in flight when the peer closed: none judged (those already hashing are hashed)."""
    pool = await make_pool(make_config(max_requests_in_flight=256), hash_threads=1)
    counter = HashCounter(monkeypatch, delay_s=0.3)
    miner = await in_thread(RawMiner, pool.port)
    await in_thread(miner.flood, 200)
    miner.close()  # gone without waiting for a single answer
    await settle(pool.server)
    assert pool.server.stats["shares_accepted"] == 0
    assert pool.server.stats["dropped_requests"] == 200
    assert counter.hashed() <= 2 * 64  # the batches hashing (two per hashing thread) when it closed


async def test_a_connection_the_server_closes_has_its_queued_submits_dropped(make_pool, monkeypatch):
    pool = await make_pool(make_config(max_bad_messages=3))
    counter = HashCounter(monkeypatch)
    miner = await in_thread(RawMiner, pool.port)
    lines = b"".join(miner.submit_line(10 + n, n) for n in range(20)) + b"x\n" * 3  # then too many bad messages
    await in_thread(miner.sock.sendall, lines)
    await in_thread(miner.read_until_closed)
    miner.close()
    await settle(pool.server)
    assert pool.server.stats["shares_accepted"] == 0 and counter.hashed() == 0
    assert pool.server.stats["dropped_requests"] == 20


async def test_one_ban_for_an_address_with_several_connections(make_pool, caplog):
    """Every connection of the address ends with the one ban; none of them bans it again."""
    pool = await make_pool(make_config({"max_difficulty": 1e12}, ban_min_shares=10, ban_invalid_ratio=0.5,
                                       ban_duration_s=60))
    caplog.set_level(logging.WARNING, logger="pool.stratum.server")
    miners = [await in_thread(RawMiner, pool.port, "d=1e12") for _ in range(4)]
    lines = [b"".join(miner.submit_line(10 + n, 1000 * number + n) for n in range(40))
             for number, miner in enumerate(miners)]
    for miner, data in zip(miners, lines):  # all of them queued before the first batch is judged
        miner.sock.sendall(data)
    for miner in miners:
        await in_thread(miner.read_until_closed)
        miner.close()
    await settle(pool.server)
    assert pool.server.stats["bans"] == 1
    assert len([record for record in caplog.records if "bann" in record.getMessage()]) == 1
    assert not pool.server.sessions
    pool.server.ban("127.0.0.1", "again, while banned")  # the ban holds: not a new one
    assert pool.server.stats["bans"] == 1


@pytest.mark.parametrize("size", [5000, 2_000_000])
async def test_line_too_long_is_answered_then_closed_cleanly(make_pool, size):
    pool = await make_pool(make_config(max_line_bytes=1024))

    def talk() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", pool.port)) as sock:
            sock.sendall(b'{"id":1,"method":"mining.subscribe","params":["' + b"a" * size)
            sock.settimeout(10)
            reader = sock.makefile("rb")
            return reader.readline(), reader.read()  # ConnectionResetError fails the test

    line, rest = await in_thread(talk)
    answer = json.loads(line)
    assert answer["error"][:2] == [20, "line too long"]
    assert rest == b""
    assert pool.server.stats["dropped_long_line"] == 1


async def test_a_peer_that_goes_on_sending_after_the_answer_is_cut_off(make_pool, monkeypatch):
    monkeypatch.setattr("pool.stratum.protocol.LINGER_S", 0.5)
    pool = await make_pool(make_config(max_line_bytes=1024))

    def talk() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", pool.port)) as sock:
            sock.sendall(b"b" * 2000)
            started = time.monotonic()
            try:
                while time.monotonic() - started < 10:
                    sock.sendall(b"c" * 4096)
                    time.sleep(0.01)
            except OSError:
                pass
            return time.monotonic() - started

    cut_after = await in_thread(talk)
    assert cut_after < 3
    assert not pool.server.sessions
