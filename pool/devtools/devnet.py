"""``pool devnet``: a whole pool on a private Litecoin regtest network, on this machine.

Starts two connected regtest ``litecoind`` nodes in a temporary directory on loopback
ports, pre-mines to height 431, just below MWEB activation, and pegs coins into MWEB there
so that block 432 can be mined; then starts the pool and the built-in demo CPU miner
speaking Stratum over TCP, keeps a segwit and an MWEB transaction in the mempool, and
shows blocks as they are found. The pool's first block is the MWEB activation block.

Why the peg-in comes before the pool (litecoind 0.21's behaviour): the first MWEB block's
HogEx (integrating transaction) has no previous HogEx to spend, so its inputs are only the
block's peg-ins. With no peg-in in the mempool, litecoind's block assembler still adds the
HogEx, without inputs, and every ``getblocktemplate`` for block 432 fails with
``CreateNewBlock: TestBlockValidity failed: bad-txns-vin-empty``. And its mempool refuses
MWEB transactions (``mweb-before-activation``) until the tip is block 431, so a peg-in
cannot wait in the mempool for the tip to get there. A pool that mines block 431 itself
asks for the next template the moment 431 is its tip, before anyone can peg in, and gets
that error: it has no work to hand out, and pauses its miners, until the peg-in arrives.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from pool.app import RunningPool, run_pool
from pool.config import PoolConfig, parse_config
from pool.devtools.regtest import MWEB_ACTIVATION_HEIGHT, RegtestNetwork

logger = logging.getLogger(__name__)


@dataclass
class DevnetReport:
    accepted: list = field(default_factory=list)  # BlockRecords
    other: list = field(default_factory=list)
    miner_stats: dict = field(default_factory=dict)
    mweb_pegged_at: int | None = None
    segwit_txids: list = field(default_factory=list)
    mweb_txids: list = field(default_factory=list)
    stratum_port: int = 0
    miner_accepted: int = 0
    pool_accepted: int = 0
    ledger_shares: int = 0
    ledger_blocks: dict = field(default_factory=dict)  # hash -> status
    ledger_stale: set = field(default_factory=set)  # hashes of the stale candidates (found on a stale tip)
    api_port: int | None = None


def devnet_config(net: RegtestNetwork, address: str, *, stratum_port: int = 0, difficulty: float = 0.05,
                  share_log: str = "", data_dir: str | None = None, api_port: int = 0) -> PoolConfig:
    return parse_config({
        "pool": {"coin": "litecoin-regtest", "address": address, "pool_tag": "/quarry-devnet/",
                 "share_log": share_log, "data_dir": data_dir or str(net.base_dir / "pool")},
        # Work and blocks go through node 0 only; node 1 follows over p2p.  With every share a block
        # on regtest, stale solutions submitted to both nodes made them take different sides of a
        # race and reorganise across MWEB activation, which crashes litecoind 0.21.2.1's node
        # (ConnectBlock ... mweb-connect-failed, BLOCK_SUMS).
        "daemons": [{"url": net.rpc_url(0)}],
        "stratum": {
            "ports": [{"port": stratum_port, "host": "127.0.0.1", "difficulty": difficulty,
                       "min_difficulty": difficulty / 64, "max_difficulty": difficulty * 64,
                       "target_share_s": 2.0, "retarget_s": 20.0}],
            "handshake_timeout_s": 60.0,
        },
        "work": {"template_refresh_s": 5.0, "poll_interval_s": 0.1},
        "blocks": {"tracker_interval_s": 2.0},
        # The stats page and its API, served by run_devnet itself (api.enabled starts a process from a
        # config file, which the devnet does not have).
        "api": {"host": "127.0.0.1", "port": api_port, "rate_limit_per_s": 0, "cache_s": 2.0},
    }, source="devnet")


async def run_devnet(net: RegtestNetwork, *, blocks_wanted: int | None, miners: int = 1,
                     difficulty: float = 0.05, timeout_s: float | None = None, stratum_port: int = 0,
                     share_log: str = "", announce=print, api_port: int | None = 0,
                     before_stop: Callable[[DevnetReport], Awaitable[None]] | None = None) -> DevnetReport:
    """Mine through the pool until ``blocks_wanted`` blocks are accepted (None: until cancelled), with
    the stats page and API on ``api_port`` (0: a free port; None: none). ``before_stop`` is awaited
    with the report while everything still runs."""
    from pool.api.app import run_api
    from pool.devtools.miner import run_miner

    report = DevnetReport()
    await _premine_and_peg_in(net, report, announce)
    address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "pool", "bech32")
    config = devnet_config(net, address, stratum_port=stratum_port, difficulty=difficulty, share_log=share_log,
                           api_port=api_port or 0)
    shutdown = asyncio.Event()
    ready: asyncio.Future[RunningPool] = asyncio.get_running_loop().create_future()
    pool_task = asyncio.ensure_future(run_pool(config, shutdown, on_ready=ready.set_result))
    api_task: asyncio.Future | None = None
    try:
        await asyncio.wait({ready, pool_task}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
        if pool_task.done():
            pool_task.result()  # the pool failed to start: show why
        running = ready.result()
        port = running.server.ports[0]
        report.stratum_port = port
        announce(f"pool: stratum+tcp://127.0.0.1:{port}  coin litecoin-regtest  payout {address}")
        if api_port is not None and running.db is not None:
            dsn = config.database.dsn or running.embedded_postgres.dsn
            api_ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            api_task = asyncio.ensure_future(run_api(config, dsn, shutdown, on_ready=api_ready.set_result))
            await asyncio.wait({api_ready, api_task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
            if api_task.done():
                api_task.result()  # the API failed to start: show why
            report.api_port = api_ready.result()
            announce(f"stats page: http://127.0.0.1:{report.api_port}/  "
                     f"(API: http://127.0.0.1:{report.api_port}/api/v1/pools)")
        def on_event(event: dict) -> None:
            if event.get("type") == "accepted":
                report.miner_accepted += 1

        miner_tasks = [
            asyncio.ensure_future(run_miner("127.0.0.1", port, f"{address}.demo{n}", "x", algorithm="scrypt",
                                            on_event=on_event))
            for n in range(miners)
        ]
        seen = 0
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while blocks_wanted is None or len(report.accepted) < blocks_wanted:
            if pool_task.done():
                pool_task.result()
                raise RuntimeError("the pool stopped")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"only {len(report.accepted)} blocks accepted within {timeout_s:g}s")
            for record in running.blocks.results[seen:]:
                seen += 1
                if record.status == "accepted":
                    report.accepted.append(record)
                    announce(f"block {record.height} {record.hash} found by {record.worker} "
                             f"(share difficulty {record.actual_difficulty:.4g}) accepted")
                else:
                    report.other.append(record)
                    kind = "stale candidate" if record.stale else "block"
                    announce(f"{kind} {record.height} {record.hash} {record.status}: {record.detail}")
            await _tend_mempool(net, report, announce)
            await asyncio.sleep(0.2)
        if before_stop is not None:
            await before_stop(report)
        for task in miner_tasks:
            task.cancel()
        await asyncio.gather(*miner_tasks, return_exceptions=True)
        report.pool_accepted = running.server.stats["shares_accepted"]
        if running.ledger is not None:
            await running.blocks.wait()
            await running.ledger.flush()
            report.ledger_shares = await running.db.fetchval(
                "SELECT count(*) FROM shares WHERE credited_difficulty > 0")
            rows = await running.db.fetch("SELECT hash, status, stale FROM blocks")
            report.ledger_blocks = {row["hash"]: row["status"] for row in rows}
            report.ledger_stale = {row["hash"] for row in rows if row["stale"]}
        return report
    finally:
        shutdown.set()
        if api_task is not None:  # before the pool, which stops the embedded PostgreSQL
            try:
                await asyncio.wait_for(api_task, 30)
            except Exception:
                logger.exception("the stats API stopped with an error")
        try:
            await asyncio.wait_for(pool_task, 30)
        except Exception:
            logger.exception("pool stopped with an error")


async def _premine_and_peg_in(net: RegtestNetwork, report: DevnetReport, announce) -> None:
    """Mine to height 431 and peg 1 LTC into MWEB, before the pool asks for a template (see the
    module's docstring: litecoind cannot build block 432 without a peg-in, and takes none earlier).
    A chain already past activation (a kept ``--data-dir``) needs neither."""
    height = await asyncio.to_thread(net.height)
    last_before_mweb = MWEB_ACTIVATION_HEIGHT - 1
    if height < last_before_mweb:
        announce(f"pre-mining {last_before_mweb - height} blocks to height {last_before_mweb} ...")
        await asyncio.to_thread(net.generate, last_before_mweb - height)
        height = last_before_mweb
    if height == last_before_mweb:
        pegin = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "mweb")
        await asyncio.to_thread(net.rpc, 0, "sendtoaddress", pegin, Decimal(1))
        report.mweb_pegged_at = height
        announce(f"height {height}: pegged 1 LTC into MWEB so that block {MWEB_ACTIVATION_HEIGHT} "
                 "(MWEB activation) can be mined")


async def _tend_mempool(net: RegtestNetwork, report: DevnetReport, announce) -> None:
    """Keep a segwit and an MWEB transaction waiting."""
    height = await asyncio.to_thread(net.height)
    mempool = await asyncio.to_thread(net.rpc, 0, "getrawmempool")
    if not mempool and height >= 101:
        txid = await asyncio.to_thread(net.send_segwit_tx, Decimal("0.1"))
        report.segwit_txids.append(txid)
        if height >= MWEB_ACTIVATION_HEIGHT + 1:
            try:
                report.mweb_txids.append(await asyncio.to_thread(net.send_mweb_tx, Decimal("0.05")))
            except Exception as exc:  # the wallet may not have spendable MWEB coins yet
                logger.debug("no MWEB transaction this time: %s", exc)


async def devnet_main(blocks: int | None, keep: bool, data_dir: str | None, miners: int, port: int,
                      api_port: int = 8080) -> int:
    base = Path(data_dir) if data_dir else None
    net = RegtestNetwork(base, keep_dir=keep)
    print("starting two regtest litecoind nodes ...", flush=True)
    await asyncio.to_thread(net.start)
    try:
        report = await run_devnet(net, blocks_wanted=blocks, miners=miners, stratum_port=port,
                                  api_port=None if api_port < 0 else api_port)
        print(f"done: {len(report.accepted)} blocks accepted, chain height {await asyncio.to_thread(net.height)}")
        return 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0
    finally:
        await asyncio.to_thread(net.stop)
