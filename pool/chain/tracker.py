"""Following blocks until they mature or are orphaned, by their hash.

Each pass asks the daemon for the header of every block of the pool that is not final
(``getblockheader``: its ``confirmations`` are -1 off the main chain) and the tip's height:

- On the main chain with ``c`` confirmations: ``pending`` with ``c``, and ``confirmed`` at the
  coin's maturity (never lower).  This holds whatever the block was called before: a block the
  pool called ``orphaned`` (or ``rejected``) that is on the main chain again (a reorg, a daemon
  that restarted on the other branch) returns to ``pending`` and is confirmed at maturity.
- Off the main chain (or unknown to the daemon), another block holds its height with
  ``tip - height + 1`` confirmations: the block is ``orphaned`` once that reaches
  ``orphan_confirmations``; until then it stays ``pending`` with 0.

``confirmed`` is final (the payout processor credits it once).  An ``orphaned`` or ``rejected``
block is final only once the block holding its height is ``maturity`` deep: until then every pass
looks at it again.  For those, ``confirmations`` holds that depth as a negative number (Core's -1
off the main chain, with how far): the pass that sees -maturity or lower is the last.  A transient
RPC error, a syncing daemon or a height above the daemon's tip change nothing.

The decision is a pure function (``judge``); the tracker wraps it with the daemon and the
database, one transaction per block that changed.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from pool.families.base import CoinFamily
from pool.rpc.client import DaemonClient
from pool.rpc.wire import DaemonError

logger = logging.getLogger(__name__)

#: Blocks asked about per request (the family batches them: ``getblockheader`` for the Bitcoin family).
HEADERS_PER_BATCH = 100


@dataclass(frozen=True)
class Verdict:
    status: str  # pending, confirmed, orphaned, rejected
    confirmations: int  # on the main chain: its own; orphaned or rejected: minus the depth of the other block


def judge(*, status: str, height: int, confirmations: int | None, tip_height: int, maturity: int,
          orphan_confirmations: int) -> Verdict | None:
    """What a block that is not final is now; None when the daemon cannot tell.

    ``status`` is what the pool calls it now (pending, orphaned or rejected), ``confirmations`` the
    daemon's for its hash (-1 off the main chain, None when the daemon does not know the block)."""
    if confirmations is not None and confirmations > 0:
        return Verdict("confirmed" if confirmations >= maturity else "pending", confirmations)
    if height > tip_height:
        return None  # nothing at its height yet (a daemon behind)
    depth = tip_height - height + 1  # the confirmations of the block that holds its height
    if status in ("orphaned", "rejected"):
        return Verdict(status, -depth)
    if depth >= orphan_confirmations:
        return Verdict("orphaned", -depth)
    return Verdict("pending", 0)


class BlockTracker:
    def __init__(self, daemon: DaemonClient, db: asyncpg.Pool, pool_name: str, *, family: CoinFamily, maturity: int,
                 orphan_confirmations: int = 10, interval_s: float = 30.0) -> None:
        self.daemon = daemon
        self.family = family
        self.db = db
        self.pool_name = pool_name
        self.maturity = maturity
        self.orphan_confirmations = orphan_confirmations
        self.interval_s = interval_s
        self.changes: list[tuple[str, str, int]] = []  # (hash, status, confirmations), for tests and logs

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except (DaemonError, asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                logger.warning("block tracker pass skipped: %s", exc)
            await asyncio.sleep(self.interval_s)

    async def check(self) -> int:
        """One pass over the blocks that are not final; returns how many changed."""
        rows = await self.db.fetch(
            """SELECT hash, height, status, confirmations FROM blocks
                WHERE pool = $1 AND (status = 'pending'
                                     OR (status IN ('orphaned', 'rejected') AND confirmations > -$2::integer))
                ORDER BY height, id""", self.pool_name, self.maturity)
        if not rows:
            return 0
        tip_height = await self.family.synced_tip_height(self.daemon)
        if tip_height is None:
            logger.info("block tracker: the daemon is syncing; no block changes this pass")
            return 0
        changed = 0
        for start in range(0, len(rows), HEADERS_PER_BATCH):
            chunk = rows[start:start + HEADERS_PER_BATCH]
            answers = await self.family.confirmations(self.daemon, [row["hash"] for row in chunk])
            for row, confirmations in zip(chunk, answers, strict=True):
                if isinstance(confirmations, DaemonError):
                    logger.info("block tracker: block %s: %s (no change)", row["hash"], confirmations)
                    continue
                verdict = judge(status=row["status"], height=row["height"], confirmations=confirmations,
                                tip_height=tip_height, maturity=self.maturity,
                                orphan_confirmations=self.orphan_confirmations)
                if verdict is None or (verdict.status, verdict.confirmations) == (row["status"],
                                                                                 row["confirmations"]):
                    continue
                if await self._update(row, verdict):
                    changed += 1
        return changed

    async def _update(self, row: asyncpg.Record, verdict: Verdict) -> bool:
        async with self.db.acquire() as conn, conn.transaction():
            updated = await conn.execute(
                """UPDATE blocks SET status = $3, confirmations = $4, updated = now()
                       WHERE hash = $1 AND status = $2""",
                row["hash"], row["status"], verdict.status, verdict.confirmations)
        if not updated.endswith(" 1"):
            return False  # moved on meanwhile (a submitter's outcome); the next pass looks again
        self.changes.append((row["hash"], verdict.status, verdict.confirmations))
        if row["status"] in ("orphaned", "rejected") and verdict.status in ("pending", "confirmed"):
            logger.warning("block %s at height %d was %s and is on the main chain (%d confirmations): %s",
                           row["hash"], row["height"], row["status"], verdict.confirmations, verdict.status)
        elif verdict.status != row["status"]:
            logger.info("block %s at height %d is %s (%d confirmations)", row["hash"], row["height"],
                        verdict.status, verdict.confirmations)
        return True
