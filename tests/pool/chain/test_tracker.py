"""The block tracker against real regtest litecoind and PostgreSQL: maturity, reorgs, outages."""
from __future__ import annotations

import asyncio

import pytest

from pool.chain.daemon import DaemonClient
from pool.chain.tracker import BlockTracker
from pool.devtools.regtest import RegtestNetwork


@pytest.fixture(scope="module")
def network():
    with RegtestNetwork() as net:
        net.generate(101)
        yield net


async def add_block(db, height: int, block_hash: str) -> None:
    await db.execute("INSERT INTO blocks (pool, height, hash, reward) VALUES ('litecoin-regtest', $1, $2, 1)",
                     height, block_hash)


async def status(db, block_hash: str) -> tuple[str, int]:
    row = await db.fetchrow("SELECT status, confirmations FROM blocks WHERE hash = $1", block_hash)
    return row["status"], row["confirmations"]


async def test_pending_until_maturity_then_confirmed(network, db):
    net = network
    block_hash = (await asyncio.to_thread(net.generate, 1))[0]
    height = await asyncio.to_thread(net.height)
    await add_block(db, height, block_hash)
    async with DaemonClient([net.rpc_url(0)]) as daemon:
        tracker = BlockTracker(daemon, db, "litecoin-regtest", maturity=100)
        await tracker.check()
        assert await status(db, block_hash) == ("pending", 1)
        await asyncio.to_thread(net.generate, 98)
        await tracker.check()
        assert await status(db, block_hash) == ("pending", 99)
        await asyncio.to_thread(net.generate, 1)
        await tracker.check()
        assert await status(db, block_hash) == ("confirmed", 100)
        await asyncio.to_thread(net.generate, 5)
        assert await tracker.check() == 0  # confirmed is final


async def test_reorg_returns_to_pending_then_orphans(network, db):
    net = network
    ours = (await asyncio.to_thread(net.generate, 1))[0]
    height = await asyncio.to_thread(net.height)
    await add_block(db, height, ours)
    await asyncio.to_thread(net.generate, 3)
    async with DaemonClient([net.rpc_url(0)]) as daemon:
        tracker = BlockTracker(daemon, db, "litecoin-regtest", maturity=100, orphan_confirmations=5)
        await tracker.check()
        assert await status(db, ours) == ("pending", 4)
        # Another chain replaces ours: a few blocks deep it is not yet called orphaned ...
        for node in (0, 1):
            await asyncio.to_thread(net.rpc, node, "invalidateblock", ours)
        address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32")
        await asyncio.to_thread(net.rpc, 0, "generatetoaddress", 2, address)
        await tracker.check()
        assert await status(db, ours) == ("pending", 0)
        # ... our block comes back (reconsider): pending with its confirmations again ...
        for node in (0, 1):
            await asyncio.to_thread(net.rpc, node, "reconsiderblock", ours)
        await asyncio.to_thread(net.generate, 2)  # ours now has the longer chain
        await tracker.check()
        state, confirmations = await status(db, ours)
        assert state == "pending" and confirmations >= 4
        # ... and is finally beaten for good: orphaned once the other block is deep enough.
        for node in (0, 1):
            await asyncio.to_thread(net.rpc, node, "invalidateblock", ours)
        await asyncio.to_thread(net.rpc, 0, "generatetoaddress", 10, address)
        await tracker.check()
        assert (await status(db, ours))[0] == "orphaned"
        for node in (0, 1):
            await asyncio.to_thread(net.rpc, node, "reconsiderblock", ours)


async def test_daemon_errors_change_nothing(network, db):
    net = network
    block_hash = (await asyncio.to_thread(net.generate, 1))[0]
    height = await asyncio.to_thread(net.height)
    await add_block(db, height, block_hash)
    await add_block(db, height + 50, "ee" * 32)  # above the tip: getblockhash -8, no change
    async with DaemonClient(["http://u:p@127.0.0.1:9/"], max_attempts=2, retry_max_time=0.5) as dead:
        tracker = BlockTracker(dead, db, "litecoin-regtest", maturity=100)
        with pytest.raises(Exception):
            await tracker.check()
    assert await status(db, block_hash) == ("pending", 0)
    async with DaemonClient([net.rpc_url(0)]) as daemon:
        tracker = BlockTracker(daemon, db, "litecoin-regtest", maturity=100)
        await tracker.check()
        assert await status(db, block_hash) == ("pending", 1)
        assert await status(db, "ee" * 32) == ("pending", 0)
