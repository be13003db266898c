"""payouts.ledger on a real PostgreSQL: one transaction per block, idempotence, the invariant, the
schema's guards (balances never negative, the journal append-only), the payout lock."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from payouts import ledger
from payouts.fees import FeeConfig
from payouts.rounds import Block, ShareWork
from payouts.schemes import pplns

POOL = "litecoin"
FEES = FeeConfig("1.5", [("ltc1qdevfund", "0.5")], pool_account="pool")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def add_block(db, height: int, *, status="confirmed", reward=625_000_017, created=None,
                    finder="ltc1qalice") -> asyncpg.Record:
    return await db.fetchrow(
        "INSERT INTO blocks (pool, height, hash, status, reward, finder_address, created) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        POOL, height, f"{height:064x}", status, reward, finder, created or T0 + timedelta(hours=height))


def report_for(row, status=None) -> ledger.PayoutReport:
    shares = [ShareWork(address, "rig", difficulty, 1000.0, f"s{n:04d}", T0 + timedelta(seconds=n))
              for n, (address, difficulty) in enumerate(
                  [("ltc1qalice", 300.0), ("ltc1qbob", 700.0), ("ltc1qcarol", 1.0), ("ltc1qalice", 1500.0)])]
    block = Block(row["height"], row["hash"], row["reward"], row["finder_address"], status or row["status"])
    return pplns(block, shares, FEES, factor=2)


async def balances(db) -> dict[str, int]:
    return {r["address"]: r["amount"] for r in await db.fetch("SELECT address, amount FROM balances")}


async def test_credit_block_credits_the_report_once(db):
    row = await add_block(db, 10)
    report = report_for(row)
    async with db.acquire() as conn:
        assert await ledger.credit_block(conn, POOL, row, report, "pplns")
        assert not await ledger.credit_block(conn, POOL, row, report, "pplns")   # twice: once
        assert await ledger.check_invariant(conn, POOL) == []
    got = await balances(db)
    expected = dict(report.amounts())
    expected["ltc1qdevfund"] = report.fee_payments[0].amount
    expected["pool"] = report.pool_amount
    assert got == expected
    assert sum(got.values()) == row["reward"]
    assert await db.fetchval("SELECT sum(amount) FROM journal") == row["reward"]
    stored = await db.fetchrow("SELECT * FROM payout_reports")
    assert bytes(stored["report"]) == report.to_json_bytes() and stored["merkle_root"] == report.merkle_root
    assert await db.fetchval("SELECT credited FROM blocks WHERE id = $1", row["id"])


async def test_orphaned_and_pending_blocks_are_not_credited(db):
    orphan = await add_block(db, 11, status="orphaned")
    pending = await add_block(db, 12, status="pending")
    async with db.acquire() as conn:
        assert not await ledger.credit_block(conn, POOL, orphan, report_for(orphan, "confirmed"), "pplns")
        assert not await ledger.credit_block(conn, POOL, pending, report_for(pending, "confirmed"), "pplns")
        assert await ledger.check_invariant(conn, POOL) == []
    assert await db.fetchval("SELECT count(*) FROM journal") == 0
    assert await db.fetchval("SELECT count(*) FROM payout_reports") == 0
    assert await db.fetchval("SELECT count(*) FROM blocks WHERE credited") == 0


async def test_a_report_for_another_block_is_refused(db):
    row = await add_block(db, 13)
    other = await add_block(db, 14)
    async with db.acquire() as conn:
        with pytest.raises(ledger.LedgerError):
            await ledger.credit_block(conn, POOL, row, report_for(other), "pplns")
        with pytest.raises(ledger.LedgerError):
            await ledger.credit_block(conn, POOL, row, report_for(row), "prop")
    assert await db.fetchval("SELECT count(*) FROM journal") == 0


async def test_a_crash_inside_the_transaction_commits_nothing(db, monkeypatch):
    row = await add_block(db, 20)
    report = report_for(row)
    real = ledger._add_balances

    async def crash(*args, **kwargs):
        raise RuntimeError("power cut after the journal insert")

    monkeypatch.setattr(ledger, "_add_balances", crash)
    async with db.acquire() as conn:
        with pytest.raises(RuntimeError, match="power cut"):
            await ledger.credit_block(conn, POOL, row, report, "pplns")
    assert await db.fetchval("SELECT count(*) FROM journal") == 0
    assert await db.fetchval("SELECT count(*) FROM balances") == 0
    assert await db.fetchval("SELECT count(*) FROM payout_reports") == 0
    assert not await db.fetchval("SELECT credited FROM blocks WHERE id = $1", row["id"])
    monkeypatch.setattr(ledger, "_add_balances", real)
    async with db.acquire() as conn:
        assert await ledger.credit_block(conn, POOL, row, report, "pplns")
        assert await ledger.check_invariant(conn, POOL) == []
    assert sum((await balances(db)).values()) == row["reward"]


async def test_concurrent_credits_of_one_block_credit_once(db):
    row = await add_block(db, 21)
    report = report_for(row)

    async def credit():
        async with db.acquire() as conn:
            return await ledger.credit_block(conn, POOL, row, report, "pplns")

    results = await asyncio.gather(*(credit() for _ in range(5)))
    assert sorted(results) == [False] * 4 + [True]
    assert sum((await balances(db)).values()) == row["reward"]
    async with db.acquire() as conn:
        assert await ledger.check_invariant(conn, POOL) == []


async def test_the_unique_journal_index_refuses_a_second_block_credit(db):
    row = await add_block(db, 22)
    async with db.acquire() as conn:
        assert await ledger.credit_block(conn, POOL, row, report_for(row), "pplns")
        with pytest.raises(asyncpg.UniqueViolationError):
            await ledger._insert_journal(conn, POOL, row["hash"], [("ltc1qbob", 5, "block_credit")])


async def test_check_invariant_names_each_problem(db):
    row = await add_block(db, 30)
    async with db.acquire() as conn:
        assert await ledger.credit_block(conn, POOL, row, report_for(row), "pplns")
        await conn.execute("UPDATE balances SET amount = amount + 1 WHERE address = 'ltc1qbob'")
        await conn.execute("INSERT INTO balances (pool, address, amount) VALUES ($1, 'ltc1qghost', 7)", POOL)
        await conn.execute("INSERT INTO journal (pool, address, amount, reason) "
                           "VALUES ($1, 'ltc1qnobalance', 3, 'adjustment')", POOL)
        await conn.execute("DELETE FROM payout_reports")
        problems = await ledger.check_invariant(conn, POOL)
    text = "\n".join(problems)
    assert len(problems) == 4, text
    assert "ltc1qbob" in text and "ltc1qghost" in text and "ltc1qnobalance" in text
    assert "no payout report" in text


async def test_balances_refuse_negative_amounts(db):
    await db.execute("INSERT INTO balances (pool, address, amount) VALUES ($1, 'ltc1qbob', 5)", POOL)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE balances SET amount = amount - 6 WHERE address = 'ltc1qbob'")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO balances (pool, address, amount) VALUES ($1, 'ltc1qeve', -1)", POOL)
    assert await balances(db) == {"ltc1qbob": 5}


async def test_the_journal_is_append_only(db):
    row = await add_block(db, 31)
    async with db.acquire() as conn:
        assert await ledger.credit_block(conn, POOL, row, report_for(row), "pplns")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("UPDATE journal SET amount = amount + 1")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("DELETE FROM journal")
    assert await db.fetchval("SELECT sum(amount) FROM journal") == row["reward"]


async def test_the_payout_lock_is_held_by_one_session(db):
    assert ledger.payout_lock_key(POOL) == ledger.payout_lock_key(POOL)
    assert ledger.payout_lock_key(POOL) != ledger.payout_lock_key("bitcoin")
    async with db.acquire() as first, db.acquire() as second:
        async with ledger.payout_lock(first, POOL) as held:
            assert held
            async with ledger.payout_lock(second, POOL) as other:
                assert not other
            async with ledger.payout_lock(second, "bitcoin") as other_pool:
                assert other_pool
        async with ledger.payout_lock(second, POOL) as held_after:
            assert held_after
