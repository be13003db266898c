"""Following blocks until they mature or are orphaned.

Each pass looks at every pending block of the pool: ``getblockhash(height) == hash`` on the
daemon means it is on the main chain, with ``tip - height + 1`` confirmations; it becomes
``confirmed`` at the coin's maturity (never lower).  It becomes ``orphaned`` only when another
block holds its height with at least ``orphan_confirmations`` confirmations.  A transient RPC
error, a syncing daemon, a height above the daemon's tip, or error -5 alone change nothing.  A
reorg before maturity lowers the confirmations again (the block stays pending) or orphans it.

The decision is a pure function (``judge``); the tracker wraps it with the daemon and the
database, one transaction per block.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from pool.chain.daemon import DaemonClient
from pool.chain.rpc import DaemonError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    status: str  # pending, confirmed, orphaned
    confirmations: int


def judge(*, height: int, block_hash: str, tip_height: int, hash_at_height: str | None, maturity: int,
          orphan_confirmations: int) -> Verdict | None:
    """What a pending block is now, given what the daemon says; None when it cannot tell."""
    if hash_at_height is None or height > tip_height:
        return None
    confirmations = tip_height - height + 1
    if hash_at_height == block_hash:
        return Verdict("confirmed" if confirmations >= maturity else "pending", confirmations)
    if confirmations >= orphan_confirmations:
        return Verdict("orphaned", 0)
    return Verdict("pending", 0)


class BlockTracker:
    def __init__(self, daemon: DaemonClient, db: asyncpg.Pool, pool_name: str, *, maturity: int,
                 orphan_confirmations: int = 10, interval_s: float = 30.0) -> None:
        self.daemon = daemon
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
        """One pass over the pending blocks; returns how many changed."""
        pending = await self.db.fetch(
            "SELECT hash, height, confirmations FROM blocks WHERE pool = $1 AND status = 'pending' ORDER BY height",
            self.pool_name)
        if not pending:
            return 0
        info = await self.daemon.getblockchaininfo()
        if info.get("initialblockdownload") or info.get("blocks", 0) < info.get("headers", 0) - 1:
            logger.info("block tracker: the daemon is syncing; no block changes this pass")
            return 0
        tip_height = int(info["blocks"])
        changed = 0
        for row in pending:
            try:
                hash_at_height = await self.daemon.getblockhash(row["height"])
            except DaemonError as exc:
                logger.info("block tracker: height %d: %s (no change)", row["height"], exc)
                continue
            verdict = judge(height=row["height"], block_hash=row["hash"], tip_height=tip_height,
                            hash_at_height=hash_at_height, maturity=self.maturity,
                            orphan_confirmations=self.orphan_confirmations)
            if verdict is None:
                continue
            if verdict.status == "pending" and verdict.confirmations == row["confirmations"]:
                continue
            async with self.db.acquire() as conn, conn.transaction():
                updated = await conn.execute(
                    """UPDATE blocks SET status = $2, confirmations = $3, updated = now()
                           WHERE hash = $1 AND status = 'pending'""",
                    row["hash"], verdict.status, verdict.confirmations)
            if updated.endswith(" 1"):
                changed += 1
                self.changes.append((row["hash"], verdict.status, verdict.confirmations))
                if verdict.status != "pending":
                    logger.info("block %s at height %d is %s (%d confirmations)", row["hash"], row["height"],
                                verdict.status, verdict.confirmations)
        return changed
