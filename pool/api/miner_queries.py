"""The miners' figures: a miner's page, the top miners, a miner's performance, and the money.

Per-worker figures (the miner page, the top miners) come from one snapshot of every worker's windows
(`WorkerSnapshot`), rebuilt every ``cache_s`` from the last hour's aggregates and once per 10-minute
bucket from the 24 h window's: a miner's page then costs no scan of its aggregates, whose rows lie one
per page across the table. Money (balance, payments, daily earnings) is read by index lookups, in one
statement for the miner pages asked for at the same time (`Batched`), and kept in memory until a
transaction that changes balances, the journal or payments commits (the tables' triggers NOTIFY
``quarry_ledger`` once per statement, naming its miners; `MinerQueries.watch_ledger` listens).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import asyncpg
import orjson

from pool.api.caches import Batched, Cached
from pool.api.formats import coins, finite
from pool.api.pool_queries import SERIES_10M_POINTS, TEN_MINUTES_S, PoolQueries
from pool.config import PoolConfig
from pool.stats.hashrate import ONLINE_S

logger = logging.getLogger(__name__)

MAX_WORKERS_SHOWN = 1000
MAX_MONEY_CACHED = 200_000
PREFETCH_CHUNK = 500
PREFETCH_DELAY_S = 0.2
NO_MONEY: tuple = (None, None, "[]", "[]")
MINER_PAYMENTS_SHOWN = 20
DAILY_EARNINGS_DAYS = 30


@dataclass
class WorkerSnapshot:
    """Per address, per worker: ``(d5m, d1h, d24h, last_share)`` (difficulty sums, Unix time or None);
    ``recent``: the addresses with a share in the last hour."""
    by_address: dict[str, dict[str, tuple]]
    recent: frozenset[str]


class MinerQueries(PoolQueries):
    """The miners' queries: the workers' snapshot, the top miners, a miner's page and performance,
    and the miners' money kept in memory while the ledger's changes are listened to."""

    def __init__(self, config: PoolConfig, db: asyncpg.Pool, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, db, clock=clock)
        ttl = config.api.cache_s
        self.workers = Cached(self._load_workers, ttl, "workers")
        self.miner_money = Batched(self._load_miner_money)
        self._money: dict[str, tuple[datetime, tuple]] = {}  # address -> (earnings since, money)
        self._money_valid = False
        self._money_generation = 0
        self._money_dirty = asyncio.Event()
        self.top_miners = Cached(self._load_top_miners, ttl, "top miners")
        self._day: tuple[datetime, dict[tuple[str, str], tuple[float, float | None]]] | None = None

    async def close(self) -> None:
        for cached in (self.workers, self.top_miners):
            await cached.close()
        await super().close()

    async def _load_workers(self) -> WorkerSnapshot:
        """Every worker's 5 min, 1 h and 24 h difficulty sums and last share, in two grouped scans:
        the last hour's rows each time (``cache_s``), the 24 h window's once per 10-minute bucket."""
        minute = self._minute()
        floor = _ten_minute_floor(minute)
        async with self.db.acquire() as connection:
            recent = await connection.fetch(
                """SELECT address, worker,
                          coalesce(sum(difficulty_sum) FILTER (WHERE minute >= $2::timestamptz - interval '5 minutes'
                                                               AND minute < $2), 0)::float8 AS d5m,
                          coalesce(sum(difficulty_sum) FILTER (WHERE minute < $2), 0)::float8 AS d1h,
                          extract(epoch FROM max(last_share))::float8 AS last_share
                   FROM worker_minutes WHERE pool = $1 AND minute >= $2::timestamptz - interval '1 hour'
                   GROUP BY address, worker""", self.pool, minute)
            day = self._day
            if day is None or day[0] != floor:
                rows = await connection.fetch(
                    """SELECT address, worker, coalesce(sum(difficulty_sum), 0)::float8 AS d24h,
                              extract(epoch FROM max(last_share))::float8 AS last_share
                       FROM worker_minutes WHERE pool = $1 AND minute >= $2::timestamptz - interval '24 hours'
                         AND minute < $2
                       GROUP BY address, worker""", self.pool, floor)
                day = self._day = (floor, {(row[0], row[1]): (finite(row[2]), row[3]) for row in rows})
        by_address: dict[str, dict[str, tuple]] = {}
        for (address, worker), (d24h, last) in day[1].items():
            by_address.setdefault(address, {})[worker] = [0.0, 0.0, d24h, last]
        for address, worker, d5m, d1h, last in recent:
            workers = by_address.setdefault(address, {})
            figures = workers.get(worker)
            if figures is None:
                workers[worker] = [finite(d5m), finite(d1h), 0.0, last]
            else:
                figures[0] = finite(d5m)
                figures[1] = finite(d1h)
                if last is not None and (figures[3] is None or last > figures[3]):
                    figures[3] = last
        # Tuples of numbers: the cyclic garbage collector stops tracking them, so tens of thousands of
        # workers kept for cache_s do not lengthen its full collections (pauses of the event loop).
        for workers in by_address.values():
            for worker, figures in workers.items():
                workers[worker] = tuple(figures)
        return WorkerSnapshot(by_address, frozenset(address for address, *_ in recent))

    async def _load_top_miners(self) -> list[dict[str, Any]]:
        """The 1,000 miners with the most work in the last hour (from the workers' snapshot)."""
        snapshot = await self.workers.get()
        online_after = self.clock() - ONLINE_S
        ranked = []
        for address in snapshot.recent:
            workers = snapshot.by_address[address].values()
            ranked.append((-sum(figures[1] for figures in workers), address,
                           sum(figures[0] for figures in workers),
                           sum(1 for figures in workers if figures[3] is not None and figures[3] > online_after)))
        ranked.sort()
        return [{"address": address, "hashrate": {"5m": self.rate(d5m, 300), "1h": self.rate(-minus_d1h, 3600)},
                 "workers_online": online} for minus_d1h, address, d5m, online in ranked[:1000]]

    async def miner(self, address: str) -> dict[str, Any] | None:
        """Everything about one miner, or None when the ledger knows nothing of the address.

        Hashrates and workers come from the workers' snapshot (at most ``cache_s`` old); the balance,
        payments and daily earnings are as the ledger is now (`money`)."""
        now = self._now()
        snapshot = await self.workers.get()
        amount, paid, payments_json, earnings_json = await self.money(address)
        payments = orjson.loads(payments_json)
        earnings = orjson.loads(earnings_json)
        workers = snapshot.by_address.get(address, {})
        balance = (amount, paid) if amount is not None else None
        if not workers and balance is None and not payments and not earnings:
            return None
        online_after = now.timestamp() - ONLINE_S
        totals = {"5m": 0.0, "1h": 0.0, "24h": 0.0}
        shown = []
        for name in sorted(workers):
            d5m, d1h, d24h, last = workers[name]
            rates = {"5m": self.rate(d5m, 300), "1h": self.rate(d1h, 3600), "24h": self.rate(d24h, 86400)}
            totals["5m"] += rates["5m"]
            totals["1h"] += rates["1h"]
            totals["24h"] += rates["24h"]
            if len(shown) < MAX_WORKERS_SHOWN:
                shown.append({"name": name, "hashrate": rates, "last_share": last,
                              "online": last is not None and last > online_after})
        immature = 0
        if self.config.payouts.scheme not in ("pps", "fpps"):
            summary = await self.summary.get()
            series = await self.series_10m.get()
            pool_24h = sum(point[1] for point in series["sums"])
            miner_24h = sum(figures[2] for figures in workers.values())
            if pool_24h > 0 and summary["pending_reward"]:
                share = min(Fraction(miner_24h) / Fraction(pool_24h), Fraction(1))
                immature = math.floor(summary["pending_reward"] * (1 - self.fee_percent / 100) * share)
        amount, paid = balance if balance else (0, 0)
        return {
            "pool": self.pool,
            "address": address,
            "hashrate": totals,
            "workers_online": sum(1 for worker in shown if worker["online"]),
            "workers_total": len(workers),
            "workers": shown,
            "balance": amount,
            "balance_coins": coins(amount),
            "immature_estimate": immature,
            "immature_estimate_coins": coins(immature),
            "total_paid": paid,
            "total_paid_coins": coins(paid),
            "payments": [{"id": row["id"], "txid": row["txid"], "status": row["status"], "amount": row["amount"],
                          "amount_coins": coins(row["amount"]), "time": row["created"]} for row in payments],
            "daily_earnings": [{"day": row["day"], "amount": row["amount"],
                                "amount_coins": coins(row["amount"])} for row in earnings],
        }

    async def money(self, address: str) -> tuple:
        """One miner's balance, total paid, latest payments and daily earnings: from memory while
        the ledger has not changed since they were read (`watch_ledger`), else from the database."""
        since = self._earnings_since()
        cached = self._money.get(address)
        if cached is not None and self._money_valid and cached[0] == since:
            return cached[1]
        generation = self._money_generation
        money = await self.miner_money.get(address)
        if money is None:
            money = NO_MONEY
        self._keep_money(generation, since, {address: money})
        return money

    def _earnings_since(self) -> datetime:
        return self._now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
            days=DAILY_EARNINGS_DAYS - 1)

    def _keep_money(self, generation: int, since: datetime, found: dict[str, tuple]) -> bool:
        """Keep what was read, unless a ledger change committed since the read began."""
        if not self._money_valid or generation != self._money_generation:
            return False
        if len(self._money) + len(found) > MAX_MONEY_CACHED:
            self._money.clear()
        for address, money in found.items():
            self._money[address] = (since, money)
        return True

    def ledger_changed(self, _connection: Any = None, _pid: int = 0, _channel: str = "", payload: str = "") -> None:
        """A transaction that changed money committed: forget what was read of the miners it names
        ("POOL ADDRESS ADDRESS ...", one notification per statement), or of everyone ("": then read
        them all again soon, `_prefetch_money`). A read that was running meanwhile is not kept (the
        generation moved on)."""
        self._money_generation += 1
        if payload:
            pool, *addresses = payload.split(" ")
            if pool == self.pool:
                money = self._money
                for address in addresses:
                    money.pop(address, None)
            return
        self._money.clear()
        self._money_dirty.set()

    async def watch_ledger(self, retry_s: float = 1.0) -> None:
        """LISTEN for the ledger's changes on a connection of its own; the money of miners is kept in
        memory only while this listens (a lost connection: every page reads the database again)."""
        prefetcher = asyncio.ensure_future(self._prefetch_loop())
        try:
            while True:
                lost = asyncio.Event()
                try:
                    async with self.db.acquire() as connection:
                        connection.add_termination_listener(lambda _, lost=lost: lost.set())
                        await connection.add_listener("quarry_ledger", self.ledger_changed)
                        self._money_valid = True
                        self.ledger_changed()
                        try:
                            await lost.wait()
                        finally:
                            self._money_valid = False
                            self.ledger_changed()
                            if not connection.is_closed():
                                with contextlib.suppress(Exception):
                                    await connection.remove_listener("quarry_ledger", self.ledger_changed)
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # the database away: read per request until it is back
                    logger.warning("api: cannot listen for ledger changes: %s: %s", type(error).__name__, error)
                await asyncio.sleep(retry_s)
        finally:
            prefetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prefetcher

    async def _prefetch_loop(self) -> None:
        while True:
            await self._money_dirty.wait()
            await asyncio.sleep(PREFETCH_DELAY_S)  # a change comes as a few commits close together
            self._money_dirty.clear()
            if not self._money_valid:
                continue
            try:
                await self._prefetch_money()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # pages read what they need themselves meanwhile
                logger.warning("api: could not read the miners' money ahead: %s: %s", type(error).__name__, error)

    async def _prefetch_money(self) -> None:
        """Read the money of every miner with a balance row (most recently changed first), a chunk per
        statement, so that miner pages are answered from memory from the start (and after a TRUNCATE
        or a lost listener)."""
        generation = self._money_generation
        since = self._earnings_since()
        addresses = [row[0] for row in await self.db.fetch(
            "SELECT address FROM balances WHERE pool = $1 ORDER BY updated DESC LIMIT $2",
            self.pool, MAX_MONEY_CACHED)]
        for start in range(0, len(addresses), PREFETCH_CHUNK):
            chunk = [address for address in addresses[start:start + PREFETCH_CHUNK] if address not in self._money]
            if not chunk:
                continue
            found = await self._load_miner_money(chunk)
            if not self._keep_money(generation, since, {address: found.get(address, NO_MONEY) for address in chunk}):
                self._money_dirty.set()  # a change came meanwhile: read again what is not in memory
                return
            generation = self._money_generation

    async def _load_miner_money(self, addresses: list[str]) -> dict[str, tuple]:
        """Per address: balance (or None), total paid, the latest payments and the daily earnings."""
        since = self._earnings_since()
        rows = await self.db.fetch(_MINER_QUERY, self.pool, addresses, MINER_PAYMENTS_SHOWN, since)
        # The lists stay JSON text until a page shows them: kept for every miner, they would be
        # hundreds of thousands of objects for the garbage collector to walk.
        return {row["address"]: (row["amount"], row["paid"], row["payments"], row["earnings"]) for row in rows}

    async def miner_performance(self, address: str) -> dict[str, Any]:
        """One miner's hashrate and workers per 10 minutes over 24 h (144 points; a range scan of the
        address in the aggregates' primary key)."""
        end_bucket = int(self.clock() // TEN_MINUTES_S)
        first_bucket = end_bucket - SERIES_10M_POINTS
        rows = await self.db.fetch(
            """SELECT (floor(extract(epoch FROM minute) / $5))::bigint AS bucket, sum(difficulty_sum) AS d,
                      count(DISTINCT worker) AS workers
               FROM worker_minutes WHERE pool = $1 AND address = $2 AND minute >= $3 AND minute < $4
               GROUP BY 1""",
            self.pool, address, datetime.fromtimestamp(first_bucket * TEN_MINUTES_S, UTC),
            datetime.fromtimestamp(end_bucket * TEN_MINUTES_S, UTC), TEN_MINUTES_S)
        by_bucket = {row["bucket"]: (finite(row["d"]), row["workers"]) for row in rows}
        sums = [(bucket * TEN_MINUTES_S, *by_bucket.get(bucket, (0.0, 0)))
                for bucket in range(first_bucket, end_bucket)]
        return {"pool": self.pool, "address": address,
                "ten_minutes": self._points({"width_s": TEN_MINUTES_S, "sums": sums})}


_MINER_QUERY = """
SELECT
  a.address, b.amount, b.paid,
  (SELECT coalesce(json_agg(p ORDER BY p.id DESC), '[]') FROM (
      SELECT p.id, p.txid, p.status, o.amount, extract(epoch FROM p.created)::double precision AS created
      FROM payment_outputs o JOIN payments p ON p.id = o.payment_id
      WHERE p.pool = $1 AND o.address = a.address ORDER BY o.payment_id DESC LIMIT $3) p)::text AS payments,
  (SELECT coalesce(json_agg(e ORDER BY e.day), '[]') FROM (
      SELECT to_char(date_trunc('day', created), 'YYYY-MM-DD') AS day, sum(amount)::bigint AS amount FROM journal
      WHERE pool = $1 AND address = a.address AND amount > 0
        AND reason IN ('block_credit', 'pps_credit', 'fee_recipient') AND created >= $4
      GROUP BY 1) e)::text AS earnings
FROM unnest($2::text[]) AS a(address) LEFT JOIN balances b ON b.pool = $1 AND b.address = a.address
"""


def _ten_minute_floor(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute - moment.minute % 10)
