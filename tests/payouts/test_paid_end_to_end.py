"""Money end to end on regtest, paid: two demo miners of different speeds mine through the pool,
blocks mature, the payout processor credits them, the payment sender pays through the node's
wallet, and each miner's own wallet receives exactly what the ledger says -- in proportion to the
work each did -- under PPLNS and under PPS.

Regtest blocks take about two scrypt hashes, so share difficulty decides what a share is worth:
- PPLNS runs at share difficulty 0.05 (about 1,600 times the network difficulty): every share is a
  block and a PPLNS window (2 x network difficulty) is a part of the block's own share, so each
  block pays its finder (less the fee). Over many blocks, that is payment in proportion to work.
- PPS runs at share difficulty = the network difficulty (2^-15 in scrypt Stratum units): a share
  is credited one block subsidy (less the fee) and is also a block, so the pool stays solvent.
"""
from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest
from running_pool import running_pool

from payouts.ledger import check_invariant
from payouts.money import coins_to_satoshis
from pool.config import parse_config
from pool.devtools.miner import run_miner
from pool.devtools.regtest import RegtestNetwork

NETWORK_DIFFICULTY = 2.0 ** -15  # regtest bits 207fffff in scrypt Stratum units (diff 1 = 0xffff * 2^224)

# (fast, slow) duty cycles: the slow miner hashes a quarter of the time the fast one does.  For PPS
# (about two hashes per share) both hash in 1 ms chunks and mostly sleep, so that blocks come a few
# per second, not thousands.
SCHEMES = {
    "pplns": {"difficulty": 0.05, "blocks": 8, "duty": (1.0, 0.25), "miner": {}},
    "pps": {"difficulty": NETWORK_DIFFICULTY, "blocks": 8, "duty": (0.002, 0.0005),
            "miner": {"chunk_seconds": 0.001}},
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
async def test_two_miners_are_paid_in_proportion_to_their_work(dsn, tmp_path, scheme):
    settings = SCHEMES[scheme]
    net = RegtestNetwork()
    await asyncio.to_thread(net.start)
    try:
        await asyncio.to_thread(net.generate, 101)
        address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "pool", "bech32", wallet="pool")
        await asyncio.to_thread(net.rpc, 0, "createwallet", "miners")
        fast, slow = [await asyncio.to_thread(net.rpc, 0, "getnewaddress", "", "bech32", wallet="miners")
                      for _ in range(2)]
        raw = {
            "pool": {"coin": "litecoin-regtest", "address": address, "data_dir": str(tmp_path)},
            "daemons": [{"url": net.rpc_url(0)}],
            "stratum": {"ports": [{"port": 0, "host": "127.0.0.1", "difficulty": settings["difficulty"],
                                   "min_difficulty": settings["difficulty"], "vardiff": False}]},
            "work": {"poll_interval_s": 0.1},
            "database": {"dsn": dsn, "flush_interval_s": 0.2},
            "blocks": {"tracker_interval_s": 0.5},
            "payouts": {"scheme": scheme, "pool_fee_percent": "1", "interval_s": 0.5, "pps_settle_s": 0,
                        "payment_interval_s": 0.5, "minimum_payout": "0.001", "payment_confirmations": 1,
                        "wallet": "pool"},
        }
        config = parse_config(raw)
        async with running_pool(config) as running:
            port = running.server.ports[0]
            db = running.db
            miners = [asyncio.ensure_future(run_miner("127.0.0.1", port, f"{who}.rig", algorithm="scrypt",
                                                      duty_cycle=duty, **settings["miner"]))
                      for who, duty in zip((fast, slow), settings["duty"])]
            for _ in range(1800):  # enough blocks, and at least one from each miner
                accepted = [b for b in running.blocks.results if b.status == "accepted"]
                finders = {b.address for b in accepted}
                if len(accepted) >= settings["blocks"] and {fast, slow} <= finders:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"{len(accepted)} blocks accepted, found by {finders}")
            for miner in miners:
                miner.cancel()
            await asyncio.gather(*miners, return_exceptions=True)
            await running.blocks.wait()
            await running.ledger.flush()
            await asyncio.to_thread(net.generate, 101)  # every pool block matures
            # Wait until everything credited is paid and confirmed.
            for _ in range(600):
                await asyncio.sleep(0.2)
                open_balances = await db.fetchval(
                    "SELECT count(*) FROM balances WHERE address IN ($1, $2) AND amount > 0", fast, slow)
                unconfirmed = await db.fetchval("SELECT count(*) FROM payments WHERE status <> 'confirmed'")
                credited = await db.fetchval("SELECT count(*) FROM balances WHERE address IN ($1, $2)", fast, slow)
                if credited == 2 and open_balances == 0 and unconfirmed == 0:
                    if scheme == "pps" or await db.fetchval(
                            "SELECT bool_and(credited) FROM blocks WHERE status = 'confirmed'"):
                        break
                if unconfirmed:
                    await asyncio.to_thread(net.generate, 1)
            else:
                pytest.fail(f"not paid: {[dict(r) for r in await db.fetch('SELECT * FROM balances')]} "
                            f"{[dict(r) for r in await db.fetch('SELECT id, status, detail FROM payments')]}")
            paid = {r["address"]: r["paid"] for r in await db.fetch("SELECT address, paid FROM balances")}
            credits = {r["address"]: int(r["total"]) for r in await db.fetch(
                "SELECT address, sum(amount) AS total FROM journal WHERE amount > 0 GROUP BY address")}
            work = {r["address"]: Fraction(r["work"]) for r in await db.fetch(
                "SELECT address, sum(credited_difficulty) AS work FROM shares WHERE credited_difficulty > 0 "
                "GROUP BY address")}
            async with db.acquire() as connection:
                assert await check_invariant(connection, config.pool_name) == []
        received: dict[str, int] = {}
        for tx in await asyncio.to_thread(net.rpc, 0, "listtransactions", "*", 10_000, 0, True, wallet="miners"):
            if tx["category"] == "receive" and tx["confirmations"] > 0:
                received[tx["address"]] = received.get(tx["address"], 0) + coins_to_satoshis(tx["amount"])
        # Each miner's wallet holds exactly what the ledger credited and the sender paid.
        assert received == {fast: paid[fast], slow: paid[slow]} == {fast: credits[fast], slow: credits[slow]}
        if scheme == "pps":
            # Every share is credited the same: payment is exactly in proportion to the work.
            assert Fraction(received[fast], received[slow]) == pytest.approx(work[fast] / work[slow], rel=1e-6)
        else:
            # Each window is a part of the block's own share: each block pays its finder the reward
            # less the 1 % fee, so each miner is paid for the blocks (= shares) it found.
            for row in await _block_credits(dsn):
                assert row["paid"] == [row["finder_address"]]
                assert row["amount"] == row["reward"] * 99 // 100
        print(f"{scheme}: work fast/slow {float(work[fast] / work[slow]):.3f}, paid fast/slow "
              f"{received[fast] / received[slow]:.3f}, paid {received}")
    finally:
        await asyncio.to_thread(net.stop)


async def _block_credits(dsn):
    import asyncpg
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(
            "SELECT b.hash, b.finder_address, b.reward, array_agg(j.address) AS paid, sum(j.amount) AS amount "
            "FROM blocks b JOIN journal j ON j.block_hash = b.hash AND j.reason = 'block_credit' "
            "WHERE b.credited GROUP BY b.hash, b.finder_address, b.reward")
    finally:
        await connection.close()
