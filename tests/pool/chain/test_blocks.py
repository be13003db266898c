"""Block submission to every daemon, verified on the chain (real regtest litecoind)."""
import asyncio

import pytest
from chainwork import job_from_node, solve

from pool.chain.blocks import BlockSubmitter
from pool.chain.daemon import DaemonClient
from pool.devtools.regtest import RegtestNetwork
from pool.ledger.recorder import LogRecorder


class FakeSession:
    """Only the attribute BlockSubmitter reads from a Stratum session."""
    workers = {"w": ("rltc1qexample", "rig")}


@pytest.fixture(scope="module")
def network():
    with RegtestNetwork() as net:
        net.generate(101)
        yield net


async def submit(net, result, urls=None) -> list:
    recorder = LogRecorder()
    accepted = []
    async with DaemonClient(urls or [net.rpc_url(0), net.rpc_url(1)], retry_max_time=2) as daemon:
        submitter = BlockSubmitter(daemon, recorder, on_accepted=lambda: accepted.append(1), verify_interval_s=0.1,
                                   verify_attempts=10)
        submitter.submit(result, FakeSession())
        await submitter.wait()
    assert recorder.blocks[0].status == "candidate"  # reported before anything was sent
    return submitter.results, accepted


async def test_block_goes_to_every_daemon_and_is_verified(network):
    result = await asyncio.to_thread(lambda: solve(job_from_node(network, "b1")))
    results, accepted = await submit(network, result)
    assert results[0].status == "accepted" and accepted == [1]
    assert results[0].detail.count("accepted") + results[0].detail.count("duplicate") + \
        results[0].detail.count("inconclusive") == 2  # one verdict per daemon
    for node in (0, 1):
        assert await asyncio.to_thread(network.rpc, node, "getblockhash", result.job.height) == result.block_hash_hex


async def test_duplicate_is_checked_not_rejected(network):
    result = await asyncio.to_thread(lambda: solve(job_from_node(network, "b2")))
    await asyncio.to_thread(network.rpc, 0, "submitblock", result.block.hex())
    await asyncio.to_thread(network.wait_for_tip, result.block_hash_hex)
    results, _ = await submit(network, result)
    assert "duplicate" in results[0].detail
    assert results[0].status == "accepted"


async def test_stale_solution_is_submitted_not_orphaned(network):
    """The chain moved on without it: the daemons keep it on a side branch.  Whether it ends
    orphaned is the block tracker's verdict, by its hash, never the submitter's."""
    job = await asyncio.to_thread(job_from_node, network, "b3")
    result = await asyncio.to_thread(solve, job)
    await asyncio.to_thread(network.generate, 2)
    results, accepted = await submit(network, result)
    assert results[0].status == "submitted" and results[0].detail == "inconclusive, inconclusive"
    assert not accepted


async def test_invalid_block_is_rejected(network):
    job = await asyncio.to_thread(job_from_node, network, "b4")
    share = await asyncio.to_thread(solve, job, want_block=False)
    share.block = job.serialize_block(share.header, job.coinbase(bytes.fromhex("0a0b0c0d"), share.extranonce2))
    results, accepted = await submit(network, share)
    assert results[0].status == "rejected" and "high-hash" in results[0].detail and not accepted


async def test_unreachable_daemon_is_retried_and_the_block_still_lands(network):
    result = await asyncio.to_thread(lambda: solve(job_from_node(network, "b5")))
    dead = "http://u:p@127.0.0.1:9/"
    results, accepted = await submit(network, result, urls=[dead, network.rpc_url(0)])
    assert results[0].status == "accepted" and accepted == [1]
    assert "error" in results[0].detail
