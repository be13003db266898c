"""payouts.processor on a real PostgreSQL: stored shares -> the pure report -> one credit per block.

Each expected report is computed by the pure scheme over shares chosen here by hand, so the tests
check the processor's share queries (window, round, zero-difficulty rows, shares after the block)
as well as the crediting."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from payouts import ledger
from payouts.fees import FeeConfig
from payouts.processor import PayoutProcessor
from payouts.rounds import Block, ShareWork
from payouts.schemes import pplns, prop, solo

POOL = "litecoin"
FEES = FeeConfig("1", [("ltc1qdevfund", "0.25")], pool_account="pool")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NETWORK = 1000.0
MINERS = ["ltc1qalice", "ltc1qbob", "ltc1qcarol"]


def make_shares(first: int, count: int, *, start: datetime = T0) -> list[tuple]:
    """Share rows: n-th share at start + n s, varied difficulty and miner; every 7th a zero row."""
    rows = []
    for n in range(first, first + count):
        difficulty = 0.0 if n % 7 == 3 else float(37 + (n * 53) % 211)
        rows.append((f"01{n:016x}", start + timedelta(seconds=n), POOL, MINERS[n % 3], "rig", difficulty,
                     difficulty * 2, NETWORK, 100, 625_000_000 + 1013 * n, 1, "127.0.0.1", difficulty == 0.0))
    return rows


async def insert_shares(db, rows: list[tuple]) -> None:
    await db.executemany(
        "INSERT INTO shares (share_id, created, pool, address, worker, credited_difficulty, "
        "actual_difficulty, network_difficulty, height, coinbase_value, node_id, ip, is_block) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)", rows)


def works(rows: list[tuple]) -> list[ShareWork]:
    return [ShareWork(r[3], r[4], r[5], r[7], r[0], r[1], r[8], r[9]) for r in rows if r[5] > 0]


async def add_block(db, height: int, created: datetime, *, status="confirmed", reward=1_250_000_003):
    return await db.fetchrow(
        "INSERT INTO blocks (pool, height, hash, status, reward, finder_address, created) "
        "VALUES ($1, $2, $3, $4, $5, 'ltc1qbob', $6) RETURNING *",
        POOL, height, f"{height:064x}", status, reward, created)


def block_of(row) -> Block:
    return Block(row["height"], row["hash"], row["reward"], row["finder_address"], row["status"])


async def ledger_state(db):
    balances = {r["address"]: r["amount"] for r in await db.fetch("SELECT address, amount FROM balances")}
    journal = await db.fetchval("SELECT count(*) FROM journal")
    reports = await db.fetchval("SELECT count(*) FROM payout_reports")
    return balances, journal, reports


def expected_balances(*reports) -> dict[str, int]:
    total: dict[str, int] = {}
    for report in reports:
        for address, amount, _ in ledger.journal_entries(report):
            total[address] = total.get(address, 0) + amount
    return total


async def invariant(db):
    async with db.acquire() as conn:
        return await ledger.check_invariant(conn, POOL)


@pytest.mark.parametrize("page_size", [4, 5000])
async def test_pplns_credits_the_window_once(db, page_size):
    rows = make_shares(0, 60)
    await insert_shares(db, rows)
    block = await add_block(db, 500, T0 + timedelta(seconds=40))   # shares 41.. come after the block
    processor = PayoutProcessor(db, POOL, "pplns", FEES, factor="1.5", page_size=page_size)
    run = await processor.run_once()
    assert run.credited == [500] and not run.locked_out and run.failed == []
    report = pplns(block_of(block), works(rows[:41]), FEES, factor="1.5")
    assert report.window.filled and report.window.shares_counted < 35   # the window is part of history
    balances, journal, reports = await ledger_state(db)
    assert balances == expected_balances(report)
    assert sum(balances.values()) == block["reward"]
    assert await invariant(db) == []
    stored = await db.fetchval("SELECT report FROM payout_reports")
    assert bytes(stored) == report.to_json_bytes()
    # Running again changes nothing.
    assert (await processor.run_once()).credited == []
    assert await ledger_state(db) == (balances, journal, reports)
    assert (await processor.verify_block(500))[0]


async def test_a_short_window_shares_what_there_is(db):
    rows = make_shares(0, 6)
    await insert_shares(db, rows)
    block = await add_block(db, 501, T0 + timedelta(hours=1))
    assert (await PayoutProcessor(db, POOL, "pplns", FEES).run_once()).credited == [501]
    report = pplns(block_of(block), works(rows), FEES)
    assert not report.window.filled
    assert (await ledger_state(db))[0] == expected_balances(report)


async def test_blocks_are_credited_in_height_order_and_orphans_never(db):
    await insert_shares(db, make_shares(0, 90))
    await add_block(db, 602, T0 + timedelta(seconds=80))
    await add_block(db, 601, T0 + timedelta(seconds=50), status="orphaned")
    await add_block(db, 600, T0 + timedelta(seconds=30))
    await add_block(db, 603, T0 + timedelta(seconds=85), status="pending")
    processor = PayoutProcessor(db, POOL, "pplns", FEES)
    assert (await processor.run_once()).credited == [600, 602]
    assert await db.fetchval("SELECT count(*) FROM journal WHERE block_hash = $1", f"{601:064x}") == 0
    credited = await db.fetchval("SELECT array_agg(height ORDER BY height) FROM blocks WHERE credited")
    assert credited == [600, 602]
    assert await invariant(db) == []


async def test_prop_pays_each_round(db):
    rows = make_shares(0, 50)
    await insert_shares(db, rows)
    first = await add_block(db, 700, T0 + timedelta(seconds=20))
    await add_block(db, 701, T0 + timedelta(seconds=25), status="orphaned")   # not a round boundary
    second = await add_block(db, 702, T0 + timedelta(seconds=45))
    processor = PayoutProcessor(db, POOL, "prop", FEES)
    assert (await processor.run_once()).credited == [700, 702]
    first_report = prop(block_of(first), works(rows[:21]), FEES)
    second_report = prop(block_of(second), works(rows[21:46]), FEES)
    assert (await ledger_state(db))[0] == expected_balances(first_report, second_report)
    assert await invariant(db) == []
    assert (await processor.verify_block(700))[0] and (await processor.verify_block(702))[0]


async def test_solo_pays_the_finder(db):
    block = await add_block(db, 800, T0)
    assert (await PayoutProcessor(db, POOL, "solo", FEES).run_once()).credited == [800]
    assert (await ledger_state(db))[0] == expected_balances(solo(block_of(block), FEES))


async def test_a_block_without_shares_pays_its_finder_and_the_run_goes_on(db):
    first = await add_block(db, 900, T0)                             # no shares at all
    rows = make_shares(0, 10, start=T0 + timedelta(minutes=1))
    await insert_shares(db, rows)
    second = await add_block(db, 901, T0 + timedelta(hours=1))
    run = await PayoutProcessor(db, POOL, "pplns", FEES).run_once()
    assert run.credited == [900, 901] and run.failed == []
    empty = pplns(block_of(first), [], FEES)
    assert empty.amounts() == {"ltc1qbob": empty.miners_total}        # the finder stored with the block
    assert (await ledger_state(db))[0] == expected_balances(empty, pplns(block_of(second), works(rows), FEES))
    assert await invariant(db) == []


async def test_a_crash_mid_block_commits_nothing_and_the_next_run_credits_once(db, monkeypatch):
    rows = make_shares(0, 40)
    await insert_shares(db, rows)
    block = await add_block(db, 1000, T0 + timedelta(seconds=39))
    processor = PayoutProcessor(db, POOL, "pplns", FEES)
    real = ledger._store_report

    async def crash(*args, **kwargs):
        raise ConnectionResetError("the node died after the journal and balances")

    monkeypatch.setattr(ledger, "_store_report", crash)
    with pytest.raises(ConnectionResetError):
        await processor.run_once()
    assert await ledger_state(db) == ({}, 0, 0)
    assert await db.fetchval("SELECT count(*) FROM blocks WHERE credited") == 0
    monkeypatch.setattr(ledger, "_store_report", real)
    assert (await processor.run_once()).credited == [1000]
    assert (await processor.run_once()).credited == []
    report = pplns(block_of(block), works(rows), FEES)
    assert (await ledger_state(db))[0] == expected_balances(report)
    assert await invariant(db) == []


async def test_concurrent_processors_credit_once(db):
    await insert_shares(db, make_shares(0, 200))
    for height in range(1100, 1110):
        await add_block(db, height, T0 + timedelta(seconds=height - 1090))
    processors = [PayoutProcessor(db, POOL, "pplns", FEES, page_size=7) for _ in range(4)]
    runs = await asyncio.gather(*(p.run_once() for p in processors))
    credited = sorted(h for run in runs for h in run.credited)
    assert credited == list(range(1100, 1110))
    assert await db.fetchval("SELECT count(*) FROM payout_reports") == 10
    assert await invariant(db) == []
    assert sum((await ledger_state(db))[0].values()) == 10 * 1_250_000_003


async def test_a_held_lock_keeps_a_run_out(db):
    await insert_shares(db, make_shares(0, 20))
    await add_block(db, 1200, T0 + timedelta(seconds=19))
    processor = PayoutProcessor(db, POOL, "pplns", FEES)
    async with db.acquire() as other, ledger.payout_lock(other, POOL) as held:
        assert held
        run = await processor.run_once()
        assert run.locked_out and run.credited == []
    assert (await processor.run_once()).credited == [1200]


async def test_verify_block_detects_tampering(db):
    await insert_shares(db, make_shares(0, 60))
    await add_block(db, 1300, T0 + timedelta(seconds=59))
    processor = PayoutProcessor(db, POOL, "pplns", FEES)
    assert (await processor.run_once()).credited == [1300]
    ok, detail = await processor.verify_block(1300)
    assert ok, detail
    assert (await processor.verify_block(1301)) == (False, "no credited block at height 1301")

    # A stored share in the window changed: the recomputed report differs.
    share_id = f"01{58:016x}"
    original = await db.fetchval("SELECT credited_difficulty FROM shares WHERE share_id = $1", share_id)
    await db.execute("UPDATE shares SET credited_difficulty = credited_difficulty * 2 WHERE share_id = $1",
                     share_id)
    ok, detail = await processor.verify_block(1300)
    assert not ok and "merkle root" in detail and "bytes" in detail
    await db.execute("UPDATE shares SET credited_difficulty = $2 WHERE share_id = $1", share_id, original)
    assert (await processor.verify_block(1300))[0]

    # The stored report altered (one byte of it), then the root.
    await db.execute("UPDATE payout_reports SET report = overlay(report placing '9'::bytea from 30)")
    ok, detail = await processor.verify_block(1300)
    assert not ok and "bytes" in detail and "merkle" not in detail
    await db.execute("UPDATE payout_reports SET report = $1", (await _recomputed(processor, 1300)))
    assert (await processor.verify_block(1300))[0]
    await db.execute("UPDATE payout_reports SET merkle_root = repeat('0', 64)")
    ok, detail = await processor.verify_block(1300)
    assert not ok and "merkle root" in detail

    # A different fee configuration does not verify either.
    other = PayoutProcessor(db, POOL, "pplns", FeeConfig("2", pool_account="pool"))
    assert not (await other.verify_block(1300))[0]


async def _recomputed(processor, height) -> bytes:
    async with processor.db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM blocks WHERE height = $1", height)
        return (await processor.compute_report(conn, row)).to_json_bytes()


# -- PPS / FPPS ----------------------------------------------------------------------------------------

SUBSIDY = 625_000_000


async def pps_state(db):
    carry = {r["address"]: r["carry"] for r in await db.fetch("SELECT address, carry FROM pps_carry")}
    mark = await db.fetchrow("SELECT last_created, last_share_id FROM pps_state")
    return (await ledger_state(db))[0], carry, None if mark is None else tuple(mark)


@pytest.mark.parametrize("scheme", ["pps", "fpps"])
async def test_pps_batches_credit_like_one_batch(db, scheme):
    from payouts.schemes import fpps_credits, pps_credits
    rows = make_shares(0, 45)
    await insert_shares(db, rows[:30])
    processor = PayoutProcessor(db, POOL, scheme, FEES, page_size=4, block_value=SUBSIDY)
    run = await processor.run_once()
    assert run.pps_shares == len(works(rows[:30]))
    await insert_shares(db, rows[30:])
    assert (await processor.run_once()).pps_shares == len(works(rows[30:]))
    one_batch = (pps_credits(works(rows), SUBSIDY, FEES) if scheme == "pps"
                 else fpps_credits(works(rows), FEES))
    balances, carry, mark = await pps_state(db)
    assert balances == one_batch.credits and carry == one_batch.carry
    assert mark == (rows[-1][1], rows[-1][0])
    assert await invariant(db) == []
    assert (await processor.run_once()).pps_shares == 0                 # twice: nothing more
    assert await pps_state(db) == (balances, carry, mark)


async def test_pps_skips_shares_younger_than_the_settle_delay(db):
    now = await db.fetchval("SELECT now()")
    await insert_shares(db, make_shares(0, 5, start=now - timedelta(seconds=3)))
    processor = PayoutProcessor(db, POOL, "pps", FEES, block_value=SUBSIDY, settle_s=600)
    assert (await processor.run_once()).pps_shares == 0
    assert await db.fetchval("SELECT count(*) FROM journal") == 0


async def test_a_crash_in_a_pps_batch_commits_nothing(db, monkeypatch):
    rows = make_shares(0, 20)
    await insert_shares(db, rows)
    processor = PayoutProcessor(db, POOL, "pps", FEES, page_size=6, block_value=SUBSIDY)
    real = ledger._add_balances
    calls = []

    async def crash_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionResetError("died in the second batch")
        return await real(*args, **kwargs)

    monkeypatch.setattr(ledger, "_add_balances", crash_second)
    with pytest.raises(ConnectionResetError):
        await processor.run_once()
    first_batch = works(rows)[:6]
    from payouts.schemes import pps_credits
    expected = pps_credits(first_batch, SUBSIDY, FEES)
    balances, carry, mark = await pps_state(db)
    assert balances == expected.credits and carry == expected.carry
    assert mark == (first_batch[-1].created, first_batch[-1].share_id)
    assert await invariant(db) == []
    monkeypatch.setattr(ledger, "_add_balances", real)
    await processor.run_once()
    total = pps_credits(works(rows), SUBSIDY, FEES)
    assert (await pps_state(db))[:2] == (total.credits, total.carry)
    assert await invariant(db) == []


async def test_concurrent_pps_runs_credit_each_share_once(db):
    from payouts.schemes import pps_credits
    rows = make_shares(0, 80)
    await insert_shares(db, rows)
    processors = [PayoutProcessor(db, POOL, "pps", FEES, page_size=5, block_value=SUBSIDY) for _ in range(3)]
    await asyncio.gather(*(p.run_once() for p in processors))
    total = pps_credits(works(rows), SUBSIDY, FEES)
    assert (await pps_state(db))[:2] == (total.credits, total.carry)
    # Without the lock, the watermark check alone refuses a stale batch.
    async with db.acquire() as conn:
        assert not await ledger.credit_pps_batch(conn, POOL, (None, None), (T0, "x"), {"ltc1qbob": 5}, {})
    assert (await pps_state(db))[:2] == (total.credits, total.carry)
