"""Block submission to every daemon, verified on the chain (real regtest litecoind)."""
import asyncio
import hashlib
import logging
import signal
import sys
import time

import pytest
from chainwork import job_from_node, solve, solve_blocks
from rpc_proxy import HoldingProxy

from pool.chain.blocks import BlockSubmitter
from pool.devtools.miner import run_miner
from pool.devtools.regtest import RegtestNetwork
from pool.families import load_family
from pool.ledger.recorder import LogRecorder
from pool.localnet import free_loopback_ports
from pool.rpc.client import DaemonClient

BITCOIN = load_family("bitcoin")


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
        submitter = BlockSubmitter(daemon, recorder, family=BITCOIN, on_accepted=lambda: accepted.append(1), verify_interval_s=0.1,
                                   verify_attempts=10)
        submitter.submit(result, FakeSession())
        await submitter.wait()
    assert recorder.blocks[0].status == "candidate"  # reported before anything was sent
    return submitter.results, accepted


async def test_block_goes_to_every_daemon_and_is_verified(network, caplog):
    caplog.set_level(logging.DEBUG)
    result = await asyncio.to_thread(lambda: solve(job_from_node(network, "b1")))
    results, accepted = await submit(network, result)
    # One line in the pool's log names the block's height, hash and finder, once.
    lines = [r for r in caplog.records
             if r.levelno >= logging.INFO and result.block_hash_hex in r.getMessage()]
    assert [r.getMessage().split(" (")[0] for r in lines] == [
        f"block {result.job.height} {result.block_hash_hex} found by rltc1qexample.rig: accepted"]
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


# -- priority, deadlines and the shutdown drain ------------------------------------------------------


def block_hash(block_hex: str) -> str:
    return hashlib.sha256(hashlib.sha256(bytes.fromhex(block_hex[:160])).digest()).digest()[::-1].hex()


class RecordingDaemon(DaemonClient):
    """The real client; it notes the order in which block submissions leave."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    async def call_all(self, method, *params, **kwargs):
        if method == "submitblock":
            self.sent.append(block_hash(params[0]))
        return await super().call_all(method, *params, **kwargs)


async def wait_for_result(submitter, block_hash_hex: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in submitter.results:
            if record.hash == block_hash_hex:
                return record
        await asyncio.sleep(0.005)
    raise AssertionError(f"no outcome for {block_hash_hex} within {timeout} s")


async def test_a_candidate_on_the_tip_is_sent_before_older_queued_ones(network):
    """Hundreds of candidates of an old height queued (as on regtest, where most shares are blocks),
    then one on the current tip: it is sent at once (at most one older submission is under way),
    accepted, and every older one is still sent afterwards."""
    stale = await asyncio.to_thread(lambda: solve_blocks(job_from_node(network, "q1"), 300))
    await asyncio.to_thread(network.generate, 2)  # their height is decided
    fresh = await asyncio.to_thread(lambda: solve(job_from_node(network, "q2")))
    recorder = LogRecorder()
    async with RecordingDaemon([network.rpc_url(0), network.rpc_url(1)], retry_max_time=2) as daemon:
        submitter = BlockSubmitter(daemon, recorder, family=BITCOIN, verify_interval_s=0.1, )
        for result in stale:
            submitter.submit(result, FakeSession())
        started = time.monotonic()
        submitter.submit(fresh, FakeSession())
        record = await wait_for_result(submitter, fresh.block_hash_hex)
        latency = time.monotonic() - started
        await submitter.wait()
    assert daemon.sent.index(fresh.block_hash_hex) <= 1, daemon.sent.index(fresh.block_hash_hex)
    assert record.status == "accepted" and latency < 2.0, (record, latency)
    assert sum(1 for block in recorder.blocks if block.status == "candidate") == 301
    outcomes = {r.hash: r.status for r in submitter.results}
    assert len(daemon.sent) == 301 and {outcomes[r.block_hash_hex] for r in stale} == {"submitted"}


async def test_candidates_of_a_decided_height_have_a_deadline_and_stay_recorded(network):
    """A daemon that never answers: the first late candidate is cut at its deadline, the others
    are not sent once theirs has passed; all of them stay recorded."""
    stale = await asyncio.to_thread(lambda: solve_blocks(job_from_node(network, "d1"), 50))
    await asyncio.to_thread(network.generate, 1)
    tip = await asyncio.to_thread(network.height)
    node = f"http://127.0.0.1:{network.nodes[0].rpc_port}/"
    recorder = LogRecorder()
    async with HoldingProxy(node, hold={"submitblock"}) as proxy, \
            DaemonClient([proxy.url(network.rpc_user, network.rpc_password)], retry_max_time=2) as daemon:
        submitter = BlockSubmitter(daemon, recorder, family=BITCOIN, tip_height=lambda: tip, late_deadline_s=1.0)
        started = time.monotonic()
        for result in stale:
            submitter.submit(result, FakeSession())
        await submitter.wait()
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3.0, elapsed
    assert proxy.held == ["submitblock"]  # one sent; nothing else waited behind it past the deadline
    outcomes = {r.hash: r for r in submitter.results}
    assert outcomes[stale[0].block_hash_hex].status == "submitted"  # sent: the node may have it
    assert [outcomes[r.block_hash_hex].status for r in stale[1:]] == ["unsent"] * 49
    assert all("deadline" in r.detail for r in submitter.results)
    assert [b.hash for b in recorder.blocks if b.status == "candidate"] == [r.block_hash_hex for r in stale]


async def test_drain_is_bounded_and_says_what_it_left(network, caplog):
    stale = await asyncio.to_thread(lambda: solve_blocks(job_from_node(network, "dr1"), 40))
    await asyncio.to_thread(network.generate, 1)
    tip = await asyncio.to_thread(network.height)
    fresh = await asyncio.to_thread(lambda: solve(job_from_node(network, "dr2")))
    node = f"http://127.0.0.1:{network.nodes[0].rpc_port}/"
    caplog.set_level(logging.INFO, logger="pool.blocks")
    async with HoldingProxy(node, hold={"submitblock"}) as proxy, \
            DaemonClient([proxy.url(network.rpc_user, network.rpc_password)]) as daemon:
        submitter = BlockSubmitter(daemon, LogRecorder(), family=BITCOIN, tip_height=lambda: tip, late_deadline_s=60)
        for result in stale:
            submitter.submit(result, FakeSession())
        submitter.submit(fresh, FakeSession())
        for _ in range(200):
            if len(proxy.held) == 2:
                break
            await asyncio.sleep(0.01)
        started = time.monotonic()
        left = await submitter.drain(1.0)
        elapsed = time.monotonic() - started
    assert proxy.held == ["submitblock"] * 2  # the fresh one and the first late one, both held
    assert 0.9 < elapsed < 1.6, elapsed
    assert len(left.unsent) == 39 and {r.hash for r in left.unanswered} == {fresh.block_hash_hex,
                                                                          stale[0].block_hash_hex}
    text = caplog.text
    assert "39 candidates unsent" in text and "2 submissions unanswered" in text
    assert fresh.block_hash_hex in text


async def test_sigterm_drains_block_submissions_within_the_configured_time(network, dsn, tmp_path):
    """``pool run`` on a daemon that takes every block but never answers submitblock, with
    candidates piling up (every share is a block): mining goes on, and SIGTERM ends the pool within
    ``blocks.shutdown_drain_s`` plus the rest of the shutdown; the log says what was left."""
    address = await asyncio.to_thread(network.rpc, 0, "getnewaddress", "", "bech32")
    node = f"http://127.0.0.1:{network.nodes[0].rpc_port}/"
    port = free_loopback_ports(1)[0]
    async with HoldingProxy(node, hold={"submitblock"}) as proxy:
        config = tmp_path / "pool.toml"
        config.write_text(f"""
[pool]
coin = "litecoin-regtest"
address = "{address}"
data_dir = "{tmp_path}"
[[daemons]]
url = "{proxy.url(network.rpc_user, network.rpc_password)}"
[stratum]
ports = [{{ port = {port}, host = "127.0.0.1", difficulty = 0.001, min_difficulty = 0.001, vardiff = false }}]
[work]
poll_interval_s = 0.1
[database]
dsn = "{dsn}"
[blocks]
shutdown_drain_s = 2
""")
        log = open(tmp_path / "pool.log", "wb")
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "pool.cli", "run", "-c",
                                                       str(config), stdout=log, stderr=log)
        miner = None
        try:
            for _ in range(300):
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                except OSError:
                    assert process.returncode is None, (tmp_path / "pool.log").read_text()
                    await asyncio.sleep(0.1)
            miner = asyncio.ensure_future(run_miner("127.0.0.1", port, f"{address}.rig", algorithm="scrypt",
                                                   duty_cycle=0.3))
            # More unanswered submissions than the daemon client's 8 concurrent requests: they do not
            # take its slots, so templates keep coming (one submission under way per new height).
            for _ in range(600):
                if len(proxy.held) >= 10:
                    break
                await asyncio.sleep(0.1)
            assert len(proxy.held) >= 10, (tmp_path / "pool.log").read_text()[-3000:]
            await asyncio.sleep(1.0)  # more candidates queue behind the held ones
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            returncode = await asyncio.wait_for(process.wait(), 60)
            elapsed = time.monotonic() - started
        finally:
            if miner is not None:
                miner.cancel()
                await asyncio.gather(miner, return_exceptions=True)
            if process.returncode is None:
                process.kill()
                await process.wait()
            log.close()
    text = (tmp_path / "pool.log").read_text()
    assert returncode == 0, text[-3000:]
    assert elapsed < 2 + 6, (elapsed, text[-3000:])
    assert "submissions unanswered" in text, text[-3000:]
