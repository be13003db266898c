"""A mature block is always credited, whatever its round holds (the real processor, a real PostgreSQL).

The failure this guards against: with PROP, a block's row is written at once but the shares of its
round can be lost within one flush interval when ``pool run`` is killed (SIGKILL).  The block then
matured with an empty round, the scheme refused it ("no shares to pay") and, since blocks were
credited in height order and the run stopped at the first refusal, no later block was ever
credited.  Here the same state is made directly in the database: mature blocks whose round (PROP)
or window (PPLNS) holds no stored share, one of them with no finder stored either, between and
before normal blocks, for every scheme.

What must hold: one run credits every mature block; an empty round pays the block's finder (the
pool's fee accounts when no finder is stored) and its report says why; every credited block's
journal adds up to its reward exactly, in integers (credits + fees == reward); ``verify_block``
recomputes each stored report byte for byte; a second run changes nothing.

A crash between steps: each block is credited in one database transaction (journal, balances,
report and ``blocks.credited`` together), so a crash mid-block leaves that block untouched and the
blocks before it credited; the next run credits the rest, each block once (checked below by
failing the report write of the empty-round block).
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from payouts import ledger
from payouts.fees import FeeConfig
from payouts.processor import PayoutProcessor
from payouts.money import PayoutError
from payouts.schemes import ShareWork, fpps_credits, pps_credits

POOL = "litecoin"
FEES = FeeConfig("1", [("ltc1qdevfund", "0.25")], pool_account="pool")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NETWORK = 1000.0
MINERS = ["ltc1qalice", "ltc1qbob", "ltc1qcarol"]
SUBSIDY = 625_000_000
REWARD = 1_250_000_003           # odd on purpose: the rounding remainder is never zero
SCHEMES = ["pplns", "prop", "solo", "pps", "fpps"]

# (height, seconds after T0, finder): 698 and 699 come before any stored share (empty for PPLNS
# and PROP; 698 has no finder at all), 701's round (shares 21..40) was lost, 700 and 702 are normal.
BLOCKS = [(698, -20, ""), (699, -10, "ltc1qcarol"), (700, 20, "ltc1qbob"), (701, 40, "ltc1qalice"),
          (702, 60, "ltc1qbob")]
LOST = range(21, 41)             # the shares of 701's round, lost in the crash


def share_rows(numbers) -> list[tuple]:
    return [(f"01{n:016x}", T0 + timedelta(seconds=n), POOL, MINERS[n % 3], "rig", float(37 + (n * 53) % 211),
             100.0, NETWORK, 100, 625_000_000 + 1013 * n, 1, "127.0.0.1", False) for n in numbers]


async def seed(db) -> None:
    rows = share_rows(n for n in range(0, 61) if n not in LOST)
    await db.executemany(
        "INSERT INTO shares (share_id, created, pool, address, worker, credited_difficulty, "
        "actual_difficulty, network_difficulty, height, coinbase_value, node_id, ip, is_block) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)", rows)
    for height, seconds, finder in BLOCKS:
        await db.execute(
            "INSERT INTO blocks (pool, height, hash, status, confirmations, reward, finder_address, created) "
            "VALUES ($1, $2, $3, 'confirmed', 100, $4, $5, $6)",
            POOL, height, f"{height:064x}", REWARD, finder, T0 + timedelta(seconds=seconds))


def works(rows: list[tuple]) -> list[ShareWork]:
    return [ShareWork(r[3], r[4], r[5], r[7], r[0], r[1], r[8], r[9]) for r in rows]


def processor_for(db, scheme: str, **options) -> PayoutProcessor:
    return PayoutProcessor(db, POOL, scheme, FEES, factor="1.5", block_value=SUBSIDY, settle_s=0, **options)


async def credited_heights(db) -> list[int]:
    return list(await db.fetchval(
        "SELECT coalesce(array_agg(height ORDER BY height), '{}') FROM blocks WHERE credited"))


async def block_totals(db) -> dict[int, int]:
    rows = await db.fetch(
        "SELECT b.height, coalesce(sum(j.amount), 0) AS total FROM blocks b "
        "LEFT JOIN journal j ON j.block_hash = b.hash GROUP BY b.height")
    return {row["height"]: int(row["total"]) for row in rows}


async def report_of(db, height: int) -> dict:
    import json
    raw = await db.fetchval("SELECT report FROM payout_reports WHERE height = $1", height)
    return json.loads(bytes(raw))


async def check(db) -> list[str]:
    async with db.acquire() as connection:
        return await ledger.check_invariant(connection, POOL)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_every_mature_block_is_credited_whatever_its_round_holds(db, scheme):
    await seed(db)
    processor = processor_for(db, scheme)
    run = await processor.run_once()
    assert run.failed == [], run.failed
    assert await credited_heights(db) == [698, 699, 700, 701, 702]
    assert await check(db) == []
    totals = await block_totals(db)
    if scheme in ("pps", "fpps"):
        # Miners were credited per share; the block rewards are the pool's PPS reserve, not a balance.
        assert set(totals.values()) == {0}
        for height, _, _ in BLOCKS:
            report = await report_of(db, height)
            assert report["paid"] is False and report["totals"]["paid"] == 0
            assert any("per share" in note for note in report["notes"])
        shares = works(share_rows(n for n in range(0, 61) if n not in LOST))
        expected = (pps_credits(shares, SUBSIDY, FEES) if scheme == "pps" else fpps_credits(shares, FEES))
        balances = {r["address"]: r["amount"] for r in await db.fetch("SELECT address, amount FROM balances")}
        assert balances == expected.credits
    else:
        # Credits + fees == reward for every block, in integer satoshis.
        assert totals == {height: REWARD for height, _, _ in BLOCKS}
        assert all(isinstance(total, int) for total in totals.values())
        for height, _, finder in BLOCKS:
            report = await report_of(db, height)
            assert report["totals"]["paid"] == REWARD
            assert report["totals"]["miners"] + report["totals"]["fees"] == REWARD
        empty = {"pplns": [698, 699], "prop": [698, 699, 701], "solo": [698]}[scheme]
        for height, _, finder in BLOCKS:
            report = await report_of(db, height)
            paid_to = [miner["address"] for miner in report["miners"]]
            if height not in empty:
                assert not any("goes to" in note for note in report["notes"])
                continue
            if finder:
                assert paid_to == [finder]
                assert any(f"goes to the finder {finder}" in note for note in report["notes"]), report["notes"]
            else:
                # No finder either: the miners' part goes to the fee accounts, by their fee percents
                # (pool 1 %, fund 0.25 %: 4 to 1).
                assert sorted(paid_to) == ["ltc1qdevfund", "pool"]
                amounts = {miner["address"]: miner["amount"] for miner in report["miners"]}
                assert amounts["pool"] // 4 - amounts["ltc1qdevfund"] in (0, 1)
                assert any("fee accounts" in note for note in report["notes"]), report["notes"]
    for height, _, _ in BLOCKS:
        ok, detail = await processor.verify_block(height)
        assert ok, detail
    # A second run changes nothing.
    before = (await block_totals(db), await db.fetchval("SELECT count(*) FROM journal"))
    again = await processor.run_once()
    assert again.credited == [] and again.failed == []
    assert (await block_totals(db), await db.fetchval("SELECT count(*) FROM journal")) == before


@pytest.mark.parametrize("scheme", ["pplns", "prop", "solo"])
async def test_a_crash_in_the_empty_round_block_credits_nothing_twice(db, scheme, monkeypatch):
    await seed(db)
    processor = processor_for(db, scheme)
    real = ledger._store_report

    async def crash_at_698(connection, pool, report):
        if report.block.height == 698:
            raise ConnectionResetError("the node died after the journal and balances of block 698")
        return await real(connection, pool, report)

    monkeypatch.setattr(ledger, "_store_report", crash_at_698)
    with pytest.raises(ConnectionResetError):
        await processor.run_once()
    # Block 698's transaction rolled back whole: no journal entry, no balance, no report for it.
    assert await credited_heights(db) == []
    assert await db.fetchval("SELECT count(*) FROM journal") == 0
    assert await db.fetchval("SELECT count(*) FROM balances") == 0
    monkeypatch.setattr(ledger, "_store_report", real)
    assert (await processor.run_once()).credited == [698, 699, 700, 701, 702]
    assert await block_totals(db) == {height: REWARD for height, _, _ in BLOCKS}
    assert sum(r["amount"] for r in await db.fetch("SELECT amount FROM balances")) == 5 * REWARD
    assert await check(db) == []


# PPLNS: 701's window is 700's (its own round was lost), so the row refused in 700's window stops both.
FAILING = {"pplns": [700, 701], "prop": [700], "solo": [700]}


@pytest.mark.parametrize("scheme", sorted(FAILING))
async def test_a_block_that_cannot_be_credited_alerts_and_holds_back_nothing(db, scheme, caplog, monkeypatch):
    await seed(db)
    processor = processor_for(db, scheme)
    if scheme == "solo":
        # SOLO reads no shares: the block itself is refused (any reason other than an empty round).
        real = processor.compute_report
        refused = {"on": True}

        async def refuse_700(connection, row):
            if row["height"] == 700 and refused["on"]:
                raise PayoutError("block 700 refused for the test")
            return await real(connection, row)

        monkeypatch.setattr(processor, "compute_report", refuse_700)
    else:
        # A row the pure code refuses (a negative height), in 700's round and window.
        await db.execute(
            "INSERT INTO shares (share_id, created, pool, address, worker, credited_difficulty, "
            "actual_difficulty, network_difficulty, height, coinbase_value, node_id) "
            "VALUES ('bad', $1, $2, 'ltc1qmallory', 'rig', 5, 5, 1000, -1, 0, 1)",
            T0 + timedelta(seconds=19, milliseconds=500), POOL)
    with caplog.at_level(logging.ERROR):
        run = await processor.run_once()
    assert [height for height, _, _ in run.failed] == FAILING[scheme]
    assert await credited_heights(db) == sorted({698, 699, 700, 701, 702} - set(FAILING[scheme]))
    assert "ALERT" in caplog.text and "at 700 not credited" in caplog.text
    assert await check(db) == []
    # Fixed by the operator: the next run credits them, once.
    if scheme == "solo":
        refused["on"] = False
    else:
        await db.execute("DELETE FROM shares WHERE share_id = 'bad'")
    run = await processor.run_once()
    assert run.credited == FAILING[scheme] and run.failed == []
    assert await block_totals(db) == {height: REWARD for height, _, _ in BLOCKS}
    assert await check(db) == []


async def test_prop_waits_for_a_pending_block_below_and_the_others_do_not(db):
    """The one order that matters: a PROP round starts at the previous confirmed block, so a block
    is not credited while a block below it is pending (confirmed later, it would take the same
    shares).  PPLNS and SOLO do not wait."""
    await seed(db)
    await db.execute("UPDATE blocks SET status = 'pending' WHERE height = 700")
    prop_run = await processor_for(db, "prop").run_once()
    assert prop_run.credited == [698, 699] and prop_run.waiting == [701, 702] and prop_run.failed == []
    await db.execute("UPDATE blocks SET status = 'confirmed' WHERE height = 700")
    assert (await processor_for(db, "prop").run_once()).credited == [700, 701, 702]
    assert await block_totals(db) == {height: REWARD for height, _, _ in BLOCKS}
    assert await check(db) == []


@pytest.mark.parametrize("scheme", ["pplns", "solo"])
async def test_other_schemes_do_not_wait_for_a_pending_block(db, scheme):
    await seed(db)
    await db.execute("UPDATE blocks SET status = 'pending' WHERE height = 700")
    run = await processor_for(db, scheme).run_once()
    assert run.credited == [698, 699, 701, 702] and run.waiting == []


async def test_the_payout_loop_counts_blocks_it_could_not_credit(db):
    """The pool's payout loop feeds the metrics: block_failures (a counter) and blocks_not_credited
    (a gauge, what the last run left), next to the alert the processor logs."""
    import asyncio

    from pool.app import run_payouts

    await seed(db)
    await db.execute(
        "INSERT INTO shares (share_id, created, pool, address, worker, credited_difficulty, "
        "actual_difficulty, network_difficulty, height, coinbase_value, node_id) "
        "VALUES ('bad', $1, $2, 'ltc1qmallory', 'rig', 5, 5, 1000, -1, 0, 1)",
        T0 + timedelta(seconds=19, milliseconds=500), POOL)
    counters: dict[str, int] = {}
    loop = asyncio.ensure_future(run_payouts(processor_for(db, "prop"), 0.05, counters))
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            if counters.get("runs", 0) >= 3:
                break
        assert counters["blocks_credited"] == 4 and counters["blocks_not_credited"] == 1
        assert counters["block_failures"] >= 2 and counters.get("failures", 0) == 0
        await db.execute("DELETE FROM shares WHERE share_id = 'bad'")
        runs = counters["runs"]
        for _ in range(200):
            await asyncio.sleep(0.05)
            if counters["runs"] >= runs + 2:
                break
        assert counters["blocks_credited"] == 5 and counters["blocks_not_credited"] == 0
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
