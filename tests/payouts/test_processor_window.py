"""The streamed PPLNS window on a real PostgreSQL equals the list-based scheme over the same shares.

``PayoutProcessor.compute_report`` (boundary by a floating-point running sum in SQL, whole shares
grouped in SQL, the rest one by one) is compared byte for byte with ``payouts.schemes.pplns`` over
the shares read as a list (``window_shares``) and over the shares as inserted here."""
from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from payouts import processor as processor_module
from payouts.fees import FeeConfig
from payouts.money import PayoutError
from payouts.processor import PayoutProcessor
from payouts.rounds import Block, ShareWork
from payouts.schemes import pplns
from pool.ledger.database import create_share_partition

POOL = "litecoin"
FEES = FeeConfig("1.5", [("ltc1qfund", "0.25")], pool_account="pool")
MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def random_rows(seed: int, count: int, *, start: datetime) -> list[tuple]:
    """Share rows newest last: 25 miners, vardiff levels, two network difficulties, equal timestamps
    (ties broken by id), ids of varied length, zero-difficulty block candidates."""
    rng = random.Random(seed)
    rows, moment = [], start
    for n in range(count):
        moment += timedelta(microseconds=rng.choice([0, 0, 1, 250, 100_000]))
        credited = 0.0 if rng.random() < 0.02 else rng.choice([1.0, 3.3, 16.0, 1e-3, 1024.7]) * rng.choice([1, 2])
        network = 5000.0 if n < count // 2 else 5000.0 * 1.0625
        share_id = f"{rng.randrange(16**6):06x}-{n}"
        rows.append((share_id, moment, POOL, f"ltc1q{rng.randrange(25):02d}", "rig", credited, credited,
                     network, 100, 625_000_000, 1, "127.0.0.1", credited == 0.0))
    return rows


async def insert(db, rows: list[tuple]) -> None:
    await db.executemany(
        "INSERT INTO shares (share_id, created, pool, address, worker, credited_difficulty, "
        "actual_difficulty, network_difficulty, height, coinbase_value, node_id, ip, is_block) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)", rows)


def works(rows: list[tuple], until: datetime) -> list[ShareWork]:
    return [ShareWork(r[3], r[4], r[5], r[7], r[0], r[1], r[8], r[9]) for r in rows
            if r[5] > 0 and r[1] <= until]


async def add_block(db, height: int, created: datetime):
    return await db.fetchrow(
        "INSERT INTO blocks (pool, height, hash, status, reward, finder_address, created) "
        "VALUES ($1, $2, $3, 'confirmed', 1250000007, 'ltc1q01', $4) RETURNING *",
        POOL, height, f"{height:064x}", created)


def block_of(row) -> Block:
    return Block(row["height"], row["hash"], row["reward"], row["finder_address"], row["status"])


async def reports(db, row, factor, page_size=50):
    processor = PayoutProcessor(db, POOL, "pplns", FEES, factor=factor, page_size=page_size)
    async with db.acquire() as connection:
        streamed = await processor.compute_report(connection, row)
        listed = pplns(block_of(row), await processor.window_shares(connection, row), FEES, factor=factor)
    return streamed, listed


@pytest.mark.parametrize("factor", ["0.5", "2", "3.7"])
async def test_streamed_window_equals_the_list_based_scheme(db, factor):
    # Across midnight UTC: the window reads two daily partitions.
    await create_share_partition(db, (MIDNIGHT - timedelta(days=1)).date())
    rows = random_rows(11, 2500, start=MIDNIGHT - timedelta(seconds=60))
    await insert(db, rows)
    for height, index in ((700, 2499), (701, 1800), (702, 600), (703, 40)):
        row = await add_block(db, height, rows[index][1])
        streamed, listed = await reports(db, row, factor)
        expected = pplns(block_of(row), works(rows, rows[index][1]), FEES, factor=factor)
        assert streamed.to_json_bytes() == listed.to_json_bytes() == expected.to_json_bytes()
        assert streamed.merkle_root == expected.merkle_root


async def test_short_window_and_boundary_on_the_newest_share(db):
    rows = random_rows(12, 300, start=MIDNIGHT + timedelta(hours=1))
    # The newest share alone is more than the window: it is the boundary, counted in part.
    rows.append(("ffff-big", rows[-1][1] + timedelta(seconds=1), POOL, "ltc1qbig", "rig", 1e7, 1e7, 5000.0,
                 100, 625_000_000, 1, "127.0.0.1", False))
    await insert(db, rows)
    short = await add_block(db, 800, rows[-2][1])       # 300 small shares: about 19 units of work
    streamed, listed = await reports(db, short, "50")
    assert not streamed.window.filled
    assert streamed.to_json_bytes() == listed.to_json_bytes()
    big = await add_block(db, 801, rows[-1][1])
    streamed, listed = await reports(db, big, "50")
    assert streamed.window.shares_counted == 1 and streamed.window.oldest_share_fraction == Fraction(1, 40)
    assert streamed.to_json_bytes() == listed.to_json_bytes()


async def test_a_boundary_off_by_rounding_falls_back_to_one_by_one(db, monkeypatch):
    rows = random_rows(13, 1500, start=MIDNIGHT + timedelta(hours=2))
    await insert(db, rows)
    row = await add_block(db, 900, rows[-1][1])
    expected = pplns(block_of(row), works(rows, rows[-1][1]), FEES).to_json_bytes()
    # A margin of -50 % puts the SQL boundary past the true one: the exact check refuses the groups.
    monkeypatch.setattr(processor_module, "_BOUNDARY_MARGIN", Fraction(-1, 2))
    assert (await reports(db, row, "2"))[0].to_json_bytes() == expected
    # A margin of 100 %: the boundary is the newest share, everything is counted one by one.
    monkeypatch.setattr(processor_module, "_BOUNDARY_MARGIN", Fraction(1))
    assert (await reports(db, row, "2"))[0].to_json_bytes() == expected


@pytest.mark.parametrize("column, value", [("network_difficulty", math.nan), ("network_difficulty", 0.0),
                                           ("credited_difficulty", math.inf), ("address", ""),
                                           ("credited_difficulty", 1e300)])
async def test_a_bad_share_inside_the_window_is_refused_as_before(db, column, value):
    rows = random_rows(14, 800, start=MIDNIGHT + timedelta(hours=3))
    await insert(db, rows)
    row = await add_block(db, 1000, rows[-1][1])
    inside, outside = [r[0] for r in rows if r[5] > 0][-3], rows[5][0]   # the window holds ~8 shares
    await db.execute(f"UPDATE shares SET {column} = $2 WHERE share_id = $1", outside, value)
    streamed, listed = await reports(db, row, "0.5")     # the old share is outside the window: no error
    assert streamed.to_json_bytes() == listed.to_json_bytes()
    await db.execute(f"UPDATE shares SET {column} = $2 WHERE share_id = $1", inside, value)
    processor = PayoutProcessor(db, POOL, "pplns", FEES, factor="0.5")
    async with db.acquire() as connection:
        if column == "credited_difficulty" and value == 1e300:
            # A valid, huge share: it fills the window at once (and is counted in part) both ways.
            streamed = await processor.compute_report(connection, row)
            listed = pplns(block_of(row), await processor.window_shares(connection, row), FEES, factor="0.5")
            assert streamed.to_json_bytes() == listed.to_json_bytes()
            return
        with pytest.raises(PayoutError) as streamed_error:
            await processor.compute_report(connection, row)
        with pytest.raises(PayoutError) as listed_error:
            await processor.window_shares(connection, row)
        assert str(streamed_error.value) == str(listed_error.value)
