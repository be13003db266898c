"""The money side of the database: crediting a paid block, the ledger invariant, the payout lock.

This wraps the pure engine (``payouts.schemes`` decides the amounts; nothing here computes one).
Every write is one transaction: a block's journal entries, its balance increases, its payout
report and ``blocks.credited`` are committed together or not at all, so a crash at any point leaves
either nothing or everything, and the next run credits the block exactly once.

Idempotence has two guards: ``credit_block`` reads the block ``FOR UPDATE`` and does nothing when
it is already credited (a second crediter waits for the first to commit, then sees ``credited``),
and the unique index ``journal_one_block_credit`` refuses a second credit of the same block,
address and reason even if the first guard were bypassed.

The invariant: for every address, the sum of its journal entries equals its balance.  The journal
is append-only (a trigger refuses UPDATE and DELETE) and balances cannot go negative (CHECK).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from payouts import merkle
from payouts.money import PayoutError
from payouts.report import PayoutReport

logger = logging.getLogger(__name__)

BLOCK_CREDIT = "block_credit"
POOL_FEE = "pool_fee"
FEE_RECIPIENT = "fee_recipient"
#: Schemes that credit miners per share: a confirmed block's report credits no balance (its reward
#: is the pool's PPS reserve), so its journal entries sum to 0, not to the reward.
PER_SHARE_SCHEMES = ("pps", "fpps")


class LedgerError(RuntimeError):
    """The database and the report disagree (unknown block, a report for another block...)."""


# -- the payout lock ---------------------------------------------------------------------------------


def payout_lock_key(pool: str) -> int:
    """The advisory lock key (signed bigint) of the payout runs of ``pool``: fixed per pool name."""
    digest = hashlib.sha256(b"quarry-payouts\x00" + pool.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def try_payout_lock(connection: asyncpg.Connection, pool: str) -> bool:
    """Take the session-level payout lock of ``pool`` on ``connection`` if free; True when taken."""
    return await connection.fetchval("SELECT pg_try_advisory_lock($1)", payout_lock_key(pool))


async def release_payout_lock(connection: asyncpg.Connection, pool: str) -> None:
    if connection.is_closed():
        return  # the lock went with the session
    await connection.fetchval("SELECT pg_advisory_unlock($1)", payout_lock_key(pool))


@asynccontextmanager
async def payout_lock(connection: asyncpg.Connection, pool: str) -> AsyncIterator[bool]:
    """``async with payout_lock(conn, pool) as held:`` -- ``held`` is False when another session
    (another node or process) is paying out this pool; then do nothing.  Session-level, so it spans
    the one-transaction-per-block loop; released on exit (and by PostgreSQL if the session dies)."""
    held = await try_payout_lock(connection, pool)
    try:
        yield held
    finally:
        if held:
            await release_payout_lock(connection, pool)


# -- crediting a block -------------------------------------------------------------------------------


def journal_entries(report: PayoutReport) -> list[tuple[str, int, str]]:
    """(address, amount, reason) for every non-zero amount of a paid report."""
    entries = [(entry.address, entry.amount, BLOCK_CREDIT) for entry in report.entries if entry.amount]
    entries += [(payment.address, payment.amount, FEE_RECIPIENT)
                for payment in report.fee_payments if payment.amount]
    if report.pool_amount:
        entries.append((report.fees.pool_account, report.pool_amount, POOL_FEE))
    return entries


def _check_report(block: Mapping[str, Any], report: PayoutReport, scheme: str) -> None:
    if not isinstance(report, PayoutReport):
        raise LedgerError(f"expected a PayoutReport, got {type(report).__name__}")
    wanted = (block["hash"], block["height"], block["reward"], block["status"], scheme)
    given = (report.block.hash, report.block.height, report.block.reward, report.block.status, report.scheme)
    if wanted != given:
        raise LedgerError(f"the report is for (hash, height, reward, status, scheme) {given}, "
                          f"the block row is {wanted}")
    if scheme in PER_SHARE_SCHEMES:
        if report.paid:
            raise LedgerError(f"block {block['hash']}: a {scheme} block report credits no balance")
    elif not report.paid:
        raise LedgerError(f"block {block['hash']}: the report pays nothing")


async def _insert_journal(connection: asyncpg.Connection, pool: str, block_hash: str,
                          entries: list[tuple[str, int, str]]) -> None:
    await connection.execute(
        """INSERT INTO journal (pool, address, amount, reason, block_hash)
           SELECT $1, address, amount, reason, $2
             FROM unnest($3::text[], $4::bigint[], $5::text[]) AS e (address, amount, reason)""",
        pool, block_hash, [e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries])


async def _add_balances(connection: asyncpg.Connection, pool: str, amounts: dict[str, int]) -> None:
    # Sorted: concurrent writers lock balance rows in one order (no deadlock).
    addresses = sorted(amounts, key=merkle.sort_key)
    await connection.execute(
        """INSERT INTO balances AS b (pool, address, amount)
           SELECT $1, address, amount FROM unnest($2::text[], $3::bigint[]) AS e (address, amount)
           ON CONFLICT (pool, address)
           DO UPDATE SET amount = b.amount + EXCLUDED.amount, updated = now()""",
        pool, addresses, [amounts[a] for a in addresses])


async def _store_report(connection: asyncpg.Connection, pool: str, report: PayoutReport) -> None:
    await connection.execute(
        """INSERT INTO payout_reports (pool, block_hash, height, scheme, merkle_root, report)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        pool, report.block.hash, report.block.height, report.scheme, report.merkle_root,
        report.to_json_bytes())


async def _mark_credited(connection: asyncpg.Connection, block_id: int) -> None:
    await connection.execute("UPDATE blocks SET credited = true, credited_at = now(), updated = now() "
                             "WHERE id = $1", block_id)


async def credit_block(connection: asyncpg.Connection, pool: str, block_row: Mapping[str, Any],
                       report: PayoutReport, scheme: str) -> bool:
    """Credit a confirmed block by ``report``, in one transaction; True when it was credited now.
    For PPS / FPPS the report credits nothing (``payouts.schemes.settled_per_share``): the report is
    stored and the block marked credited, with no journal entry.

    False (and nothing written) when the block is already credited or is not confirmed (an
    orphaned or rejected block is never credited; a pending one waits).  Raises ``LedgerError``
    when the block is unknown or the report is not this block's paid ``scheme`` report, and
    ``PayoutError`` if the report's amounts do not add up to the reward.
    """
    async with connection.transaction():
        block = await connection.fetchrow(
            "SELECT id, height, hash, status, reward, credited FROM blocks "
            "WHERE pool = $1 AND hash = $2 FOR UPDATE", pool, block_row["hash"])
        if block is None:
            raise LedgerError(f"no block {block_row['hash']} in pool {pool}")
        if block["credited"]:
            logger.info("block %s at %d is already credited", block["hash"], block["height"])
            return False
        if block["status"] != "confirmed":
            logger.info("block %s at %d is %s: not credited", block["hash"], block["height"], block["status"])
            return False
        _check_report(block, report, scheme)
        entries = journal_entries(report)
        expected = 0 if scheme in PER_SHARE_SCHEMES else block["reward"]
        if sum(amount for _, amount, _ in entries) != expected:
            raise PayoutError(f"block {block['hash']}: credits do not sum to {expected} "
                              f"(reward {block['reward']})")
        amounts: dict[str, int] = {}
        for address, amount, _ in entries:
            amounts[address] = amounts.get(address, 0) + amount
        if entries:
            await _insert_journal(connection, pool, block["hash"], entries)
            await _add_balances(connection, pool, amounts)
        await _store_report(connection, pool, report)
        await _mark_credited(connection, block["id"])
    logger.info("block %s at %d credited: %d entries, %d satoshis", block["hash"], block["height"],
                len(entries), block["reward"])
    return True


# -- PPS / FPPS ------------------------------------------------------------------------------------

PPS_CREDIT = "pps_credit"

Watermark = tuple  # (last_created, last_share_id): (None, None) before the first batch


async def pps_position(connection: asyncpg.Connection, pool: str) -> tuple[Watermark, dict[str, int]]:
    """The PPS watermark of ``pool`` and its carry (address -> units of 10^-18 satoshi)."""
    state = await connection.fetchrow(
        "SELECT last_created, last_share_id FROM pps_state WHERE pool = $1", pool)
    watermark = (None, None) if state is None else (state["last_created"], state["last_share_id"])
    rows = await connection.fetch("SELECT address, carry FROM pps_carry WHERE pool = $1", pool)
    return watermark, {row["address"]: row["carry"] for row in rows}


async def credit_pps_batch(connection: asyncpg.Connection, pool: str, expected: Watermark, new: Watermark,
                           credits: Mapping[str, int], carry: Mapping[str, int]) -> bool:
    """Credit one PPS batch in one transaction: ``pps_credit`` journal entries, balances, the whole
    new carry (it replaces the old) and the watermark moved from ``expected`` to ``new``.

    False (nothing written) when the watermark is no longer ``expected``: another run credited
    those shares first.  The pps_state row is locked, so two runs cannot both move it.
    """
    async with connection.transaction():
        await connection.execute(
            "INSERT INTO pps_state (pool) VALUES ($1) ON CONFLICT (pool) DO NOTHING", pool)
        state = await connection.fetchrow(
            "SELECT last_created, last_share_id FROM pps_state WHERE pool = $1 FOR UPDATE", pool)
        if (state["last_created"], state["last_share_id"]) != tuple(expected):
            logger.info("pool %s: the PPS watermark moved: batch not credited", pool)
            return False
        amounts = {address: amount for address, amount in credits.items() if amount}
        if any(isinstance(a, bool) or not isinstance(a, int) or a < 0 for a in amounts.values()):
            raise PayoutError(f"PPS credits must be non-negative ints: {amounts}")
        if amounts:
            await connection.execute(
                """INSERT INTO journal (pool, address, amount, reason)
                   SELECT $1, address, amount, 'pps_credit'
                     FROM unnest($2::text[], $3::bigint[]) AS e (address, amount)""",
                pool, list(amounts), list(amounts.values()))
            await _add_balances(connection, pool, amounts)
        await connection.execute("DELETE FROM pps_carry WHERE pool = $1", pool)
        await connection.execute(
            "INSERT INTO pps_carry (pool, address, carry) "
            "SELECT $1, address, carry FROM unnest($2::text[], $3::bigint[]) AS c (address, carry)",
            pool, list(carry), list(carry.values()))
        await connection.execute("UPDATE pps_state SET last_created = $2, last_share_id = $3 WHERE pool = $1",
                                 pool, new[0], new[1])
    return True


# -- the invariant -----------------------------------------------------------------------------------


async def check_invariant(connection: asyncpg.Connection, pool: str) -> list[str]:
    """Every way the ledger of ``pool`` is inconsistent, as readable lines; empty when all is well.

    Checked, in one snapshot (REPEATABLE READ): per address, sum of journal == balance; per
    credited block, a payout report exists and its journal entries sum to the block reward (to 0
    for a PPS / FPPS report, which credits no balance); no report or block journal entry for a
    block that is not credited.
    """
    problems: list[str] = []
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        rows = await connection.fetch(
            """SELECT address, coalesce(j.total, 0) AS journal_total, coalesce(b.amount, 0) AS balance
                 FROM (SELECT address, sum(amount) AS total FROM journal WHERE pool = $1 GROUP BY address) j
                 FULL JOIN (SELECT address, amount FROM balances WHERE pool = $1) b USING (address)
                WHERE coalesce(j.total, 0) <> coalesce(b.amount, 0)
                ORDER BY address""", pool)
        for row in rows:
            problems.append(f"{row['address']}: journal sums to {int(row['journal_total'])} "
                            f"but the balance is {row['balance']}")
        rows = await connection.fetch(
            """SELECT b.height, b.hash, b.reward, b.credited, (r.block_hash IS NOT NULL) AS has_report,
                      coalesce(r.scheme = ANY($2::text[]), false) AS per_share,
                      coalesce(j.total, 0) AS journal_total
                 FROM blocks b
                 LEFT JOIN payout_reports r ON r.block_hash = b.hash
                 LEFT JOIN (SELECT block_hash, sum(amount) AS total FROM journal
                             WHERE pool = $1 AND block_hash IS NOT NULL
                               AND reason IN ('block_credit', 'pool_fee', 'fee_recipient')
                             GROUP BY block_hash) j ON j.block_hash = b.hash
                WHERE b.pool = $1 AND (b.credited OR r.block_hash IS NOT NULL OR j.block_hash IS NOT NULL)
                ORDER BY b.height""", pool, list(PER_SHARE_SCHEMES))
        for row in rows:
            what = f"block {row['hash']} at {row['height']}"
            if not row["credited"]:
                problems.append(f"{what} is not credited but has a report or journal entries")
                continue
            if not row["has_report"]:
                problems.append(f"{what} is credited but has no payout report")
            if row["per_share"]:
                if int(row["journal_total"]) != 0:
                    problems.append(f"{what}: a per-share (PPS) block has journal credits "
                                    f"{int(row['journal_total'])}")
            elif int(row["journal_total"]) != row["reward"]:
                problems.append(f"{what}: journal credits sum to {int(row['journal_total'])}, "
                                f"the reward is {row['reward']}")
        if await connection.fetchval("SELECT to_regclass('payments')") is not None:
            problems += await _payment_problems(connection, pool)
    return problems


async def _payment_problems(connection: asyncpg.Connection, pool: str) -> list[str]:
    """Per payment: its outputs add up to its amount (and fee, when the miners paid it); its journal
    entries sum to minus what was debited, or to zero once failed or returned."""
    problems = []
    rows = await connection.fetch(
        """SELECT p.id, p.txid, p.status, p.amount, p.fee, p.fee_paid_by,
                  coalesce(o.amount, 0) AS outputs_amount, coalesce(o.debited, 0) AS outputs_debited,
                  coalesce(j.total, 0) AS journal_total
             FROM payments p
             LEFT JOIN (SELECT payment_id, sum(amount) AS amount, sum(debited) AS debited
                          FROM payment_outputs GROUP BY payment_id) o ON o.payment_id = p.id
             LEFT JOIN (SELECT payment_id, sum(amount) AS total FROM journal
                         WHERE pool = $1 AND payment_id IS NOT NULL GROUP BY payment_id) j ON j.payment_id = p.id
            WHERE p.pool = $1 ORDER BY p.id""", pool)
    for row in rows:
        what = f"payment {row['id']} ({row['txid']}, {row['status']})"
        outputs_amount, debited, journal = int(row["outputs_amount"]), int(row["outputs_debited"]), int(row["journal_total"])
        if outputs_amount != row["amount"]:
            problems.append(f"{what}: outputs sum to {outputs_amount}, the payment says {row['amount']}")
        fee_from_miners = row["fee"] if row["fee_paid_by"] == "miners" else 0
        if debited - outputs_amount != fee_from_miners:
            problems.append(f"{what}: debited {debited} for {outputs_amount} paid, fee from miners {fee_from_miners}")
        wanted = 0 if row["status"] in ("failed", "returned") else -debited
        if journal != wanted:
            problems.append(f"{what}: its journal entries sum to {journal}, expected {wanted}")
    return problems
