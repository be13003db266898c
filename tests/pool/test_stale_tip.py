"""Shares on a stale tip, against real regtest litecoind nodes.

The tip can move while the pool has no template for it: at MWEB activation litecoind refuses
``getblocktemplate`` for block 432 until a peg-in waits in the mempool (``bad-txns-vin-empty``),
and a daemon that cannot be reached gives no template at all. Whatever the reason, once the pool
knows the tip has moved past a job's previous block (its own accepted block, long poll,
blocknotify, ``getbestblockhash``), or has no template, shares on that job are stale: answered
21, never credited, never stored as shares. A stale share that solves a block is still submitted
and stored as a stale candidate, apart from the pool's orphans. Miners are told only that the
pool waits for its coin daemon, never the daemon's address, user or errors.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from decimal import Decimal

import pytest
from running_pool import running_pool
from stratum_client import Client
from tcp_switch import Switch

from pool.config import parse_config
from pool.devtools.miner.hashing import bits_to_target
from pool.devtools.miner.work import Job as NotifiedJob
from pool.devtools.miner.work import build_header
from pool.devtools.regtest import MWEB_ACTIVATION_HEIGHT, RegtestNetwork
from share_validator import hashing
from share_validator.errors import Reject

PAUSE_MESSAGE = "the pool is waiting for its coin daemon; mining resumes automatically"


@pytest.fixture
def net():
    """Two nodes, the chain at height 430: block 431 can be mined, block 432 needs a peg-in first."""
    network = RegtestNetwork()
    network.start()
    try:
        network.generate(MWEB_ACTIVATION_HEIGHT - 2)
        yield network
    finally:
        network.stop()


def pool_config(net: RegtestNetwork, address: str, data_dir: str, url: str | None = None):
    return parse_config({
        "pool": {"coin": "litecoin-regtest", "address": address, "data_dir": data_dir},
        "daemons": [{"url": url or net.rpc_url(0)}],
        # Every hash is a share at this difficulty; about half of them are regtest blocks.
        "stratum": {"ports": [{"port": 0, "host": "127.0.0.1", "difficulty": 1e-6, "min_difficulty": 1e-7,
                               "max_difficulty": 1.0, "vardiff": False}]},
        "work": {"poll_interval_s": 0.2, "template_refresh_s": 600},
        "blocks": {"tracker_interval_s": 600},
    }, source="test")


class Miner:
    """A Stratum client that builds its shares itself, blocks or not on demand."""

    def __init__(self, client: Client, user: str, extranonce1: bytes) -> None:
        self.client = client
        self.user = user
        self.extranonce1 = extranonce1
        self.job: list = []
        self.nonce = 0
        self.texts: list[str] = []

    @classmethod
    async def connect(cls, port: int, address: str) -> Miner:
        client = await Client.connect(port)
        subscribed = await client.request("mining.subscribe", ["stale-test/1"])
        miner = cls(client, f"{address}.w", bytes.fromhex(subscribed["result"][1]))
        assert (await client.request("mining.authorize", [miner.user, "x"]))["result"] is True
        await client.notification("mining.set_difficulty")
        miner.job = (await client.notification("mining.notify", timeout=10))["params"]
        return miner

    def share(self, *, block: bool, job: list | None = None) -> list:
        """Submit parameters for the job (the current one by default): a block on regtest or not."""
        params = job or self.job
        notified = NotifiedJob.from_notify(params)
        network_target = bits_to_target(notified.nbits)
        extranonce2 = bytes(4)
        while True:
            self.nonce += 1
            header = build_header(notified, self.extranonce1, extranonce2, self.nonce)
            is_block = int.from_bytes(hashing.scrypt(header), "little") <= network_target
            if is_block == block:
                return [self.user, notified.job_id, extranonce2.hex(), f"{notified.ntime:08x}",
                        f"{self.nonce:08x}"]

    async def submit(self, params: list) -> dict:
        return await self.client.request("mining.submit", params, timeout=10)

    async def shown(self, *, timeout: float) -> str:
        """The next text the pool shows this miner (client.show_message)."""
        message = await self.client.notification("client.show_message", timeout=timeout)
        self.texts.append(" ".join(map(str, message["params"])))
        return self.texts[-1]

    def messages(self) -> list[str]:
        """Every text the pool showed this miner so far."""
        return self.texts + [" ".join(map(str, m["params"])) for m in self.client.notifications
                             if m["method"] == "client.show_message"]


def assert_no_daemon_details(texts: list[str], net: RegtestNetwork, *extra: str) -> None:
    """No URL, host:port, RPC user or daemon error text in what miners were shown."""
    assert texts, "the miners were told nothing"
    for text in texts:
        assert text == PAUSE_MESSAGE, text
        assert "://" not in text and not re.search(r"\d+\.\d+\.\d+\.\d+|[\w.\-]+:\d{2,5}\b", text), text
        assert net.rpc_user not in text and net.rpc_password not in text, text
        for node in net.nodes:
            assert str(node.rpc_port) not in text, text
        for word in ("getblocktemplate", "bad-txns", "TestBlockValidity", "code -", "refused", "127.0.0.1",
                     *extra):
            assert word.lower() not in text.lower(), (word, text)


async def old_tip_rows(running, height: int) -> tuple[list, list]:
    """The shares stored at ``height`` and the block rows there, once the ledger wrote everything."""
    await running.blocks.wait()
    await running.ledger.flush()
    shares = await running.db.fetch(
        "SELECT created, credited_difficulty, is_block FROM shares WHERE height = $1 ORDER BY created",
        height)
    blocks = await running.db.fetch("SELECT hash, status, stale FROM blocks WHERE height = $1", height)
    return shares, blocks


async def test_tip_moved_elsewhere_and_no_template_credits_nothing_on_the_old_tip(net, tmp_path):
    """Node 1 mines block 431; node 0, the pool's daemon, then refuses every template (block 432
    needs a peg-in). The pool knows the new tip from polling and long polling: the old job is stale."""
    address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32")
    async with running_pool(pool_config(net, address, str(tmp_path))) as running:
        miner = await Miner.connect(running.server.ports[0], address)
        old_height = running.work.template.height
        assert old_height == MWEB_ACTIVATION_HEIGHT - 1
        assert (await miner.submit(miner.share(block=False)))["result"] is True  # the tip is still current

        new_tip = (await asyncio.to_thread(net.rpc, 1, "generatetoaddress", 1, address))[0]
        await asyncio.to_thread(net.wait_for_tip, new_tip)
        await miner.shown(timeout=30)  # the pool knows, has no template
        tip_known = time.time()
        assert running.server.work_available is False

        answers = [await miner.submit(miner.share(block=False)) for _ in range(3)]
        assert [a["error"][0] if a["error"] else a["result"] for a in answers] == [21, 21, 21], answers
        block_answer = await miner.submit(miner.share(block=True))  # on the old tip: still submitted
        assert block_answer["error"][0] == 21, block_answer
        assert running.server.rejected[Reject.STALE] >= 4

        # A peg-in makes block 432 possible: the template comes back, miners get clean work on the new tip.
        pegin = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "mweb")
        await asyncio.to_thread(net.rpc, 0, "sendtoaddress", pegin, Decimal(1))
        notify = (await miner.client.notification("mining.notify", timeout=30))["params"]
        assert notify[-1] is True and notify[1] != miner.job[1]
        miner.job = notify
        assert (await miner.submit(miner.share(block=False)))["result"] is True

        shares, blocks = await old_tip_rows(running, old_height)
        assert [row["credited_difficulty"] > 0 for row in shares] == [True], shares  # only the one before
        assert all(row["created"].timestamp() < tip_known for row in shares)
        stale = [row for row in blocks if row["stale"]]
        assert len(stale) == 1 and stale[0]["hash"] != new_tip, blocks
        assert not [row for row in blocks if row["status"] == "orphaned" and not row["stale"]], blocks
        assert_no_daemon_details(miner.messages(), net)
        assert running.work.unavailable.get("rpc_error", 0) >= 1  # the operator's metrics say why
        await miner.client.close()


async def test_own_block_then_no_template_credits_nothing_on_the_old_tip(net, tmp_path):
    """The pool's own block 431 is accepted and the next template is refused (the MWEB activation
    of the issue): the tip moved with the pool's own block, so the old job is stale at once, and the
    solutions found on it afterwards are stale candidates, not orphans of the pool."""
    address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32")
    async with running_pool(pool_config(net, address, str(tmp_path))) as running:
        miner = await Miner.connect(running.server.ports[0], address)
        old_height = running.work.template.height
        assert (await miner.submit(miner.share(block=False)))["result"] is True
        # The block and, right behind it, more work on the same job (sent at once, judged in one batch).
        pipelined = [miner.share(block=True), miner.share(block=False), miner.share(block=True)]
        ids = [next(miner.client.ids) for _ in pipelined]
        await miner.client.send_raw(b"".join(
            json.dumps({"id": msg_id, "method": "mining.submit", "params": params}).encode() + b"\n"
            for msg_id, params in zip(ids, pipelined)))
        answers = [await miner.client.response(msg_id, timeout=10) for msg_id in ids]
        assert answers[0]["result"] is True, answers
        assert [a["error"] and a["error"][0] for a in answers[1:]] == [21, 21], answers

        await miner.shown(timeout=30)  # no template for block 432
        await running.blocks.wait()
        own = next(record for record in running.blocks.results if not record.stale)
        assert own.status == "accepted" and own.height == old_height
        assert await asyncio.to_thread(net.rpc, 0, "getbestblockhash") == own.hash
        answers = [await miner.submit(miner.share(block=block)) for block in (False, True, False)]
        assert [a["error"] and a["error"][0] for a in answers] == [21, 21, 21], answers

        shares, blocks = await old_tip_rows(running, old_height)
        assert len(shares) == 2 and all(row["credited_difficulty"] > 0 for row in shares), shares
        assert [row["is_block"] for row in shares] == [False, True]
        assert {row["hash"]: row["stale"] for row in blocks if not row["stale"]} == {own.hash: False}
        assert len([row for row in blocks if row["stale"]]) == 2, blocks
        assert not [row for row in blocks if row["status"] == "orphaned" and not row["stale"]], blocks
        assert_no_daemon_details(miner.messages(), net)
        await miner.client.close()


async def test_no_template_no_valid_job(net, tmp_path):
    """The pool's daemon goes away: while no template can be had, no job is valid (nothing is
    credited or stored), and the miners get clean work when the daemon is back."""
    address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32")
    switch = Switch(net.nodes[0].rpc_port)
    await switch.up()
    url = net.rpc_url(0).replace(f":{net.nodes[0].rpc_port}/", f":{switch.port}/")
    try:
        async with running_pool(pool_config(net, address, str(tmp_path), url=url)) as running:
            miner = await Miner.connect(running.server.ports[0], address)
            height = running.work.template.height
            assert (await miner.submit(miner.share(block=False)))["result"] is True
            await switch.down()
            await miner.shown(timeout=60)
            paused_at = time.time()
            answers = [await miner.submit(miner.share(block=False)) for _ in range(3)]
            assert [a["error"] and a["error"][0] for a in answers] == [21, 21, 21], answers
            await switch.up()
            notify = (await miner.client.notification("mining.notify", timeout=30))["params"]
            resumed_at = time.time()
            assert notify[-1] is True and notify[0] != miner.job[0]
            miner.job = notify
            assert (await miner.submit(miner.share(block=False)))["result"] is True

            shares, _ = await old_tip_rows(running, height)
            assert len(shares) == 2, shares
            during = [row for row in shares if paused_at <= row["created"].timestamp() <= resumed_at]
            assert not during, shares
            assert_no_daemon_details(miner.messages(), net, "unreachable", "connect")
            assert running.work.unavailable.get("unreachable", 0) >= 1
            await miner.client.close()
    finally:
        await switch.down()
