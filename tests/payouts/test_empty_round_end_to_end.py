"""The empty round for real: `pool run` (PROP) killed with SIGKILL loses its round's shares, not its
blocks, and every block is still credited once it matures (regtest litecoind, a real PostgreSQL).

The reproduction of the failure: with ``database.flush_interval_s = 30`` the pool mines a few
blocks through the demo miner, so its blocks are stored (a block is written at once) but none of
its shares (they wait for the flush); ``kill -9``.  Restarted with the usual flush interval, it
mines more blocks whose rounds are stored; then every block matures.  Before, the first block's
empty round stopped the payout run for good and no later block was credited.  Now each block of
the lost round pays its finder (its report says why), the later ones pay their rounds, and every
block's credits add up to its reward.  (A crash between crediting steps is covered by
test_empty_round.py: each block is one transaction.)
"""
from __future__ import annotations

import asyncio
import json
import signal

import asyncpg
from pool_process import start_pool, wait_for_port

from payouts.ledger import check_invariant
from pool.devtools.miner import run_miner
from pool.devtools.regtest import RegtestNetwork
from pool.localnet import free_loopback_port

CONFIG = """
[pool]
coin = "litecoin-regtest"
address = "{pool_address}"
data_dir = "{data_dir}"
[[daemons]]
url = "{daemon}"
[work]
poll_interval_s = 0.1
[stratum]
[[stratum.ports]]
port = {port}
host = "127.0.0.1"
difficulty = 0.01
min_difficulty = 0.01
vardiff = false
[database]
dsn = "{dsn}"
flush_interval_s = {flush_interval_s}
[blocks]
tracker_interval_s = 0.5
[payouts]
scheme = "prop"
pool_fee_percent = "1"
interval_s = 0.5
payments_enabled = false
[api]
enabled = false
metrics_listen = ""
"""


async def mine(port: int, address: str, shares: int) -> int:
    """Mine until ``shares`` shares are answered (each one is a block: the share difficulty is far above
    regtest's network difficulty); the blocks found."""
    stats = await run_miner("127.0.0.1", port, f"{address}.rig", algorithm="scrypt", max_shares=shares,
                            max_seconds=60, duty_cycle=0.5, chunk_seconds=0.05)
    assert stats.blocks >= 1, stats
    return stats.blocks


async def test_a_killed_prop_pool_credits_every_block_once_mature(dsn, tmp_path):
    net = RegtestNetwork()
    await asyncio.to_thread(net.start)
    process = None
    try:
        await asyncio.to_thread(net.generate, 101)
        pool_address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "pool", "bech32")
        miner = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "miner", "bech32")
        port = free_loopback_port()
        config = tmp_path / "pool.toml"
        settings = dict(pool_address=pool_address, data_dir=tmp_path / "data", daemon=net.rpc_url(0), port=port,
                        dsn=dsn)
        config.write_text(CONFIG.format(flush_interval_s=30, **settings))
        db = await asyncpg.connect(dsn)
        try:
            # 1. Mine with a 30 s flush interval, then kill -9: the blocks are stored, the shares lost.
            process = start_pool(config, tmp_path / "pool.log")
            await asyncio.to_thread(wait_for_port, port, process)
            found = await mine(port, miner, 4)
            for _ in range(100):  # the writer stores each block as it comes
                if await db.fetchval("SELECT count(*) FROM blocks") >= found:
                    break
                await asyncio.sleep(0.1)
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait, 30)
            await asyncio.sleep(1.0)  # the orphaned writer stores what it was sent, then exits
            lost_round = {row["hash"] for row in await db.fetch("SELECT hash FROM blocks WHERE status <> 'rejected'")}
            assert lost_round, "no block was found before the kill"
            assert await db.fetchval("SELECT count(*) FROM shares WHERE credited_difficulty > 0") == 0

            # 2. Restarted with the usual flush interval: more blocks, their rounds stored.
            config.write_text(CONFIG.format(flush_interval_s=0.2, **settings))
            process = start_pool(config, tmp_path / "pool.log")
            await asyncio.to_thread(wait_for_port, port, process)
            await mine(port, miner, 4)
            await asyncio.sleep(1.0)  # the last flush
            later = {row["hash"] for row in await db.fetch("SELECT hash FROM blocks WHERE status <> 'rejected'")}
            later -= lost_round
            assert later, "no block was found after the restart"

            # 3. Every block matures: each one is credited, once, its credits adding up to its reward.
            await asyncio.to_thread(net.generate, 101)
            for _ in range(300):
                waiting = await db.fetchval(
                    "SELECT count(*) FROM blocks WHERE status IN ('pending', 'confirmed') AND NOT credited")
                if not waiting:
                    break
                await asyncio.sleep(0.2)
            rows = await db.fetch(
                "SELECT b.hash, b.status, b.reward, b.credited, r.report, "
                "(SELECT sum(amount) FROM journal j WHERE j.block_hash = b.hash) AS credits "
                "FROM blocks b LEFT JOIN payout_reports r ON r.block_hash = b.hash WHERE b.status <> 'rejected'")
            confirmed = [row for row in rows if row["status"] == "confirmed"]
            # (A candidate on a stale tip may be orphaned: the rest of the pool's blocks are confirmed.)
            confirmed_hashes = {row["hash"] for row in confirmed}
            assert lost_round & confirmed_hashes and later & confirmed_hashes, [dict(row) for row in rows]
            assert all(row["credited"] for row in confirmed), [dict(row) for row in rows]
            for row in confirmed:
                assert int(row["credits"]) == row["reward"]
                notes = json.loads(bytes(row["report"]))["notes"]
                if row["hash"] in lost_round:
                    assert any(f"goes to the finder {miner}" in note for note in notes), notes
                else:
                    assert notes == [], notes
            balances = {r["address"]: r["amount"] for r in await db.fetch("SELECT address, amount FROM balances")}
            assert sum(balances.values()) == sum(row["reward"] for row in confirmed)
            assert balances[miner] == sum(row["reward"] - row["reward"] // 100 for row in confirmed)
            assert await check_invariant(db, "litecoin-regtest") == []
            print(f"\n{len(lost_round & confirmed_hashes)} blocks of the lost round and "
                  f"{len(later & confirmed_hashes)} after it confirmed, each credited once")

            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 60) == 0
        finally:
            await db.close()
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        await asyncio.to_thread(net.stop)
