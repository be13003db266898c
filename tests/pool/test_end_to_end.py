"""The pool against real litecoind regtest nodes: blocks built by the pool are accepted.

- a block built from a job (coinbase, merkle branch, 0x01 + MWEB bytes) is accepted by
  submitblock, before and after MWEB activation, with segwit and MWEB transactions;
- the demo miner finds at least 20 blocks through the pool over Stratum/TCP from the MWEB
  activation block on; every one is on the main chain of both nodes; the pool never pauses its
  miners and nothing logs a warning;
- a new block on the other node reaches miners as a clean job; the -blocknotify hook works;
- the daemon going away pauses work, its return resumes it.
"""
from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time

import pytest
from chainwork import job_from_node
from chainwork import solve as solve_share
from stratum_client import Client
from tcp_switch import Switch

from pool.app import run_pool
from pool.config import parse_config
from pool.devtools.devnet import devnet_config, run_devnet
from pool.devtools.regtest import MWEB_ACTIVATION_HEIGHT, RegtestNetwork
from pool.rpc.wire import DaemonError
from share_validator.bitcoin.coins import get_coin
from share_validator.bitcoin.job import Job


def solve(job: Job) -> bytes:
    return solve_share(job).block

COIN = get_coin("litecoin-regtest")


@pytest.fixture(scope="module")
def network():
    with RegtestNetwork() as net:
        net.generate(101)  # out of initial block download, first coinbase mature
        yield net


def test_blocks_built_by_jobs_are_accepted(network):
    net = network
    segwit_txid = net.send_segwit_tx()
    net.wait_for_template(lambda t: any(tx["txid"] == segwit_txid for tx in t["transactions"]))
    job = job_from_node(net, "a1")
    assert job.template.mweb is None and len(job.template.txids) >= 1
    block = solve(job)
    # Proposal mode checks the block without the coinbase witness filled in for us.
    proposal = job.serialize_block(block[:80], block[81:81 + len(job.coinb1) + 8 + len(job.coinb2)],
                                   coinbase_witness=True)
    assert net.rpc(0, "getblocktemplate", {"mode": "proposal", "data": proposal.hex(), "rules": ["mweb", "segwit"]}) is None
    assert net.rpc(0, "submitblock", block.hex()) is None
    assert net.rpc(0, "getblockhash", job.height) == COIN.block_hash(block[:80])[::-1].hex()
    assert net.rpc(0, "gettransaction", segwit_txid)["confirmations"] == 1

    net.activate_mweb()
    segwit_txid = net.send_segwit_tx()
    mweb_txid = net.send_mweb_tx()
    net.wait_for_template(lambda t: any(tx["txid"] == segwit_txid for tx in t["transactions"]))
    job = job_from_node(net, "a2")
    assert job.template.mweb is not None and job.height > MWEB_ACTIVATION_HEIGHT
    block = solve(job)
    assert block.endswith(b"\x01" + job.template.mweb)
    assert net.rpc(0, "submitblock", block.hex()) is None
    net.wait_for_tip(COIN.block_hash(block[:80])[::-1].hex())
    assert net.rpc(0, "gettransaction", segwit_txid)["confirmations"] == 1
    assert net.rpc(0, "gettransaction", mweb_txid)["confirmations"] == 1
    # Without the MWEB bytes the daemon refuses the block ("mweb-missing" or a decode failure).
    job2 = job_from_node(net, "a3")
    bare = solve(job2)[: -len(job2.template.mweb) - 1]
    try:
        verdict = net.rpc(0, "submitblock", bare.hex())
    except DaemonError as exc:
        verdict = exc.code
    assert verdict in ("mweb-missing", -22)


async def test_demo_miner_finds_20_blocks_from_mweb_activation_on(caplog):
    net = RegtestNetwork()
    await asyncio.to_thread(net.start)
    try:
        lines: list[str] = []
        seen_by_api: dict = {}

        async def read_stats_page(report) -> None:
            """The devnet's stats page and API, while it runs: the page loads, the API counts its blocks."""
            import aiohttp

            base = f"http://127.0.0.1:{report.api_port}"
            async with aiohttp.ClientSession() as session:
                async with session.get(base + "/") as response:
                    seen_by_api["page"] = response.status, await response.text()
                async with asyncio.timeout(75):  # the 5 min hashrate counts complete minutes only
                    while True:
                        async with session.get(base + "/api/v1/pools/litecoin-regtest") as response:
                            seen_by_api["pool"] = await response.json()
                        if seen_by_api["pool"]["blocks_found"] >= 20 and seen_by_api["pool"]["hashrate"]["5m"] > 0:
                            break
                        await asyncio.sleep(0.5)

        report = await run_devnet(net, blocks_wanted=20, timeout_s=300, announce=lines.append,
                                  before_stop=read_stats_page)
        heights = sorted(record.height for record in report.accepted)
        print("\n".join(lines))
        assert len(heights) >= 20
        assert heights[0] == MWEB_ACTIVATION_HEIGHT, heights  # the pool mined the activation block
        assert report.mweb_pegged_at == MWEB_ACTIVATION_HEIGHT - 1
        # No getblocktemplate failure around activation (bad-txns-vin-empty paused the miners) and
        # block candidates logged at INFO: a normal run shows no warning.
        warnings = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
        assert not warnings, warnings
        assert any(line.startswith(f"stats page: http://127.0.0.1:{report.api_port}/") for line in lines)
        status, page = seen_by_api["page"]
        assert status == 200 and "<html" in page.lower()
        assert seen_by_api["pool"]["last_block"]["height"] >= heights[-1] - 1
        for record in report.accepted:
            for node in (0, 1):
                assert await asyncio.to_thread(net.rpc, node, "getblockhash", record.height) == record.hash
        # Blocks after activation carried transactions of both kinds from the mempool.
        confirmed_segwit = [t for t in report.segwit_txids
                            if (await asyncio.to_thread(net.rpc, 0, "gettransaction", t))["confirmations"] > 0]
        confirmed_mweb = [t for t in report.mweb_txids
                          if (await asyncio.to_thread(net.rpc, 0, "gettransaction", t))["confirmations"] > 0]
        assert confirmed_segwit and confirmed_mweb, (report.segwit_txids, report.mweb_txids)
        # The ledger holds every share the pool accepted (the miner saw at most that many answers),
        # and every accepted block as a pending block row.
        assert report.ledger_shares == report.pool_accepted >= report.miner_accepted > 0
        for record in report.accepted:
            assert report.ledger_blocks[record.hash] in ("pending", "confirmed")
        # No orphan of the pool's own making: every block it found on a current tip is on the chain;
        # solutions found after the tip had moved are stale candidates, apart from the orphans.
        assert not [r for r in report.other if not r.stale], report.other
        orphans = [block_hash for block_hash, status in report.ledger_blocks.items()
                   if status == "orphaned" and block_hash not in report.ledger_stale]
        assert not orphans, orphans
        print(f"{len(report.accepted)} blocks, {len(report.ledger_stale)} stale candidates")
        post = [r for r in report.accepted if r.height > MWEB_ACTIVATION_HEIGHT]
        assert post
        block = await asyncio.to_thread(net.rpc, 0, "getblock", post[-1].hash, 2)
        assert "mweb" in block or block["tx"][-1]["hex"].startswith("020000000008")
    finally:
        await asyncio.to_thread(net.stop)


class PoolUnderTest:
    def __init__(self, config):
        assert config.data_dir != "quarry-data", "give the pool a temporary data_dir"
        self.config = config
        self.shutdown = asyncio.Event()
        self.ready = asyncio.get_running_loop().create_future()
        self.task = asyncio.ensure_future(run_pool(config, self.shutdown, on_ready=self.ready.set_result))

    async def __aenter__(self):
        await asyncio.wait({self.ready, self.task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            self.task.result()  # the pool failed to start: show why
        self.running = self.ready.result()
        return self.running

    async def __aexit__(self, *exc):
        self.shutdown.set()
        await asyncio.wait_for(self.task, 30)


async def miner_client(running, address) -> tuple[Client, list]:
    client = await Client.connect(running.server.ports[0])
    await client.request("mining.subscribe", ["t"])
    assert (await client.request("mining.authorize", [f"{address}.t", "x"]))["result"] is True
    await client.notification("mining.set_difficulty")
    job = (await client.notification("mining.notify", timeout=10))["params"]
    return client, job


async def test_new_block_elsewhere_reaches_miners_as_clean_job(network, tmp_path):
    net = network
    address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32")
    config = devnet_config(net, address, data_dir=str(tmp_path))
    async with PoolUnderTest(config) as running:
        client, job = await miner_client(running, address)
        delays = []
        for _ in range(3):
            started = time.monotonic()
            new_hash = (await asyncio.to_thread(net.rpc, 1, "generatetoaddress", 1, address))[0]
            notify = (await client.notification("mining.notify", timeout=10))["params"]
            delays.append((time.monotonic() - started) * 1000)
            assert notify[-1] is True
            assert notify[1] != job[1]
            job = notify
            assert running.work.template.prevhash_hex == new_hash
        print(f"new block on node 1 -> clean job at the miner: {', '.join(f'{d:.0f} ms' for d in delays)}")
        await client.close()


async def test_blocknotify_hook(network, tmp_path):
    net = network
    address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32")
    config = parse_config({
        "pool": {"coin": "litecoin-regtest", "address": address, "data_dir": str(tmp_path)},
        "daemons": [{"url": net.rpc_url(0)}],
        "stratum": {"ports": [{"port": 0, "host": "127.0.0.1", "difficulty": 1}]},
        # no long poll, polling once a minute: only the hook can bring the new block quickly
        "work": {"longpoll": False, "poll_interval_s": 60, "template_refresh_s": 600,
                 "notify_listen": "127.0.0.1:0", "notify_secret": "s3cret-s3cret-s3cret"},
    })
    async with PoolUnderTest(config) as running:
        client, job = await miner_client(running, address)
        url = f"http://127.0.0.1:{running.work.notify_port}"
        await asyncio.to_thread(net.rpc, 0, "generatetoaddress", 1, address)
        bad = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "pool.cli", "notify", "--url", url,
                                                       "--secret", "wrong"], capture_output=True)
        assert bad.returncode == 1
        with pytest.raises(TimeoutError):
            await client.notification("mining.notify", timeout=1.0)
        good = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "pool.cli", "notify", "--url", url,
                                                        "--secret", "s3cret-s3cret-s3cret", "somehash"])
        assert good.returncode == 0
        notify = (await client.notification("mining.notify", timeout=5))["params"]
        assert notify[-1] is True and notify[1] != job[1]
        assert running.work.notices["notify"] >= 1

        # Operator commands over the same loopback endpoint.
        def pool_cli(*args):
            return subprocess.run([sys.executable, "-m", "pool.cli", *args, "--url", url, "--secret",
                                   "s3cret-s3cret-s3cret"], capture_output=True, text=True)

        assert (await asyncio.to_thread(pool_cli, "message", "maintenance at noon")).returncode == 0
        assert (await client.notification("client.show_message"))["params"] == ["maintenance at noon"]
        done = await asyncio.to_thread(pool_cli, "reconnect", "--host", "pool2.example", "--port", "3334",
                                       "--wait", "5")
        assert done.returncode == 0 and '"miners": 1' in done.stdout
        assert (await client.notification("client.reconnect"))["params"] == ["pool2.example", 3334, 5]
        bad = await asyncio.to_thread(pool_cli, "reconnect", "--host", "x" * 300)
        assert bad.returncode == 1 and "400" in bad.stderr
        empty = await asyncio.to_thread(pool_cli, "message", "")
        assert empty.returncode == 1 and "400" in empty.stderr
        await client.close()


async def test_daemon_away_pauses_work_and_recovers(network, tmp_path):
    net = network
    address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32")
    switch = Switch(net.nodes[0].rpc_port)
    await switch.up()
    url = net.rpc_url(0).replace(f":{net.nodes[0].rpc_port}/", f":{switch.port}/")
    config = parse_config({
        "pool": {"coin": "litecoin-regtest", "address": address, "data_dir": str(tmp_path)},
        "daemons": [{"url": url}],
        "stratum": {"ports": [{"port": 0, "host": "127.0.0.1", "difficulty": 1}]},
        "work": {"poll_interval_s": 0.2},
    })
    async with PoolUnderTest(config) as running:
        client, job = await miner_client(running, address)
        await switch.down()
        message = await client.notification("client.show_message", timeout=30)
        assert message["params"] == ["the pool is waiting for its coin daemon; mining resumes automatically"]
        assert running.server.work_available is False
        await asyncio.to_thread(net.rpc, 0, "generatetoaddress", 1, address)
        await switch.up()
        notify = (await client.notification("mining.notify", timeout=30))["params"]
        assert notify[-1] is True and notify[1] != job[1]
        assert running.server.work_available is True
        await client.close()
    await switch.down()
