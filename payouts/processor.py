"""The payout run: confirmed blocks -> shares from the ledger -> a pure report -> one credit transaction.

``PayoutProcessor(db, pool_name, scheme, fees, factor=2)``; ``await run_once()`` takes the pool's
payout advisory lock (another node or process already paying out: it returns at once with
``locked_out``), then credits each confirmed, uncredited block in height order, one transaction
per block (``payouts.ledger.credit_block``: a crash mid-block leaves that block untouched, and the
next run credits it once).  Every confirmed block is credited whatever its round holds: one with no
stored share in its round or window pays its finder (``payouts.schemes.without_shares``); under
PPS / FPPS a block's report credits no balance (the miners were credited per share).

A block that cannot be credited for any other reason (a row the pure code refuses, a database
error in its transaction) is skipped with an alert (logged once per block and reason; the run's
``failed`` list, counted in the pool's metrics) and tried again by the next run; it holds back no
other block, because no scheme's report depends on which blocks were credited before it: PPLNS
windows and SOLO depend on the block alone, a PROP round on the *status* of the blocks below it.
The one order that matters is PROP's: its round starts at the previous confirmed block, so a block
waits (``waiting``) while a block below it is still ``pending`` -- if that one were confirmed
later, both rounds would hold the same shares.  A lost database connection ends the run (the next
run goes on from the first uncredited block).

Shares.  Rows with ``credited_difficulty`` 0 (rejected block candidates) carry no work and are
never read.  PPLNS takes the shares with ``created <= block.created`` newest first by
``(created, share_id)`` (the id compared byte-wise, ``COLLATE "C"``, as ``payouts.schemes`` orders
them) until the exact sum of work reaches ``factor``, without loading them (``pplns_window``):

1. PostgreSQL walks the shares newest first (in the order of the ``(pool, created)`` index of
   each daily partition) with a running sum of work in floating point and stops at the first
   share where it reaches ``factor x (1 - 10^-6)``: its ``created`` is the *boundary time* (the
   margin is far more than the rounding of a sum of 10^9 doubles).  A share the pure code would
   refuse (a NaN, infinite, zero or out-of-range difficulty, an empty id or address, a negative
   height or coinbase value) counts as infinite work there, so it is never inside step 2.
2. The shares newer than the boundary time are counted in SQL per (address, credited difficulty,
   network difficulty) and summed in Python as exact Fractions over those groups
   (``PplnsWindow.add_whole``), which checks that their exact work is below ``factor``.
3. From the boundary time on, shares are read by keyset pages of ``page_size`` and counted one by
   one (``PplnsWindow.add``), exactly as the list-based scheme does, until the window is full.

If the exact check of step 2 fails (it cannot with real data: it would take a rounding error of
10^-6), every share is counted one by one from the newest.  The queries run in one REPEATABLE READ
snapshot.  The report is the one ``payouts.schemes.pplns`` gives over the same shares, byte for
byte (the tests compare them); ``window_shares`` still returns the window as a list (the benchmark
measures it as the baseline).  One difference: a share id stored twice (at two times) in the
window makes the list-based scheme raise, the streamed window counts both (the recorder never
stores an id twice).

PROP reads the round: shares after the previous confirmed block's ``created`` up to this block's.
SOLO reads none.  The same queries run for ``verify_block``, which recomputes the report and
compares it byte for byte with the stored one.

PPS / FPPS (``scheme="pps"`` with ``block_value=`` the subsidy or a function of the share, or
``"fpps"``): blocks credit no balance (each is marked credited with a report that says so);
``run_once`` credits the stored shares after the watermark
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
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import asyncpg

from payouts import ledger
from payouts.fees import FeeConfig
from payouts.money import PayoutError, parse_decimal
from payouts.report import PayoutReport
from payouts.rounds import Block, ShareWork
from payouts.schemes import (
    PplnsWindow,
    fpps_credits,
    pplns_from_window,
    pps_credits,
    prop,
    settled_per_share,
    solo,
)

logger = logging.getLogger(__name__)

BLOCK_SCHEMES = ("pplns", "prop", "solo")
SHARE_SCHEMES = ("pps", "fpps")

_SHARE_COLUMNS = ("share_id, created, address, worker, credited_difficulty, network_difficulty, height, "
                  "coinbase_value")

# PPLNS in the database (see the module docstring).  A share's work in floating point, or infinity
# for a share the pure code would refuse or whose division could overflow or underflow.
_FLOAT_WORK = """CASE WHEN credited_difficulty BETWEEN '1e-150'::float8 AND '1e150'::float8
                   AND network_difficulty BETWEEN '1e-150'::float8 AND '1e150'::float8
                   AND share_id <> '' AND address <> '' AND height >= 0 AND coinbase_value >= 0
              THEN credited_difficulty / network_difficulty ELSE 'Infinity'::float8 END"""
_NEWEST_FIRST = 'created DESC, share_id COLLATE "C" DESC'
_WINDOW_SHARES = "pool = $1 AND created <= $2 AND credited_difficulty > 0"
# The time of the first share, newest first, where the running sum reaches $3.  Ordered by time
# alone (no sort: the index order), so shares of that same time may come in any order here; every
# share newer than that time is before the boundary whatever the order.
_BOUNDARY_QUERY = f"""
    SELECT created
      FROM (SELECT created,
                   sum({_FLOAT_WORK}) OVER (ORDER BY created DESC ROWS UNBOUNDED PRECEDING) AS running
              FROM shares WHERE {_WINDOW_SHARES}) AS shares
     WHERE running >= $3
     ORDER BY created DESC LIMIT 1"""
_GROUPS_QUERY = f"""
    SELECT address, credited_difficulty, network_difficulty, count(*) AS shares
      FROM shares WHERE {_WINDOW_SHARES} AND created > $3
     GROUP BY address, credited_difficulty, network_difficulty"""
_NEWEST_QUERY = (f"SELECT share_id FROM shares WHERE {_WINDOW_SHARES} AND created > $3 "
                 f"ORDER BY {_NEWEST_FIRST} LIMIT 1")
_OLDEST_QUERY = (f"SELECT share_id FROM shares WHERE {_WINDOW_SHARES} AND created > $3 "
                 'ORDER BY created, share_id COLLATE "C" LIMIT 1')
#: Relative margin below ``factor`` where PostgreSQL's floating-point running sum stops.
_BOUNDARY_MARGIN = Fraction(1, 10**6)


#: Errors that mean the database connection is gone, not that a block is wrong: they end the run.
_CONNECTION_LOST = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                    asyncpg.exceptions.OperatorInterventionError)


@dataclass
class PayoutRun:
    """What one ``run_once`` did."""
    locked_out: bool = False
    credited: list[int] = field(default_factory=list)        # heights credited by this run
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (height, hash, why): not credited
    waiting: list[int] = field(default_factory=list)         # PROP: heights waiting for a pending block below
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
        self._alerted: dict[str, str] = {}   # block hash -> the failure already alerted

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
                await self._credit_blocks(connection, run)
        return run

    async def _credit_blocks(self, connection: asyncpg.Connection, run: PayoutRun) -> None:
        """Credit every confirmed, uncredited block, lowest first; a block that fails is skipped
        with an alert (see the module docstring for why it holds back no other)."""
        blocks = await connection.fetch(
            "SELECT * FROM blocks WHERE pool = $1 AND status = 'confirmed' AND NOT credited "
            "ORDER BY height, id", self.pool_name)
        failing: dict[str, str] = {}
        for row in blocks:
            if self.scheme == "prop" and await self._pending_below(connection, row):
                run.waiting.append(row["height"])
                continue
            try:
                report = await self.compute_report(connection, row)
                if await ledger.credit_block(connection, self.pool_name, row, report, self.scheme):
                    run.credited.append(row["height"])
            except _CONNECTION_LOST:
                raise
            except Exception as error:  # noqa: BLE001 - this block's fault: alert, go on with the next
                why = f"{type(error).__name__}: {error}"
                run.failed.append((row["height"], row["hash"], why))
                failing[row["hash"]] = why
                if self._alerted.get(row["hash"]) != why:
                    logger.error("ALERT: pool %s: block %s at %d not credited: %s; the blocks after it are "
                                 "credited all the same, this one is tried again every run",
                                 self.pool_name, row["hash"], row["height"], why)
                else:
                    logger.debug("block %s at %d still not credited: %s", row["hash"], row["height"], why)
        self._alerted = failing
        if run.waiting:
            logger.warning("pool %s: PROP blocks at %s wait for a pending block below them (their round "
                           "starts at the previous confirmed block)", self.pool_name, run.waiting)

    async def _pending_below(self, connection: asyncpg.Connection, row: asyncpg.Record) -> bool:
        return await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM blocks WHERE pool = $1 AND status = 'pending' "
            "AND (height, id) < ($2, $3))", self.pool_name, row["height"], row["id"])

    async def compute_report(self, connection: asyncpg.Connection, row: asyncpg.Record) -> PayoutReport:
        """The pure report of the block ``row`` (a ``blocks`` row) from the stored shares."""
        block = _block(row)
        if self.scheme in SHARE_SCHEMES:
            return settled_per_share(self.scheme, block, self.fees)
        if self.scheme == "solo":
            return solo(block, self.fees)
        if self.scheme == "prop":
            return prop(block, await self.round_shares(connection, row), self.fees)
        return pplns_from_window(block, await self.pplns_window(connection, row), self.fees)

    # -- shares ----------------------------------------------------------------------------------

    async def pplns_window(self, connection: asyncpg.Connection, row: asyncpg.Record) -> PplnsWindow:
        """PPLNS: the window of the block ``row``, streamed (see the module docstring)."""
        if connection.is_in_transaction():
            return await self._pplns_window(connection, row)
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            return await self._pplns_window(connection, row)

    async def _pplns_window(self, connection: asyncpg.Connection, row: asyncpg.Record) -> PplnsWindow:
        window = PplnsWindow(self.factor)
        stop_at = float(window.target * (1 - _BOUNDARY_MARGIN))
        # Hash aggregation in memory for the groups, and no JIT compilation (it costs more than it
        # saves on these queries); for this transaction only.
        await connection.execute("SET LOCAL work_mem = '64MB'; SET LOCAL jit = off")
        boundary = await connection.fetchval(_BOUNDARY_QUERY, self.pool_name, row["created"], stop_at)
        # Every share newer than ``after`` is before the boundary (all of them when there is none:
        # fewer shares than the window).
        after = datetime.min.replace(tzinfo=UTC) if boundary is None else boundary
        arguments = (self.pool_name, row["created"], after)
        newest = await connection.fetchval(_NEWEST_QUERY, *arguments)
        start: datetime | None = None
        if newest is not None:
            groups = await connection.fetch(_GROUPS_QUERY, *arguments)
            oldest = await connection.fetchval(_OLDEST_QUERY, *arguments)
            if window.add_whole(groups, newest, oldest):
                start = boundary
                if boundary is None:
                    return window
            else:
                logger.warning("pool %s: block %s: the floating-point window boundary was off; counting "
                               "every share one by one", self.pool_name, row["hash"])
        elif boundary is not None:
            start = boundary
        await self._add_one_by_one(connection, row, window, None if start is None else (start, None))
        return window

    async def _add_one_by_one(self, connection: asyncpg.Connection, row: asyncpg.Record, window: PplnsWindow,
                              start: tuple[datetime, str | None] | None) -> None:
        """Add the shares from the newest, or from ``start`` on: (created, None) for every share at
        or before that time, (created, share_id) for those after that share; until full."""
        position = start
        while True:
            if position is None:
                page = await connection.fetch(
                    f"SELECT {_SHARE_COLUMNS} FROM shares WHERE {_WINDOW_SHARES} "
                    f"ORDER BY {_NEWEST_FIRST} LIMIT $3", self.pool_name, row["created"], self.page_size)
            elif position[1] is None:
                page = await connection.fetch(
                    f"SELECT {_SHARE_COLUMNS} FROM shares WHERE {_WINDOW_SHARES} AND created <= $3 "
                    f"ORDER BY {_NEWEST_FIRST} LIMIT $4", self.pool_name, row["created"], position[0],
                    self.page_size)
            else:
                page = await connection.fetch(
                    f"SELECT {_SHARE_COLUMNS} FROM shares WHERE {_WINDOW_SHARES} AND created <= $3 "
                    f'AND (created, share_id COLLATE "C") < ($3, $4) '
                    f"ORDER BY {_NEWEST_FIRST} LIMIT $5",
                    self.pool_name, row["created"], position[0], position[1], self.page_size)
            for share_row in page:
                if window.add(_share(share_row)):
                    return
            if len(page) < self.page_size:
                return
            position = (page[-1]["created"], page[-1]["share_id"])

    async def window_shares(self, connection: asyncpg.Connection, row: asyncpg.Record) -> list[ShareWork]:
        """PPLNS as a list: shares at or before the block, newest first, until their work reaches the
        factor.  Every share becomes an object: ``pplns_window`` is what the processor uses."""
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
