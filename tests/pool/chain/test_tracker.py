"""The block tracker against real regtest litecoind and PostgreSQL: maturity, reorgs, outages."""
from __future__ import annotations

import asyncio

import pytest
from chainwork import job_from_node, solve_blocks

from payouts.fees import FeeConfig
from payouts.ledger import check_invariant
from payouts.processor import PayoutProcessor
from pool.chain.blocks import BlockSubmitter
from pool.chain.tracker import BlockTracker
from pool.devtools.regtest import RegtestNetwork
from pool.families import load_family
from pool.ledger.database import connect_pool
from pool.ledger.store import PostgresRecorder
from pool.rpc.client import DaemonClient

BITCOIN = load_family("bitcoin")

POOL = "litecoin-regtest"


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
        tracker = BlockTracker(daemon, db, "litecoin-regtest", family=BITCOIN, maturity=100)
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
        tracker = BlockTracker(daemon, db, "litecoin-regtest", family=BITCOIN, maturity=100, orphan_confirmations=5)
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
        tracker = BlockTracker(dead, db, "litecoin-regtest", family=BITCOIN, maturity=100)
        with pytest.raises(Exception):
            await tracker.check()
    assert await status(db, block_hash) == ("pending", 0)
    async with DaemonClient([net.rpc_url(0)]) as daemon:
        tracker = BlockTracker(daemon, db, "litecoin-regtest", family=BITCOIN, maturity=100)
        await tracker.check()
        assert await status(db, block_hash) == ("pending", 1)
        assert await status(db, "ee" * 32) == ("pending", 0)


class FinderSession:
    """Only the attribute BlockSubmitter reads from a Stratum session: the finder of the blocks."""

    def __init__(self, address: str) -> None:
        self.workers = {"w": (address, "rig")}


async def test_a_block_that_wins_after_a_reorg_is_credited_once(network, dsn, tmp_path):
    """At one height the pool has an accepted block A and a sibling B that the daemons answered
    ``inconclusive``.  A is invalidated and the chain grows on B: B is on the main chain, so it is
    never left orphaned; it is confirmed at maturity and credited once, and A is orphaned.

    Crash safety, step by step: every tracker pass derives each status from the chain again (the
    status update is one transaction per block; a tracker killed before its commit leaves the old
    status, and the next pass reaches the same verdict).  Crediting is a separate transaction that
    writes the journal, the balances, the report and ``credited`` together, for confirmed blocks
    only.  A pool killed between the tracker's ``confirmed`` and the credit (below: both connection
    pools closed, new ones opened) credits the block on its next run; a second run, or a tracker
    pass after the credit, changes nothing (a confirmed block is final, ``credited`` is checked under
    a row lock and a unique journal index refuses a second credit)."""
    net = network
    finder = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32")
    job = await asyncio.to_thread(job_from_node, net, "reorg")
    block_a, block_b = await asyncio.to_thread(solve_blocks, job, 2)
    a, b = block_a.block_hash_hex, block_b.block_hash_hex
    height = job.height
    db = await connect_pool(dsn, command_timeout=10)
    recorder = PostgresRecorder(db, POOL, tmp_path)
    await recorder.start()
    async with DaemonClient([net.rpc_url(0), net.rpc_url(1)]) as daemon:
        submitter = BlockSubmitter(daemon, recorder, family=BITCOIN, verify_interval_s=0.1, verify_attempts=10)
        submitter.submit(block_a, FinderSession(finder))
        await submitter.wait()
        submitter.submit(block_b, FinderSession(finder))
        await submitter.wait()
        await recorder.stop()
        assert [r.status for r in submitter.results] == ["accepted", "submitted"]
        assert "inconclusive" in submitter.results[1].detail
        # At submit time a block is pending (or rejected): orphaned is the tracker's verdict alone.
        assert await status(db, a) == ("pending", 0) and await status(db, b) == ("pending", 0)

        other = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32")
        for node in (0, 1):
            await asyncio.to_thread(net.rpc, node, "invalidateblock", a)
        await asyncio.to_thread(net.rpc, 0, "generatetoaddress", 30, other)
        await asyncio.to_thread(net.wait_for_height, height + 30, node=1)
        header = await asyncio.to_thread(net.rpc, 0, "getblockheader", b)
        assert header["confirmations"] == 31
        tracker = BlockTracker(daemon, db, POOL, family=BITCOIN, maturity=100, orphan_confirmations=10)
        await tracker.check()
        assert await status(db, a) == ("orphaned", -31)  # B holds the height 31 deep
        assert await status(db, b) == ("pending", 31)

        await asyncio.to_thread(net.rpc, 0, "generatetoaddress", 69, other)
        await asyncio.to_thread(net.wait_for_height, height + 99, node=1)
        await tracker.check()
        assert await status(db, b) == ("confirmed", 100)
    # The pool dies here, after the tracker's commit and before any credit.
    await db.close()

    db = await connect_pool(dsn, command_timeout=10)
    try:
        processor = PayoutProcessor(db, POOL, "solo", FeeConfig("1", []))
        assert (await processor.run_once()).credited == [height]
        assert (await processor.run_once()).credited == []
        async with DaemonClient([net.rpc_url(0)]) as daemon:
            tracker = BlockTracker(daemon, db, POOL, family=BITCOIN, maturity=100, orphan_confirmations=10)
            await tracker.check()
        assert await status(db, b) == ("confirmed", 100) and (await status(db, a))[0] == "orphaned"
        assert (await processor.run_once()).credited == []
        reward = await db.fetchval("SELECT reward FROM blocks WHERE hash = $1", b)
        journal = await db.fetch("SELECT address, amount, block_hash FROM journal ORDER BY address")
        assert {row["block_hash"] for row in journal} == {b}
        assert {row["address"]: row["amount"] for row in journal} == {
            finder: reward - reward // 100, "pool": reward // 100}
        assert not await db.fetchval("SELECT credited FROM blocks WHERE hash = $1", a)
        async with db.acquire() as connection:
            assert await check_invariant(connection, POOL) == []
    finally:
        await db.close()
        for node in (0, 1):
            await asyncio.to_thread(net.rpc, node, "reconsiderblock", a)
