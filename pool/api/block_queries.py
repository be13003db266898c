"""The ledger's lists: pages of blocks, a block's payout report and a miner's proof in it, payments.

Pages of blocks are kept for ``cache_s`` (the blocks table changes a few times an hour), then served
while one task reads the page again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from payouts import merkle
from pool.api.formats import coins, dump_json, shorten, unix
from pool.api.pool_queries import POOL_BLOCK, PoolQueries
from pool.config import PoolConfig

logger = logging.getLogger(__name__)

MAX_CACHED_PAGES = 1024


class BlockQueries(PoolQueries):
    """The queries of blocks, payout reports and payments."""

    def __init__(self, config: PoolConfig, db: asyncpg.Pool, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, db, clock=clock)
        self._block_pages: dict[tuple, tuple[float, bytes]] = {}
        self._block_refreshing: set[tuple] = set()

    async def blocks_json(self, page: int, page_size: int, status: str | None) -> bytes:
        """A page of blocks as the route's JSON; pages are kept for ``cache_s`` (the blocks table
        changes a few times an hour), then served while one task reads the page again."""
        key = (page, page_size, status)
        hit = self._block_pages.get(key)
        if hit is not None:
            if time.monotonic() - hit[0] >= self.config.api.cache_s and key not in self._block_refreshing:
                self._block_refreshing.add(key)
                asyncio.ensure_future(self._refresh_block_page(key))
            return hit[1]
        return await self._read_block_page(key)

    async def _read_block_page(self, key: tuple) -> bytes:
        page, page_size, status = key
        total, items = await self._blocks(page * page_size, page_size, status)
        body = dump_json({"page": page, "page_size": page_size, "total": total, "items": items})
        if len(self._block_pages) >= MAX_CACHED_PAGES:
            self._block_pages.clear()
        self._block_pages[key] = (time.monotonic(), body)
        return body

    async def _refresh_block_page(self, key: tuple) -> None:
        try:
            await self._read_block_page(key)
        except Exception as error:  # the database away: the old page is served until it is back
            logger.warning("api: could not refresh a page of blocks: %s: %s", type(error).__name__, error)
        finally:
            self._block_refreshing.discard(key)

    async def _blocks(self, offset: int, limit: int, status: str | None) -> tuple[int, list[dict[str, Any]]]:
        async with self.db.acquire() as connection:
            total = await connection.fetchval(
                f"""SELECT count(*) FROM blocks
                    WHERE pool = $1 AND ($2::text IS NULL OR status = $2) AND {POOL_BLOCK}""",
                self.pool, status)
            rows = await connection.fetch(
                f"""SELECT height, hash, status, greatest(confirmations, 0) AS confirmations, reward, effort,
                          finder_address, created, credited
                   FROM blocks WHERE pool = $1 AND ($2::text IS NULL OR status = $2) AND {POOL_BLOCK}
                   ORDER BY height DESC, id DESC LIMIT $3 OFFSET $4""", self.pool, status, limit, offset)
        return total, [{
            "height": row["height"], "hash": row["hash"], "status": row["status"],
            "confirmations": row["confirmations"], "reward": row["reward"], "reward_coins": coins(row["reward"]),
            "effort": row["effort"], "finder": shorten(row["finder_address"]), "time": unix(row["created"]),
            "credited": row["credited"],
        } for row in rows]

    async def payout(self, height: int) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            """SELECT b.height, b.hash, r.scheme, r.merkle_root, r.report, r.created FROM blocks b
               JOIN payout_reports r ON r.block_hash = b.hash
               WHERE b.pool = $1 AND b.height = $2 ORDER BY b.id DESC LIMIT 1""", self.pool, height)
        if row is None:
            return None
        return {"height": row["height"], "block_hash": row["hash"], "scheme": row["scheme"],
                "merkle_root": row["merkle_root"], "time": unix(row["created"]),
                "report": orjson.loads(bytes(row["report"]))}

    async def proof(self, address: str, height: int) -> dict[str, Any] | None:
        payout = await self.payout(height)
        if payout is None:
            return None
        miners = payout["report"].get("miners", [])
        leaves = [(entry["address"], int(entry["amount"])) for entry in miners]
        index = next((i for i, (leaf_address, _) in enumerate(leaves) if leaf_address == address), None)
        if index is None:
            return None
        levels = merkle.tree_levels(leaves)
        steps = merkle.proof_from_levels(levels, index)
        amount = leaves[index][1]
        root = payout["merkle_root"]
        return {
            "height": payout["height"], "block_hash": payout["block_hash"], "address": address,
            "amount": amount, "amount_coins": coins(amount), "merkle_root": root,
            "proof": [{"side": side, "hash": sibling} for side, sibling in steps],
            "verified": merkle.verify_proof(root, address, amount, steps),
            "leaf": {"tag": merkle.TAG.decode(), "encoding": "sha256(tag || address UTF-8 || 0x00 || amount u64 BE)"},
        }

    async def payments(self, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        async with self.db.acquire() as connection:
            total = await connection.fetchval("SELECT count(*) FROM payments WHERE pool = $1", self.pool)
            rows = await connection.fetch(
                """SELECT id, txid, status, amount, fee, payees, confirmations, created FROM payments
                   WHERE pool = $1 ORDER BY id DESC LIMIT $2 OFFSET $3""", self.pool, limit, offset)
        return total, [{
            "id": row["id"], "txid": row["txid"], "status": row["status"], "amount": row["amount"],
            "amount_coins": coins(row["amount"]), "fee": row["fee"], "payees": row["payees"],
            "confirmations": row["confirmations"], "time": unix(row["created"]),
        } for row in rows]
