#!/usr/bin/env python3
"""Payout speed: the PPLNS report of a block over a window of 1 M stored shares, and a payment batch.

Runs an embedded PostgreSQL (``pool.ledger.embedded_postgres.PgServer``, durable, in a temporary directory),
migrates it, and seeds it in SQL (``INSERT ... SELECT generate_series``): ``--window-shares``
shares (default 1 M) from ``--miners`` miners (default 10k) that make up the PPLNS window of a
confirmed block at factor 2, plus ``--older-shares`` older shares outside it, spread over two
daily partitions.  Miners have varied vardiff difficulties (a third of them double theirs within
the window), the network difficulty changes once inside the window, and every 100,000th row is a
rejected block candidate (credited difficulty 0).

Figures (one JSON line on stdout at the end; progress on stderr):

* ``pplns_1m_shares_s``: the processor's report of the block (``PayoutProcessor.compute_report``
  plus the canonical bytes the ledger stores): the window streamed, whole shares counted per
  (address, difficulty, network difficulty) group in SQL and summed exactly in Python; best of
  ``--rounds``.  ``pplns_list_s`` is the baseline of the same run: the window read into a list of
  ``ShareWork`` and paid by the list-based ``payouts.schemes.pplns`` (once: it is slow);
  ``pplns_speedup`` their ratio.  The two reports must be equal byte for byte, or the run fails.
  ``pplns_rss_growth_mb`` / ``pplns_list_rss_growth_mb``: growth of the process's peak RSS during
  each (the streamed path runs first); ``pplns_python_cpu_s``: this process's CPU time in the best
  streamed round (the rest is PostgreSQL).  ``load_average`` (1 min, at the start and the end)
  says how busy the machine was.
* ``payment_batch_1000_s``: after the block is credited, building a payment batch of the 1,000
  largest balances and storing it in one transaction: the ``payments`` row,
  1,000 ``payment_outputs``, 1,000 journal debits and 1,000 balance decrements
  (``PaymentSender.store_payment``, the payment sender's own), with array parameters; best of ``--rounds``, each on the next
  1,000 payees.  ``payment_batch_1000_rowwise_s`` is the baseline: the same rows one statement
  each (``executemany``).  The ledger invariant is checked at the end.

Goal (payouts issue): the PPLNS computation for one block of a 1 M-share window under 2 s.

    python bench/payouts.py [--window-shares 1000000] [--miners 10000] [--older-shares 100000]
                            [--rounds 3] [--payees 1000] [--no-baseline]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

# This file is named like the package it measures: keep its own folder off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]

import asyncpg

from payouts import ledger
from payouts.fees import FeeConfig
from payouts.payments import BuiltPayment, PaymentOutput, PaymentPolicy, PaymentSender
from payouts.processor import PayoutProcessor
from payouts.rounds import Block
from payouts.schemes import pplns
from pool.ledger.database import connect_pool, create_share_partition, migrate
from pool.ledger.embedded_postgres import PgServer

POOL = "litecoin"
FACTOR = 2
FEES = FeeConfig("1", [("ltc1qdevelopmentfund0000000000000000000000", "0.5")], pool_account="pool")
REWARD = 625_000_000 + 1_234_567           # subsidy plus transaction fees, satoshis
SHARE_SPACING_US = 200                     # 5,000 shares/s
RETARGET_AT = 500_000                      # the newest RETARGET_AT shares are at the higher network difficulty
RETARGET = 1.07
GOAL_PPLNS_S = 2.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- seeding ---------------------------------------------------------------------------------------

# Share i (0 = oldest) of miner m = (i * 7919) mod miners; its credited difficulty is
# (1 + m mod 16) * 102.4, doubled for miners with m mod 3 = 0 in the newest 40 % of the shares
# (vardiff), and 0 for every 100,000th row (a rejected block candidate).
_DIFFICULTY_SQL = """CASE WHEN i % 100000 = 99999 THEN 0::float8
                          ELSE (1 + (i * 7919) % $miners % 16) * 102.4::float8
                               * CASE WHEN (i * 7919) % $miners % 3 = 0 AND i >= $vardiff_from THEN 2 ELSE 1 END
                     END"""


def miner_of(i: int, miners: int) -> int:
    return (i * 7919) % miners


def difficulty_of(i: int, miners: int, vardiff_from: int) -> float:
    if i % 100000 == 99999:
        return 0.0
    m = miner_of(i, miners)
    return (1 + m % 16) * 102.4 * (2 if m % 3 == 0 and i >= vardiff_from else 1)


def network_difficulties(window_shares: int, total: int, miners: int, vardiff_from: int) -> tuple[float, float]:
    """(before, after the retarget) such that the newest ``window_shares`` hold FACTOR units of work."""
    before = after = 0.0
    for i in range(total - window_shares, total):
        if i >= total - RETARGET_AT:
            after += difficulty_of(i, miners, vardiff_from)
        else:
            before += difficulty_of(i, miners, vardiff_from)
    network = (before + after / RETARGET) / FACTOR
    return network, network * RETARGET


async def seed(connection: asyncpg.Connection, args: argparse.Namespace) -> tuple[asyncpg.Record, float]:
    total = args.window_shares + args.older_shares
    vardiff_from = total - total * 2 // 5
    network, network_after = network_difficulties(args.window_shares, total, args.miners, vardiff_from)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # The shares straddle midnight UTC: the window reads two daily partitions.
    start = today - timedelta(microseconds=SHARE_SPACING_US * total // 2)
    for day in {(start - timedelta(days=1)).date(), start.date(), today.date(), (today + timedelta(days=1)).date()}:
        await create_share_partition(connection, day)
    sql = f"""
        INSERT INTO shares (share_id, created, pool, address, worker, credited_difficulty, actual_difficulty,
                            network_difficulty, height, coinbase_value, node_id, ip, is_block)
        SELECT '01' || lpad(to_hex(i), 16, '0'),
               $1::timestamptz + i * interval '{SHARE_SPACING_US} microseconds',
               '{POOL}',
               'ltc1qbench' || lpad(((i * 7919) % $miners)::text, 32, '0'),
               'rig' || (i % 3)::text,
               {_DIFFICULTY_SQL},
               4096, CASE WHEN i >= $retarget_from THEN $4::float8 ELSE $3::float8 END,
               2800000 + i / 500000, {REWARD}, 1, '10.0.0.1', false
          FROM generate_series(0, $2::bigint - 1) AS i"""
    sql = (sql.replace("$miners", str(args.miners)).replace("$vardiff_from", str(vardiff_from))
           .replace("$retarget_from", str(total - RETARGET_AT)))
    began = time.perf_counter()
    await connection.execute(sql, start, total, network, network_after)
    await connection.execute("ANALYZE shares")
    seconds = time.perf_counter() - began
    last = start + timedelta(microseconds=SHARE_SPACING_US * (total - 1))
    block = await connection.fetchrow(
        "INSERT INTO blocks (pool, height, hash, status, confirmations, reward, finder_address, created) "
        "VALUES ($1, 2800003, $2, 'confirmed', 100, $3, 'ltc1qbench' || lpad('7', 32, '0'), $4) RETURNING *",
        POOL, secrets.token_hex(32), REWARD, last + timedelta(microseconds=50))
    return block, seconds


# -- PPLNS -----------------------------------------------------------------------------------------

async def time_pplns(db: asyncpg.Pool, block_row: asyncpg.Record, args: argparse.Namespace) -> dict[str, Any]:
    processor = PayoutProcessor(db, POOL, "pplns", FEES, factor=FACTOR)
    results: dict[str, Any] = {}
    best = float("inf")
    rss_before = peak_rss_mb()
    async with db.acquire() as connection:
        for round_number in range(args.rounds):
            began, began_cpu = time.perf_counter(), time.process_time()
            report = await processor.compute_report(connection, block_row)
            streamed_bytes = report.to_json_bytes()
            seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
            if seconds < best:
                best, results["pplns_python_cpu_s"] = seconds, round(cpu, 4)
            log(f"pplns streamed, round {round_number + 1}: {seconds:.3f} s ({cpu:.3f} s of Python CPU)")
        results["pplns_rss_growth_mb"] = round(peak_rss_mb() - rss_before, 1)
        window = report.window
        results.update(pplns_1m_shares_s=round(best, 4), window_shares_counted=window.shares_counted,
                       window_filled=window.filled, window_miners=len(report.entries),
                       report_bytes=len(streamed_bytes), merkle_root=report.merkle_root)
        if args.baseline:
            rss_before = peak_rss_mb()
            began = time.perf_counter()
            shares = await processor.window_shares(connection, block_row)
            block = Block(block_row["height"], block_row["hash"], block_row["reward"],
                          block_row["finder_address"], block_row["status"])
            list_bytes = pplns(block, shares, FEES, factor=FACTOR).to_json_bytes()
            seconds = time.perf_counter() - began
            del shares
            log(f"pplns list-based: {seconds:.3f} s")
            if list_bytes != streamed_bytes:
                raise SystemExit("the streamed and the list-based PPLNS reports differ")
            results.update(pplns_list_s=round(seconds, 4), pplns_speedup=round(seconds / best, 1),
                           pplns_list_rss_growth_mb=round(peak_rss_mb() - rss_before, 1),
                           reports_identical=True)
    results["goal_pplns_under_2s"] = best < GOAL_PPLNS_S
    return results


# -- payment batch ---------------------------------------------------------------------------------

async def store_payment_batch(connection: asyncpg.Connection, pool: str, payment_row: dict[str, Any],
                              outputs: list[tuple[str, int, int]]) -> int:
    """The payment sender's own store (``PaymentSender.store_payment``): in one transaction the
    ``payments`` row, its ``payment_outputs`` (address, amount, debited), the journal debits and the
    balance decrements (locked in address order; a balance short of its debit stores nothing)."""
    sender = PaymentSender(None, None, pool, lambda address: b"", PaymentPolicy())
    built = BuiltPayment(payment_row["raw_tx"], payment_row["txid"], payment_row["fee"],
                         [PaymentOutput(address, amount, debited) for address, amount, debited in outputs])
    payment = await sender.store_payment(connection, built)
    return payment["id"]


async def store_payment_batch_rowwise(connection: asyncpg.Connection, pool: str, payment_row: dict[str, Any],
                                      outputs: list[tuple[str, int, int]]) -> int:
    """The baseline: the same rows, one statement each."""
    async with connection.transaction():
        payment_id = await connection.fetchval(
            """INSERT INTO payments (pool, status, txid, raw_tx, amount, fee, fee_paid_by, payees)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
            pool, payment_row["status"], payment_row["txid"], payment_row["raw_tx"], payment_row["amount"],
            payment_row["fee"], payment_row["fee_paid_by"], len(outputs))
        await connection.executemany(
            "INSERT INTO payment_outputs (payment_id, address, amount, debited) VALUES ($1, $2, $3, $4)",
            [(payment_id, *output) for output in outputs])
        await connection.executemany(
            "INSERT INTO journal (pool, address, amount, reason, payment_id) VALUES ($1, $2, $3, 'payment', $4)",
            [(pool, address, -debited, payment_id) for address, _, debited in outputs])
        await connection.executemany(
            "UPDATE balances SET amount = amount - $3, paid = paid + $3, updated = now() "
            "WHERE pool = $1 AND address = $2", [(pool, address, debited) for address, _, debited in outputs])
    return payment_id


async def build_and_store_payment(connection: asyncpg.Connection, payees: int, store) -> float:
    """Pick the ``payees`` largest balances (not the fee accounts), build the batch, store it."""
    fee_accounts = [FEES.pool_account] + [recipient.address for recipient in FEES.recipients]
    began = time.perf_counter()
    rows = await connection.fetch(
        "SELECT address, amount FROM balances WHERE pool = $1 AND amount > 0 AND address <> ALL($2::text[]) "
        "ORDER BY amount DESC, address LIMIT $3", POOL, fee_accounts, payees)
    if len(rows) < payees:
        raise SystemExit(f"only {len(rows)} balances to pay, {payees} wanted")
    outputs = [(row["address"], row["amount"], row["amount"]) for row in rows]   # the pool pays the fee
    payment_row = {"status": "signed", "txid": secrets.token_hex(32), "raw_tx": "02000000" + "00" * 200,
                   "amount": sum(output[1] for output in outputs), "fee": 34 * len(outputs) + 200,
                   "fee_paid_by": "pool"}
    await store(connection, POOL, payment_row, outputs)
    return time.perf_counter() - began


async def time_payments(db: asyncpg.Pool, block_row: asyncpg.Record, args: argparse.Namespace) -> dict[str, Any]:
    processor = PayoutProcessor(db, POOL, "pplns", FEES, factor=FACTOR)
    run = await processor.run_once()
    if run.credited != [block_row["height"]]:
        raise SystemExit(f"the block was not credited: {run}")
    results: dict[str, Any] = {}
    async with db.acquire() as connection:
        results["balances"] = await connection.fetchval("SELECT count(*) FROM balances WHERE pool = $1", POOL)
        best = float("inf")
        for round_number in range(args.rounds):
            seconds = await build_and_store_payment(connection, args.payees, store_payment_batch)
            best = min(best, seconds)
            log(f"payment batch of {args.payees}, round {round_number + 1}: {seconds:.3f} s")
        results[f"payment_batch_{args.payees}_s"] = round(best, 4)
        if args.baseline:
            seconds = await build_and_store_payment(connection, args.payees, store_payment_batch_rowwise)
            log(f"payment batch of {args.payees}, row by row: {seconds:.3f} s")
            results[f"payment_batch_{args.payees}_rowwise_s"] = round(seconds, 4)
            results["payment_batch_speedup"] = round(seconds / best, 1)
        problems = await ledger.check_invariant(connection, POOL)
        if problems:
            raise SystemExit("ledger invariant broken:\n" + "\n".join(problems))
        results["ledger_invariant_ok"] = True
    return results


# -- main ------------------------------------------------------------------------------------------

async def bench(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"window_shares": args.window_shares, "older_shares": args.older_shares,
                               "miners": args.miners, "cpu_count": os.cpu_count(),
                               "python": platform.python_version(),
                               "load_average": [round(os.getloadavg()[0], 2)]}
    with PgServer() as server:
        await migrate(server.dsn)
        db = await connect_pool(server.dsn, max_size=2, command_timeout=600)
        try:
            async with db.acquire() as connection:
                results["postgres"] = await connection.fetchval("SHOW server_version")
                log(f"seeding {args.window_shares + args.older_shares} shares of {args.miners} miners ...")
                block_row, seconds = await seed(connection, args)
                results["seed_s"] = round(seconds, 2)
                log(f"seeded in {seconds:.1f} s")
            results.update(await time_pplns(db, block_row, args))
            results.update(await time_payments(db, block_row, args))
        finally:
            await db.close()
    results["load_average"].append(round(os.getloadavg()[0], 2))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window-shares", type=int, default=1_000_000)
    parser.add_argument("--older-shares", type=int, default=100_000)
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--payees", type=int, default=1000)
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the list-based PPLNS and the row-by-row payment batch")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args))), flush=True)


if __name__ == "__main__":
    main()
