"""The demo miner against servers that misbehave: garbage and overlong lines, broken handshakes, dropped
connections, endless redirects, refused authorization; and stopping cleanly (cancellation, a time
limit, a broken event callback) without leaving a hashing thread behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import pytest
from fake_pool import Peer, fake_pool, fast_options, load_exchange, replay
from miner_reference import LITECOIN, share_hash, share_header, share_target

from pool.devtools.miner import run_miner
from pool.devtools.miner.hashing import scan_nonces
from pool.devtools.miner.mining import MAX_CONSECUTIVE_REDIRECTS
from pool.devtools.miner.wire import LineFramer


def test_line_framer_splits_and_drops_overlong_lines() -> None:
    framer = LineFramer(max_line_bytes=10)
    assert framer.feed(b'{"a":1}\r\n{"b"') == [b'{"a":1}']
    assert framer.feed(b":2}\n\n") == [b'{"b":2}']
    assert framer.feed(b"x" * 11) == []
    assert framer.feed(b"yyyy\nok\n") == [b"ok"]
    assert framer.feed(b"z" * 30 + b"\nfine\n") == [b"fine"]
    assert framer.overlong_lines == 2


HOSTILE_LINES: list[bytes] = [
    b"this is not json",
    b"\xff\xfe\x00 binary garbage \x00",
    b"[1, 2, 3]",
    b'"a string"',
    b"12345",
    b"{}",
    b'{"method": 42, "params": []}',
    b'{"id": 7777, "result": true, "error": null}',  # answer to nothing
    b'{"id": [1, 2], "result": true, "error": null}',
    b"[" * 200_000 + b"]" * 200_000,  # nesting deep enough to exhaust the JSON decoder's recursion
    b'{"id": null, "method": "mining.set_difficulty", "params": [' + b"9" * 5000 + b"]}",
    b'{"id": null, "method": "mining.set_difficulty", "params": ["hard"]}',
    b'{"id": null, "method": "mining.set_difficulty", "params": [-4]}',
    b'{"id": null, "method": "mining.set_difficulty", "params": [NaN]}',
    b'{"id": null, "method": "mining.set_difficulty", "params": [Infinity]}',
    b'{"id": null, "method": "mining.set_difficulty", "params": {"d": 1}}',
    b'{"id": null, "method": "mining.notify", "params": [1, 2, 3, 4, 5, 6, 7, 8, 9]}',
    b'{"id": null, "method": "mining.notify", "params": "notify"}',
    b'{"id": null, "method": "mining.notify", "params": [null, null, null, null, null, null, null, null]}',
    b'{"id": null, "method": "mining.notify", "params": ["j", "00", "", "", [], "20000000", "1a010ccd", "0", true]}',
    b'{"id": null, "method": "mining.set_extranonce", "params": ["xyz", 4]}',
    b'{"id": null, "method": "mining.set_extranonce", "params": ["00", 1000]}',
    b'{"id": null, "method": "mining.set_version_mask", "params": [12]}',
    b'{"id": null, "method": "client.reconnect", "params": ["127.0.0.1", "not a port", 0]}',
    b'{"id": null, "method": "client.reconnect", "params": [["h"], 3333, 0]}',
    b'{"id": null, "method": "client.reconnect", "params": ["127.0.0.1", 70000, 0]}',
]


async def test_hostile_lines_are_survived_and_mining_goes_on() -> None:
    notify = LITECOIN.notify_params("after-garbage")
    bad_notify = LITECOIN.notify_params("bad-types")
    bad_notify[4] = [{"not": "a hash"}]

    async def handler(peer: Peer) -> None:
        await peer.handshake()
        for line in HOSTILE_LINES:
            await peer.send(line)
        await peer.send({"id": None, "method": "mining.notify", "params": bad_notify})
        # a line over the 1 MiB limit, sent in pieces, then a normal line right behind it
        peer.writer.write(b'{"id": null, "method": "mining.notify", "params": ["' + b"a" * (2 << 20))
        await peer.writer.drain()
        await peer.send(b'"]}')
        await peer.send({"id": 31337, "method": "mining.unknown_thing", "params": []})
        reply = await peer.recv()
        assert reply == {"id": 31337, "result": False, "error": {"code": 38, "message": "unknown method"}}
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        submit = await peer.recv()
        assert submit["params"][1] == "after-garbage"
        header = share_header(notify, "02000300", submit["params"])
        assert share_hash(header, "scrypt") <= share_target(0.002, "scrypt")
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner("127.0.0.1", port, "u", algorithm="scrypt", max_shares=1, **fast_options())

    assert not errors, errors
    assert stats.accepted == 1 and stats.connections == 1
    assert stats.jobs == 1  # none of the malformed notifies became a job
    # every hostile line, the notify with a bad branch and the overlong line: one protocol error each
    assert stats.protocol_errors == len(HOSTILE_LINES) + 2


@pytest.mark.parametrize(
    "subscribe_answer",
    [
        b'{"id": 1, "result": "nope", "error": null}',
        b'{"id": 1, "result": [[], "zz", 4], "error": null}',
        b'{"id": 1, "result": [[], "00", 0], "error": null}',
        b'{"id": 1, "result": [[], "00", 4.5], "error": null}',
        b'{"id": 1, "result": [[], "00", 101], "error": null}',
        b"\x00" * 100,
        b"",  # just close
    ],
    ids=[
        "result-not-a-list",
        "extranonce1-not-hex",
        "size-0",
        "size-float",
        "size-101",
        "nul-bytes",
        "close",
    ],
)
async def test_broken_handshakes_end_cleanly(subscribe_answer: bytes) -> None:
    attempts: list[int] = []

    async def handler(peer: Peer) -> None:
        attempts.append(1)
        subscribe = await peer.recv()
        assert subscribe["method"] == "mining.subscribe"
        if subscribe_answer:
            await peer.send(subscribe_answer.replace(b'"id": 1', b'"id": %d' % subscribe["id"]))
            await peer.send(b'{"id": 2, "result": [[], "00", 4], "error": null}')  # an answer to nothing
        with contextlib.suppress(EOFError, TimeoutError):
            await peer.recv(timeout=2)

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1",
            port,
            "u",
            version_rolling=False,
            max_seconds=20,
            **fast_options(max_reconnects=2, response_timeout=0.5),
        )
    assert not errors, errors
    assert stats.gave_up and stats.stop_reason == "gave_up"
    assert len(attempts) == 3  # the first try and max_reconnects=2 more, then a clean stop
    assert stats.accepted == 0 and stats.last_error


async def test_dropped_connection_is_reconnected_with_backoff() -> None:
    connections: list[int] = []
    notify = LITECOIN.notify_params("again")

    async def handler(peer: Peer) -> None:
        connections.append(1)
        await peer.handshake()
        if len(connections) == 1:
            await peer.send({"id": None, "method": "mining.set_difficulty", "params": [1e12]})
            await peer.send({"id": None, "method": "mining.notify", "params": LITECOIN.notify_params("lost")})
            await asyncio.sleep(0.2)
            return  # drop the miner in the middle of a job
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        submit = await peer.recv()
        assert submit["params"][1] == "again"
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    events: list[dict[str, Any]] = []
    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1",
            port,
            "u",
            max_shares=1,
            on_event=events.append,
            **fast_options(max_reconnects=2, backoff_initial=0.05),
        )
    assert not errors, errors
    assert stats.connections == 2 and stats.accepted == 1
    assert [event["delay"] for event in events if event["type"] == "reconnecting"] == [0.05]


async def test_endless_redirects_are_bounded() -> None:
    connections: list[int] = []

    async def handler(peer: Peer) -> None:
        connections.append(1)
        await peer.handshake()
        port = peer.writer.get_extra_info("sockname")[1]
        await peer.send({"id": None, "method": "client.reconnect", "params": ["", port, 0]})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1", port, "u", version_rolling=False, max_seconds=20, **fast_options()
        )
    assert not errors, errors
    assert stats.gave_up and "client.reconnect" in (stats.last_error or "")
    assert len(connections) == MAX_CONSECUTIVE_REDIRECTS + 1


async def test_refused_authorization_ends_cleanly() -> None:
    async def handler(peer: Peer) -> None:
        subscribe = await peer.recv()
        await peer.send({"id": subscribe["id"], "result": [[], "00000000", 4], "error": None})
        authorize = await peer.recv()
        await peer.send({"id": authorize["id"], "result": None, "error": [24, "Unauthorized worker", None]})
        with contextlib.suppress(EOFError, TimeoutError):
            await peer.recv(timeout=2)

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner("127.0.0.1", port, "nobody", version_rolling=False, **fast_options())
    assert not errors, errors
    assert stats.gave_up and "AuthorizationFailed" in (stats.last_error or "")


async def test_server_dropping_after_configure_gets_a_retry_without_it() -> None:
    """BIP310 warns that some servers close the connection on an unknown method."""
    seen: list[str] = []

    async def handler(peer: Peer) -> None:
        first = await peer.recv()
        seen.append(first["method"])
        if first["method"] == "mining.configure":
            return  # slam the door
        await peer.send({"id": first["id"], "result": [[], "00000000", 4], "error": None})
        authorize = await peer.recv()
        await peer.send({"id": authorize["id"], "result": True, "error": None})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner("127.0.0.1", port, "u", max_seconds=1.5, **fast_options(max_reconnects=3))
    assert not errors, errors
    assert seen[:2] == ["mining.configure", "mining.subscribe"]
    assert stats.connections == 2 and stats.stop_reason == "duration"


def _threads_in_scan() -> int:
    return sum(
        1
        for frame in sys._current_frames().values()
        if any(f.f_code is scan_nonces.__code__ for f in _stack(frame))
    )


def _stack(frame: Any) -> list[Any]:
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


async def _hard_job_server(peer: Peer) -> None:
    await peer.handshake()
    await peer.send({"id": None, "method": "mining.set_difficulty", "params": [1e12]})
    await peer.send({"id": None, "method": "mining.notify", "params": LITECOIN.notify_params("never")})
    await peer.expect_eof(timeout=60)


async def test_cancellation_closes_the_connection_and_stops_hashing() -> None:
    events: list[dict[str, Any]] = []
    async with fake_pool(_hard_job_server) as (port, errors):
        task = asyncio.create_task(
            run_miner("127.0.0.1", port, "u", on_event=events.append, **fast_options(chunk_seconds=5.0))
        )
        while not any(event["type"] == "job" for event in events):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert _threads_in_scan() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)
        assert _threads_in_scan() == 0  # the 5-second chunk was aborted, not left running
    assert not errors, errors
    assert events[-1]["type"] == "stopped" and events[-1]["reason"] == "cancelled"


async def test_max_seconds_stops_cleanly() -> None:
    async with fake_pool(_hard_job_server) as (port, errors):
        started = time.monotonic()
        stats = await run_miner("127.0.0.1", port, "u", max_seconds=0.8, **fast_options())
        elapsed = time.monotonic() - started
    assert not errors, errors
    assert stats.stop_reason == "duration" and not stats.gave_up
    assert 0.7 < elapsed < 5
    assert stats.hashes > 0 and stats.submitted == 0
    await asyncio.sleep(0.1)
    assert _threads_in_scan() == 0


async def test_callback_errors_do_not_stop_the_miner() -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("observer bug")

    entries = load_exchange()
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    user = json.loads(entries[2]["line"])["params"][0]
    async with fake_pool(lambda peer: replay(entries, seen, peer)) as (port, errors):
        stats = await run_miner(
            "127.0.0.1", port, user, version_rolling=False, max_shares=1, on_event=broken, **fast_options()
        )
    assert not errors, errors
    assert stats.accepted == 1
