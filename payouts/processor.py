"""The payout run: confirmed blocks -> shares from the ledger -> a pure report -> one credit transaction.

``PayoutProcessor(db, pool_name, scheme, fees, factor=2)``; ``await run_once()`` takes the pool's
payout advisory lock (another node or process already paying out: it returns at once with
``locked_out``), then credits each confirmed, uncredited block in height order, one transaction
per block (``payouts.ledger.credit_block``).  A block the scheme refuses (``PayoutError``, e.g. no
shares to pay) stops the run there and is reported in ``stuck``: later blocks wait for the operator,
since PROP rounds depend on the order.  Any other error propagates; what was committed stays
committed and the next run goes on from the first uncredited block.

Shares.  Rows with ``credited_difficulty`` 0 (rejected block candidates) carry no work and are
never read.  PPLNS reads shares with ``created <= block.created`` newest first, by keyset pages of
``page_size``, until the exact sum of work reaches ``factor`` (so a long history is not read).
PROP reads the round: shares after the previous confirmed block's ``created`` up to this block's.
SOLO reads none.  The same queries run for ``verify_block``, which recomputes the report and
compares it byte for byte with the stored one.

PPS / FPPS (``scheme="pps"`` with ``block_value=`` the subsidy or a function of the share, or
``"fpps"``): blocks are not credited; ``run_once`` credits the stored shares after the watermark
``pps_state (last_created, last_share_id)`` that are older than ``settle_s``, oldest first, in
batches of ``page_size``, each batch in one transaction with its carry and the new watermark
(``payouts.ledger.credit_pps_batch``).  Known limit: a share stored later than ``settle_s`` after
it was made (a spill file replayed after a long database outage) is behind the watermark and is
not credited; keep ``settle_s`` above the longest outage you replay.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import asyncpg

from payouts import ledger
from payouts.fees import FeeConfig
from payouts.money import PayoutError, parse_decimal
from payouts.report import PayoutReport
from payouts.schemes import Block, ShareWork, fpps_credits, pplns, pps_credits, prop, solo

logger = logging.getLogger(__name__)

BLOCK_SCHEMES = ("pplns", "prop", "solo")
SHARE_SCHEMES = ("pps", "fpps")

_SHARE_COLUMNS = ("share_id, created, address, worker, credited_difficulty, network_difficulty, height, "
                  "coinbase_value")


@dataclass
class PayoutRun:
    """What one ``run_once`` did."""
    locked_out: bool = False
    credited: list[int] = field(default_factory=list)        # heights credited by this run
    stuck: tuple[int, str] | None = None                     # (height, why) of a block the scheme refused
    pps_shares: int = 0                                      # PPS/FPPS: shares credited by this run


def _share(row: asyncpg.Record) -> ShareWork:
    return ShareWork(row["address"], row["worker"], row["credited_difficulty"], row["network_difficulty"],
                     row["share_id"], row["created"], row["height"], row["coinbase_value"])


def _block(row: asyncpg.Record) -> Block:
    return Block(row["height"], row["hash"], row["reward"], row["finder_address"], row["status"])


class PayoutProcessor:
    """Credits the confirmed blocks of ``pool_name`` by ``scheme`` (pplns, prop or solo)."""

    def __init__(self, db: asyncpg.Pool, pool_name: str, scheme: str, fees: FeeConfig, factor: object = 2,
                 *, page_size: int = 5000, block_value: int | Callable[[ShareWork], int] | None = None,
                 settle_s: float = 600.0) -> None:
        if scheme not in BLOCK_SCHEMES + SHARE_SCHEMES:
            raise PayoutError(f"scheme {scheme!r} is not one of {BLOCK_SCHEMES + SHARE_SCHEMES}")
        if scheme == "pps" and block_value is None:
            raise PayoutError("PPS needs block_value: the subsidy in satoshis, or a function of the share")
        self.block_value = block_value
        self.settle_s = settle_s
        if not isinstance(fees, FeeConfig):
            raise PayoutError(f"fees must be a FeeConfig, not {type(fees).__name__}")
        self.db = db
        self.pool_name = pool_name
        self.scheme = scheme
        self.fees = fees
        self.factor = factor
        self._factor_exact = parse_decimal(factor, "PPLNS factor")
        if self._factor_exact <= 0:
            raise PayoutError(f"PPLNS factor must be positive, got {factor}")
        self.page_size = page_size

    # -- the run ---------------------------------------------------------------------------------

    async def run_once(self) -> PayoutRun:
        run = PayoutRun()
        async with self.db.acquire() as connection:
            async with ledger.payout_lock(connection, self.pool_name) as held:
                if not held:
                    logger.info("pool %s: another payout run holds the lock", self.pool_name)
                    run.locked_out = True
                    return run
                if self.scheme in SHARE_SCHEMES:
                    run.pps_shares = await self._credit_shares(connection)
                    return run
                blocks = await connection.fetch(
                    "SELECT * FROM blocks WHERE pool = $1 AND status = 'confirmed' AND NOT credited "
                    "ORDER BY height, id", self.pool_name)
                for row in blocks:
                    try:
                        report = await self.compute_report(connection, row)
                    except PayoutError as error:
                        logger.error("pool %s: block %s at %d not credited: %s",
                                     self.pool_name, row["hash"], row["height"], error)
                        run.stuck = (row["height"], str(error))
                        break
                    if await ledger.credit_block(connection, self.pool_name, row, report, self.scheme):
                        run.credited.append(row["height"])
        return run

    async def compute_report(self, connection: asyncpg.Connection, row: asyncpg.Record) -> PayoutReport:
        """The pure report of the block ``row`` (a ``blocks`` row) from the stored shares."""
        if self.scheme in SHARE_SCHEMES:
            raise PayoutError(f"{self.scheme} credits shares, not blocks: there is no block report")
        block = _block(row)
        if self.scheme == "solo":
            return solo(block, self.fees)
        if self.scheme == "prop":
            return prop(block, await self.round_shares(connection, row), self.fees)
        return pplns(block, await self.window_shares(connection, row), self.fees, factor=self.factor)

    # -- shares ----------------------------------------------------------------------------------

    async def window_shares(self, connection: asyncpg.Connection, row: asyncpg.Record) -> list[ShareWork]:
        """PPLNS: shares at or before the block, newest first, until their work reaches the factor."""
        shares: list[ShareWork] = []
        work = Fraction(0)
        after: tuple[Any, str] | None = None
        while work < self._factor_exact:
            if after is None:
                page = await connection.fetch(
                    f"SELECT {_SHARE_COLUMNS} FROM shares WHERE pool = $1 AND created <= $2 "
                    "AND credited_difficulty > 0 ORDER BY created DESC, share_id DESC LIMIT $3",
                    self.pool_name, row["created"], self.page_size)
            else:
                page = await connection.fetch(
                    f"SELECT {_SHARE_COLUMNS} FROM shares WHERE pool = $1 AND created <= $2 "
                    "AND credited_difficulty > 0 AND (created, share_id) < ($3, $4) "
                    "ORDER BY created DESC, share_id DESC LIMIT $5",
                    self.pool_name, row["created"], after[0], after[1], self.page_size)
            for share_row in page:
                share = _share(share_row)
                shares.append(share)
                work += share.work
                if work >= self._factor_exact:
                    break
            if len(page) < self.page_size:
                break
            after = (page[-1]["created"], page[-1]["share_id"])
        return shares

    async def round_shares(self, connection: asyncpg.Connection, row: asyncpg.Record) -> list[ShareWork]:
        """PROP: shares after the previous confirmed block of the pool, up to this block."""
        previous = await connection.fetchval(
            "SELECT created FROM blocks WHERE pool = $1 AND status = 'confirmed' "
            "AND (height, id) < ($2, $3) ORDER BY height DESC, id DESC LIMIT 1",
            self.pool_name, row["height"], row["id"])
        if previous is None:
            rows = await connection.fetch(
                f"SELECT {_SHARE_COLUMNS} FROM shares WHERE pool = $1 AND created <= $2 "
                "AND credited_difficulty > 0", self.pool_name, row["created"])
        else:
            rows = await connection.fetch(
                f"SELECT {_SHARE_COLUMNS} FROM shares WHERE pool = $1 AND created > $2 AND created <= $3 "
                "AND credited_difficulty > 0", self.pool_name, previous, row["created"])
        return [_share(share_row) for share_row in rows]

    # -- PPS / FPPS ------------------------------------------------------------------------------

    async def _credit_shares(self, connection: asyncpg.Connection) -> int:
        """Credit the shares after the watermark that are older than ``settle_s``, by batches of
        ``page_size`` (one transaction each); the number of shares credited."""
        done = 0
        while True:
            watermark, carry = await ledger.pps_position(connection, self.pool_name)
            if watermark[0] is None:
                rows = await connection.fetch(
                    f"SELECT {_SHARE_COLUMNS} FROM shares WHERE pool = $1 AND credited_difficulty > 0 "
                    "AND created <= now() - make_interval(secs => $2) "
                    "ORDER BY created, share_id LIMIT $3", self.pool_name, self.settle_s, self.page_size)
            else:
                rows = await connection.fetch(
                    f"SELECT {_SHARE_COLUMNS} FROM shares WHERE pool = $1 AND credited_difficulty > 0 "
                    "AND created <= now() - make_interval(secs => $2) AND (created, share_id) > ($3, $4) "
                    "ORDER BY created, share_id LIMIT $5",
                    self.pool_name, self.settle_s, watermark[0], watermark[1], self.page_size)
            if not rows:
                return done
            shares = [_share(row) for row in rows]
            if self.scheme == "pps":
                result = pps_credits(shares, self.block_value, self.fees, carry)
            else:
                result = fpps_credits(shares, self.fees, carry)
            new = (rows[-1]["created"], rows[-1]["share_id"])
            if not await ledger.credit_pps_batch(connection, self.pool_name, watermark, new,
                                                 result.credits, result.carry):
                return done
            done += len(rows)

    # -- verification ----------------------------------------------------------------------------

    async def verify_block(self, height: int) -> tuple[bool, str]:
        """Recompute the credited block at ``height`` from the stored shares with this processor's
        scheme and fees, and compare with the stored report (bytes and Merkle root) and with the
        block's journal credits.  (False, why) on any difference."""
        async with self.db.acquire() as connection:
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                row = await connection.fetchrow(
                    "SELECT * FROM blocks WHERE pool = $1 AND height = $2 AND credited "
                    "ORDER BY id LIMIT 1", self.pool_name, height)
                if row is None:
                    return False, f"no credited block at height {height}"
                stored = await connection.fetchrow(
                    "SELECT scheme, merkle_root, report FROM payout_reports WHERE block_hash = $1",
                    row["hash"])
                if stored is None:
                    return False, f"block {row['hash']} is credited but has no stored report"
                journal = await connection.fetch(
                    "SELECT address, amount, reason FROM journal WHERE pool = $1 AND block_hash = $2 "
                    "AND reason IN ('block_credit', 'pool_fee', 'fee_recipient')",
                    self.pool_name, row["hash"])
                try:
                    report = await self.compute_report(connection, row)
                except PayoutError as error:
                    return False, f"the report cannot be recomputed: {error}"
        problems = []
        if stored["scheme"] != report.scheme:
            problems.append(f"stored scheme {stored['scheme']}, recomputed {report.scheme}")
        if stored["merkle_root"] != report.merkle_root:
            problems.append(f"stored merkle root {stored['merkle_root']}, recomputed {report.merkle_root}")
        if bytes(stored["report"]) != report.to_json_bytes():
            problems.append(f"stored report bytes differ from the recomputed report (digest {report.digest})")
        if sorted((r["address"], r["amount"], r["reason"]) for r in journal) != sorted(
                ledger.journal_entries(report)):
            problems.append("the journal credits of the block differ from the recomputed report")
        if problems:
            return False, "; ".join(problems)
        return True, f"block {row['hash']} at {height}: report {report.digest} root {report.merkle_root}"
