"""The live feed: blocks found and changing status, payments sent, hashrate updates, as server-sent events.

One task polls the ledger for every listener (``blocks`` and ``payments`` rows whose ``updated`` moved,
every ``poll_s``) and sends the pool's hashrate every ``hashrate_s``; it polls only while someone
listens. Each listener has a bounded queue: a listener that does not read is dropped, never waited for.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from pool.api.data import PoolData
from pool.api.formats import coins, shorten, unix
from pool.api.pool_queries import POOL_BLOCK

logger = logging.getLogger(__name__)

MAX_LISTENERS = 1000
QUEUE_EVENTS = 100


class EventFeed:
    def __init__(self, data: PoolData, *, poll_s: float = 2.0, hashrate_s: float = 60.0) -> None:
        self.data = data
        self.poll_s = poll_s
        self.hashrate_s = hashrate_s
        self.listeners: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self._wakeup = asyncio.Event()
        self._since: datetime | None = None
        self._next_hashrate = 0.0

    def subscribe(self) -> asyncio.Queue | None:
        """A queue of (event name, data) for a new listener; None when there are too many."""
        if len(self.listeners) >= MAX_LISTENERS:
            return None
        queue: asyncio.Queue = asyncio.Queue(QUEUE_EVENTS)
        self.listeners.add(queue)
        self._wakeup.set()
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.listeners.discard(queue)

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        for queue in list(self.listeners):
            try:
                queue.put_nowait((event, payload))
            except asyncio.QueueFull:  # a listener that does not read: drop it
                self.listeners.discard(queue)  # its handler sees that and ends the stream

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            if not self.listeners:
                self._since = None
                self._wakeup.clear()
                await self._wakeup.wait()
            try:
                await self.poll_once()
            except Exception as error:  # the database away: try again next time
                logger.debug("api feed: poll failed: %s", error)
            await asyncio.sleep(self.poll_s)

    async def poll_once(self) -> None:
        data = self.data
        now = datetime.fromtimestamp(data.clock(), UTC)
        since = self._since
        if since is None:  # a new listener: changes from now on
            self._since = await data.db.fetchval("SELECT now()")
            return
        async with data.db.acquire() as connection:
            blocks = await connection.fetch(
                f"""SELECT height, hash, status, greatest(confirmations, 0) AS confirmations, reward, effort,
                          finder_address, created, updated
                   FROM blocks WHERE pool = $1 AND updated > $2 AND {POOL_BLOCK}
                   ORDER BY updated, id LIMIT 100""", data.pool, since)
            payments = await connection.fetch(
                """SELECT id, txid, status, amount, payees, created, updated FROM payments
                   WHERE pool = $1 AND updated > $2 ORDER BY updated, id LIMIT 100""", data.pool, since)
        newest = since
        for row in blocks:
            newest = max(newest, row["updated"])
            self.publish("block", {"height": row["height"], "hash": row["hash"], "status": row["status"],
                                   "confirmations": row["confirmations"], "reward": row["reward"],
                                   "reward_coins": coins(row["reward"]), "effort": row["effort"],
                                   "finder": shorten(row["finder_address"]), "time": unix(row["created"])})
        for row in payments:
            newest = max(newest, row["updated"])
            self.publish("payment", {"id": row["id"], "txid": row["txid"], "status": row["status"],
                                     "amount": row["amount"], "amount_coins": coins(row["amount"]),
                                     "payees": row["payees"], "time": unix(row["created"])})
        self._since = newest
        if time.monotonic() >= self._next_hashrate:
            self._next_hashrate = time.monotonic() + self.hashrate_s
            summary = await data.summary.get()
            self.publish("hashrate", {"time": now.timestamp(),
                                      "hashrate": {"5m": summary["hashrate_5m"], "1h": summary["hashrate_1h"]},
                                      "workers_online": summary["workers_online"],
                                      "miners_online": summary["miners_online"]})
