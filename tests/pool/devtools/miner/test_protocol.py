"""The demo miner against a fake pool on a socket: it speaks like cpuminer on a recorded exchange, and
handles version rolling, answers out of order, rejections, server methods, client.reconnect and clean
jobs (pool/devtools/miner/client.py and mining.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fake_pool import Peer, fake_pool, fast_options, load_exchange, replay
from miner_reference import BITCOIN, LITECOIN, cpuminer_share_target, share_hash, share_header, share_target

from pool.devtools.miner import run_miner


def test_recorded_submit_is_a_valid_share() -> None:
    """The recording is consistent: its submit, rebuilt by the pool side (miner_reference), meets the
    difficulty the recording set, and rebuilds the real Litecoin block apart from the nonce."""
    messages = [(entry["dir"], json.loads(entry["line"])) for entry in load_exchange()]
    server = [m for d, m in messages if d == "s2c"]
    client = [m for d, m in messages if d == "c2s"]
    extranonce1 = next(m for m in server if m.get("id") == 1)["result"][1]
    difficulty = next(m for m in server if m.get("method") == "mining.set_difficulty")["params"][0]
    notify = next(m for m in server if m.get("method") == "mining.notify")["params"]
    submit = next(m for m in client if m["method"] == "mining.submit")["params"]

    header = share_header(notify, extranonce1, submit)

    assert header[:76] == LITECOIN.header[:76]
    assert share_hash(header, "scrypt") <= cpuminer_share_target(difficulty, "scrypt")
    # and no smaller nonce would do: cpuminer, scanning from 0, submits the first one
    nonce = int(submit[4], 16)
    for earlier in range(nonce):
        candidate = header[:76] + earlier.to_bytes(4, "little")
        assert share_hash(candidate, "scrypt") > cpuminer_share_target(difficulty, "scrypt")


async def test_miner_speaks_like_cpuminer_on_the_recorded_exchange() -> None:
    entries = load_exchange()
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    events: list[dict[str, Any]] = []
    user = json.loads(entries[2]["line"])["params"][0]

    async with fake_pool(lambda peer: replay(entries, seen, peer)) as (port, errors):
        stats = await run_miner(
            "127.0.0.1",
            port,
            user,
            "x",
            algorithm="scrypt",
            max_shares=1,
            version_rolling=False,
            on_event=events.append,
            **fast_options(),
        )

    assert not errors, errors
    assert [recorded["method"] for recorded, _ in seen] == [actual["method"] for _, actual in seen]
    for recorded, actual in seen:
        assert isinstance(actual["id"], int)
        if recorded["method"] == "mining.subscribe":
            # same shape: one user-agent string
            assert [type(p) for p in actual["params"]] == [type(p) for p in recorded["params"]] == [str]
        else:
            # authorize and submit: the same values, spelled the same way
            assert actual["params"] == recorded["params"]
    assert stats.submitted == stats.accepted == 1
    assert stats.rejected == 0 and stats.protocol_errors == 0
    assert stats.stop_reason == "max_shares"
    types = [event["type"] for event in events]
    assert types.index("difficulty") < types.index("job") < types.index("submitted") < types.index("accepted")


async def test_version_rolling_out_of_order_answers_and_rejection_codes() -> None:
    mask = 0x1FFFE000
    job_version = 0x20000004
    notify = BITCOIN.notify_params("vr1", version=job_version)
    _, extranonce1, _, _ = BITCOIN.split()
    difficulty = 2**-20
    submits: list[dict[str, Any]] = []

    async def handler(peer: Peer) -> None:
        configure = await peer.recv()
        subscribe = await peer.recv()  # sent right after configure, before its answer
        assert configure["method"] == "mining.configure"
        assert configure["params"] == [
            ["version-rolling"],
            {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2},
        ]
        assert subscribe["method"] == "mining.subscribe"
        # answer the later request first
        await peer.send({"id": subscribe["id"], "result": [[], extranonce1.hex(), 8], "error": None})
        await peer.send(
            {
                "id": configure["id"],
                "result": {"version-rolling": True, "version-rolling.mask": "1fffe000"},
                "error": None,
            }
        )
        authorize = await peer.recv()
        assert authorize["method"] == "mining.authorize" and authorize["params"] == ["btc.worker", "pw"]
        await peer.send({"id": authorize["id"], "result": True, "error": None})
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [difficulty]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        first = await peer.recv()
        second = await peer.recv()
        submits.extend([first, second])
        await peer.send({"id": second["id"], "result": True, "error": None})
        await peer.send({"id": first["id"], "result": None, "error": [23, "Low difficulty share", None]})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1", port, "btc.worker", "pw", algorithm="sha256d", max_shares=2, **fast_options()
        )

    assert not errors, errors
    assert stats.submitted == 2 and stats.accepted == 1 and stats.rejected == 1
    assert stats.rejected_by_code == {23: 1}
    for submit in submits:
        params = submit["params"]
        assert len(params) == 6 and len(params[2]) == 16  # extranonce2_size 8
        bits = int(params[5], 16)
        assert bits and bits & ~mask == 0
        header = share_header(notify, extranonce1.hex(), params, mask)
        assert int.from_bytes(header[:4], "little") != job_version  # the version really rolled
        assert share_hash(header, "sha256d") <= share_target(difficulty, "sha256d")


async def test_server_methods_and_set_extranonce() -> None:
    replies: dict[str, dict[str, Any]] = {}
    notify = LITECOIN.notify_params("x1")
    submitted: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    async def handler(peer: Peer) -> None:
        await peer.handshake(extranonce1="deadbeef", version_mask=None)
        for request_id, method in [
            (900, "client.get_version"),
            (901, "client.show_message"),
            (902, "mining.ping"),
            (903, "mining.get_transactions_for_me"),
        ]:
            await peer.send({"id": request_id, "method": method, "params": ["hello from the pool"]})
            replies[method] = await peer.recv()
        await peer.send({"id": None, "method": "mining.set_extranonce", "params": ["02000300", 2]})
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        submit = await peer.recv()
        submitted.append(submit)
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1", port, "u", algorithm="scrypt", max_shares=1, on_event=events.append, **fast_options()
        )

    assert not errors, errors
    assert replies["client.get_version"]["result"] == "demo-miner/1.0"
    assert replies["client.show_message"]["result"] is True
    assert replies["mining.ping"]["result"] == "pong"
    unknown = replies["mining.get_transactions_for_me"]
    assert unknown["id"] == 903 and unknown["result"] is False and unknown["error"]["code"] == 38
    params = submitted[0]["params"]
    assert len(params) == 5  # the server refused version rolling: no 6th parameter
    assert len(params[2]) == 4  # extranonce2_size 2 from mining.set_extranonce
    header = share_header(notify, "02000300", params)
    assert share_hash(header, "scrypt") <= share_target(0.002, "scrypt")
    assert stats.accepted == 1
    assert any(event["type"] == "message" and "hello" in event["text"] for event in events)


async def test_client_reconnect_moves_to_the_given_port() -> None:
    notify = LITECOIN.notify_params("r1")
    second_port: list[int] = []

    async def second(peer: Peer) -> None:
        await peer.handshake()
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        submit = await peer.recv()
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    async def first(peer: Peer) -> None:
        await peer.handshake()
        await peer.send(
            {"id": None, "method": "client.reconnect", "params": ["127.0.0.1", str(second_port[0]), 0]}
        )
        await peer.expect_eof()

    events: list[dict[str, Any]] = []
    async with fake_pool(second) as (port2, errors2), fake_pool(first) as (port1, errors1):
        second_port.append(port2)
        stats = await run_miner(
            "127.0.0.1",
            port1,
            "u",
            algorithm="scrypt",
            max_shares=1,
            on_event=events.append,
            **fast_options(),
        )

    assert not errors1 and not errors2, (errors1, errors2)
    assert stats.connections == 2 and stats.accepted == 1
    reconnect = next(event for event in events if event["type"] == "reconnect")
    assert reconnect["port"] == port2


async def test_clean_job_replaces_the_current_one() -> None:
    """Job A is too hard to finish; a clean job B must be mined instead, and only B's shares sent."""
    hard = LITECOIN.notify_params("A")
    easy = LITECOIN.notify_params("B", clean=True)
    easy[7] = f"{int(easy[7], 16) + 1:08x}"  # a different ntime: a different header

    async def handler(peer: Peer) -> None:
        await peer.handshake()
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [1e9]})
        await peer.send({"id": None, "method": "mining.notify", "params": hard})
        await asyncio.sleep(0.3)
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": easy})
        submit = await peer.recv()
        assert submit["params"][1] == "B"
        assert share_hash(share_header(easy, "02000300", submit["params"]), "scrypt") <= share_target(
            0.002, "scrypt"
        )
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner("127.0.0.1", port, "u", algorithm="scrypt", max_shares=1, **fast_options())
    assert not errors, errors
    assert stats.accepted == 1 and stats.jobs == 2
