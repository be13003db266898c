"""A small, real ledger for the API tests: per-minute aggregates, blocks (one credited through the payout
engine, with its report), balances, a payment; and the pool's config."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from payouts import ledger
from payouts.fees import FeeConfig
from payouts.rounds import Block, ShareWork
from payouts.schemes import pplns
from pool.config import parse_config
from share_validator.bitcoin.address import bech32_encode_segwit

POOL = "litecoin-regtest"
POOL_ADDRESS = bech32_encode_segwit("rltc", 0, bytes(20))
ALICE = bech32_encode_segwit("rltc", 0, bytes([1] * 20))
BOB = bech32_encode_segwit("rltc", 0, bytes([2] * 20))
CAROL = bech32_encode_segwit("rltc", 0, bytes([3] * 20))  # valid, unknown to the pool
HOSTILE_WORKER = '<script>alert("x")</script>&'
FEES = FeeConfig("1", [], pool_account=POOL_ADDRESS)


def api_config(**api):
    return parse_config({
        "pool": {"coin": "litecoin-regtest", "address": POOL_ADDRESS},
        "daemons": [{"url": "http://127.0.0.1:1/"}],
        "stratum": {"ports": [{"port": 3333, "name": "low", "difficulty": 16, "min_difficulty": 1,
                               "max_difficulty": 4096}]},
        "payouts": {"scheme": "pplns", "pool_fee_percent": "1"},
        "api": {"rate_limit_per_s": 0, "cache_s": 0, **api},
    })


async def seed(db, now: datetime | None = None) -> dict:
    """Write the test ledger; returns what the tests compare with."""
    now = now or datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    rows = []
    for ago in range(1, 31):  # 30 complete minutes
        moment = minute - timedelta(minutes=ago)
        rows.append((POOL, ALICE, "rig1", moment, 10, 100.0, moment + timedelta(seconds=30)))
        rows.append((POOL, ALICE, HOSTILE_WORKER, moment, 5, 50.0, moment + timedelta(seconds=20)))
        rows.append((POOL, BOB, "bob1", moment, 1, 10.0, moment + timedelta(seconds=10)))
    await db.copy_records_to_table(
        "worker_minutes", records=rows,
        columns=["pool", "address", "worker", "minute", "shares", "difficulty_sum", "last_share"])
    await db.execute("INSERT INTO rounds (pool, work, shares, started) VALUES ($1, 0.25, 100, $2)",
                     POOL, now - timedelta(hours=1))

    async def block(height: int, status: str, reward: int = 5_000_000_000):
        return await db.fetchrow(
            """INSERT INTO blocks (pool, height, hash, status, reward, finder_address, finder_worker,
                                   network_difficulty, effort, confirmations, created)
               VALUES ($1, $2, $3, $4, $5, $6, 'rig1', 0.5, 1.25, 101, $7) RETURNING *""",
            POOL, height, f"{height:064x}", status, reward, ALICE, now - timedelta(hours=200 - height))

    await block(99, "orphaned")
    confirmed = await block(100, "confirmed")
    await block(101, "pending")
    shares = [ShareWork(ALICE, "rig1", 300.0, 1000.0, "s0001", now - timedelta(hours=150)),
              ShareWork(BOB, "bob1", 100.0, 1000.0, "s0002", now - timedelta(hours=149))]
    report = pplns(Block(100, confirmed["hash"], confirmed["reward"], ALICE, "confirmed"), shares, FEES, factor=2)
    async with db.acquire() as connection:
        assert await ledger.credit_block(connection, POOL, confirmed, report, "pplns")
    payment = await db.fetchval(
        """INSERT INTO payments (pool, status, txid, amount, fee, payees, confirmations)
           VALUES ($1, 'confirmed', $2, 1000, 10, 1, 6) RETURNING id""", POOL, "ab" * 32)
    await db.execute("INSERT INTO payment_outputs (payment_id, address, amount, debited) VALUES ($1, $2, 1000, 1000)",
                     payment, ALICE)
    await db.execute("UPDATE balances SET paid = 1000 WHERE pool = $1 AND address = $2", POOL, ALICE)
    return {"report": report, "payment_id": payment}
