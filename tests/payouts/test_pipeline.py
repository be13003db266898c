"""Money end to end on regtest: the demo miner finds blocks through the pool, they mature, the
payout processor credits them (PPLNS, 1 % fee), `pool verify-block` recomputes a report."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
from running_pool import running_pool

from payouts.ledger import check_invariant
from pool.config import parse_config
from pool.devtools.miner import run_miner
from pool.devtools.regtest import RegtestNetwork
from pool.ledger.embedded_postgres import PgServer


async def test_blocks_mature_and_are_credited(tmp_path):
    net = RegtestNetwork()
    await asyncio.to_thread(net.start)
    pg = PgServer(durable=False)
    await asyncio.to_thread(pg.start)
    try:
        await asyncio.to_thread(net.generate, 101)
        address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "pool", "bech32")
        miner_address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "miner", "bech32")
        raw = {
            "pool": {"coin": "litecoin-regtest", "address": address, "data_dir": str(tmp_path)},
            "daemons": [{"url": net.rpc_url(0)}],
            "stratum": {"ports": [{"port": 0, "host": "127.0.0.1", "difficulty": 0.05, "vardiff": False}]},
            "work": {"poll_interval_s": 0.1},
            "database": {"dsn": pg.dsn, "flush_interval_s": 0.2},
            "blocks": {"tracker_interval_s": 0.5},
            "payouts": {"scheme": "pplns", "pool_fee_percent": "1", "pplns_factor": 2, "interval_s": 0.5},
        }
        config = parse_config(raw)
        async with running_pool(config) as running:
            miner = asyncio.ensure_future(run_miner("127.0.0.1", running.server.ports[0], f"{miner_address}.rig",
                                                    algorithm="scrypt"))
            for _ in range(600):
                if len([b for b in running.blocks.results if b.status == "accepted"]) >= 3:
                    break
                await asyncio.sleep(0.1)
            miner.cancel()
            await asyncio.gather(miner, return_exceptions=True)
            await running.blocks.wait()
            accepted = [b for b in running.blocks.results if b.status == "accepted"]
            assert len(accepted) >= 3
            await asyncio.to_thread(net.generate, 100)  # maturity
            db = running.db
            for _ in range(200):
                credited = await db.fetchval("SELECT count(*) FROM blocks WHERE credited")
                if credited >= len(accepted):
                    break
                await asyncio.sleep(0.2)
            rows = await db.fetch("SELECT height, hash, reward, status FROM blocks WHERE credited ORDER BY height")
            assert {r["hash"] for r in rows} >= {b.hash for b in accepted}
            assert all(r["status"] == "confirmed" for r in rows)
            total_reward = sum(r["reward"] for r in rows)
            balances = {r["address"]: r["amount"] for r in await db.fetch("SELECT address, amount FROM balances")}
            assert sum(balances.values()) == total_reward  # every satoshi accounted for
            assert balances[miner_address] > 0 and balances[miner_address] == total_reward - balances["pool"]
            async with db.acquire() as conn:
                assert await check_invariant(conn, config.pool_name) == []
            height = rows[0]["height"]
        config_path = tmp_path / "pool.toml"
        config_path.write_text(
            f'[pool]\ncoin = "litecoin-regtest"\naddress = "{address}"\ndata_dir = "{tmp_path}"\n'
            f'[[daemons]]\nurl = "{net.rpc_url(0)}"\n[stratum]\n[[stratum.ports]]\nport = 3333\n'
            f'[database]\ndsn = "{pg.dsn}"\n[payouts]\nscheme = "pplns"\npool_fee_percent = "1"\npplns_factor = 2\n')
        check = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "pool.cli", "verify-block", "-c",
                                                         str(config_path), str(height)], capture_output=True, text=True)
        assert check.returncode == 0 and "OK" in check.stdout, check.stdout + check.stderr
        conn = await asyncpg.connect(pg.dsn)
        # Tamper with a share inside the block's window (its newest share): credit it to another address.
        await conn.execute(
            "UPDATE shares SET address = $2 WHERE ctid IN (SELECT ctid FROM shares WHERE credited_difficulty > 0 "
            "AND created <= (SELECT created FROM blocks WHERE height = $1 AND credited) "
            "ORDER BY created DESC, share_id DESC LIMIT 1)", height, address)
        await conn.close()
        tampered = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "pool.cli", "verify-block", "-c",
                                                            str(config_path), str(height)], capture_output=True, text=True)
        assert tampered.returncode == 1 and "MISMATCH" in tampered.stdout
    finally:
        await asyncio.to_thread(pg.stop)
        await asyncio.to_thread(net.stop)
