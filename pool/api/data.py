"""What the API shows, read from the ledger's tables: aggregates only, never the raw shares.

Hashrate and workers come from ``worker_minutes`` (per-minute sums per worker, written in the same
transaction as the shares); blocks, balances, the journal, payout reports and payments from their
tables. Pool-wide figures cost a scan of many aggregate rows, so they are computed at most once per
``cache_s`` by one task (`Cached`: single flight, the old value is served while the new one is
computed). Per-worker figures (the miner page, the top miners) come from one snapshot of every
worker's windows (`WorkerSnapshot`), rebuilt every ``cache_s`` from the last hour's aggregates and
once per 10-minute bucket from the 24 h window's: a miner's page then costs no scan of its aggregates,
whose rows lie one per page across the table. Money (balance, payments, daily earnings) is read by
index lookups, in one statement for the miner pages asked for at the same time (`Batched`), and kept
in memory until a transaction that changes balances, the journal or payments commits (the tables'
triggers NOTIFY ``quarry_ledger``; `PoolData.watch_ledger` listens). The pool's 24 h figures come from
the 10-minute series, refreshed once a minute.

Windows follow `pool.stats.hashrate`: the 5 min and 1 h windows are the last 5 or 60 *complete* minutes before
the current one; the 24 h window is the last 144 complete 10-minute buckets.
``hashrate = sum(credited difficulty) * hashes_per_difficulty / window_s``.

Money is integer satoshis; ``*_coins`` fields repeat an amount as a decimal string of coins.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Generic, TypeVar

import asyncpg
import orjson

from payouts import merkle
from pool.config import PoolConfig
from pool.stats.hashrate import ONLINE_S, hashes_per_difficulty

logger = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")

SATOSHIS_PER_COIN = 100_000_000
MAX_SATOSHIS = 2**63 - 1
MAX_WORKERS_SHOWN = 1000
MAX_CACHED_PAGES = 1024
MAX_MONEY_CACHED = 200_000
PREFETCH_CHUNK = 500
PREFETCH_DELAY_S = 0.2
NO_MONEY: tuple = (None, None, "[]", "[]")
MINER_PAYMENTS_SHOWN = 20
DAILY_EARNINGS_DAYS = 30
TEN_MINUTES_S = 600
HOUR_S = 3600
SERIES_10M_POINTS = 144  # 24 h
SERIES_1H_POINTS = 720  # 30 days
PERFORMANCE_10M_TTL_S = 60.0
PERFORMANCE_1H_TTL_S = 600.0
NETWORK_POLL_S = 30.0
#: Bitcoin-style difficulty 1 (what getmininginfo's "difficulty" is relative to, for every coin).
DAEMON_DIFF1_TARGET = 0xFFFF << 208


_ESCAPES = ((b"&", b"\\u0026"), (b"<", b"\\u003c"), (b">", b"\\u003e"))


def dump_json(data: Any) -> bytes:
    """JSON with <, > and & escaped: safe inside HTML, never sniffed as markup."""
    body = orjson.dumps(data)
    for raw, escaped in _ESCAPES:
        if raw in body:
            body = body.replace(raw, escaped)
    return body


def coins(satoshis: int) -> str:
    """Satoshis as a decimal string of coins with 8 places: 150000000 -> "1.50000000"."""
    sign = "-" if satoshis < 0 else ""
    whole, part = divmod(abs(int(satoshis)), SATOSHIS_PER_COIN)
    return f"{sign}{whole}.{part:08d}"


def shorten(address: str) -> str:
    """A finder's address as shown publicly: its first 6 and last 4 characters."""
    return address if len(address) <= 12 else f"{address[:6]}...{address[-4:]}"


def unix(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _finite(value: Any) -> float:
    try:
        number = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


class Cached(Generic[T]):
    """A value recomputed at most every ``ttl_s`` by one task at a time; stale values are served
    while a refresh runs (or when it failed). The first call waits for the first value."""

    def __init__(self, load: Callable[[], Awaitable[T]], ttl_s: float, name: str) -> None:
        self.load = load
        self.ttl_s = ttl_s
        self.name = name
        self._value: T | None = None
        self._at = -math.inf
        self._task: asyncio.Task | None = None

    async def get(self) -> T:
        if self._value is not None and time.monotonic() - self._at < self.ttl_s:
            return self._value
        if self._task is None:
            self._task = asyncio.ensure_future(self._refresh())
        if self._value is not None:
            return self._value
        await asyncio.shield(self._task)
        if self._value is None:
            raise DataUnavailable(f"{self.name} could not be computed")
        return self._value

    async def _refresh(self) -> None:
        try:
            self._value = await self.load()
            self._at = time.monotonic()
        except Exception as error:  # the database away: keep serving what we had
            logger.warning("api: could not refresh %s: %s: %s", self.name, type(error).__name__, error)
        finally:
            self._task = None

    def invalidate(self) -> None:
        self._at = -math.inf

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


class DataUnavailable(RuntimeError):
    """The database (or the daemon, for network figures) cannot answer now."""


class Batched(Generic[K, T]):
    """Lookups of one kind by key, gathered into one statement for many keys (as a data loader does).

    A lookup starts a statement at once while fewer than ``parallel`` are running; otherwise it waits
    for the next one, which takes every key waiting (up to ``max_keys``). Under light load a lookup
    costs one statement as before; under heavy load, one statement answers tens of requests, so the
    database spends its time on the rows instead of on a round trip, a parse and a plan per request,
    and every request waits in one FIFO line (a pool's free connection is not handed to whoever asks
    last, as asyncpg's queue does when many wait).
    """

    def __init__(self, load_many: Callable[[list[K]], Awaitable[dict[K, T]]], *, parallel: int = 4,
                 max_keys: int = 200) -> None:
        self.load_many = load_many
        self.parallel = parallel
        self.max_keys = max_keys
        self._waiting: dict[K, list[asyncio.Future]] = {}
        self._running = 0
        self.statements = 0
        self.keys_loaded = 0

    async def get(self, key: K) -> T | None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        try:
            if self._running < self.parallel:
                # This request runs the statement itself (no task to start: one event-loop turn less).
                await self._run(self._take())
            return await future
        except asyncio.CancelledError:
            future.cancel()
            raise

    def _take(self) -> dict[K, list[asyncio.Future]]:
        keys = list(itertools.islice(self._waiting, self.max_keys))
        self._running += 1
        return {key: self._waiting.pop(key) for key in keys}

    async def _run(self, batch: dict[K, list[asyncio.Future]]) -> None:
        try:
            try:
                found = await self.load_many(list(batch))
            except asyncio.CancelledError:  # the request running it went away: the others wait for the next
                for key, futures in batch.items():
                    alive = [future for future in futures if not future.done()]
                    if alive:
                        self._waiting.setdefault(key, []).extend(alive)
                raise
            except Exception as error:  # the database away: every waiting request gets the error
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                return
            self.statements += 1
            self.keys_loaded += len(batch)
            for key, futures in batch.items():
                value = found.get(key)
                for future in futures:
                    if not future.done():
                        future.set_result(value)
        finally:
            self._running -= 1
            if self._waiting and self._running < self.parallel:
                asyncio.ensure_future(self._run(self._take()))  # those who came while all statements ran


@dataclass
class NetworkState:
    """The coin network as last seen: difficulty in Stratum units, height of the chain tip."""
    difficulty: float | None = None
    height: int | None = None
    hashrate: float | None = None
    source: str = "none"  # "daemon" (getmininginfo) or "ledger" (the latest block the pool stored)
    updated: float | None = None


@dataclass
class WorkerSnapshot:
    """Per address, per worker: ``(d5m, d1h, d24h, last_share)`` (difficulty sums, Unix time or None);
    ``recent``: the addresses with a share in the last hour."""
    by_address: dict[str, dict[str, tuple]]
    recent: frozenset[str]


class PoolData:
    """The queries of one pool's API (``config.pool_name``) on an asyncpg pool."""

    def __init__(self, config: PoolConfig, db: asyncpg.Pool, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.db = db
        self.pool = config.pool_name
        self.coin = config.coin
        self.clock = clock
        self.hashes_per_difficulty = float(hashes_per_difficulty(config.coin.diff1_target))
        ttl = config.api.cache_s
        self.summary = Cached(self._load_summary, ttl, "pool summary")
        self.workers = Cached(self._load_workers, ttl, "workers")
        self.miner_money = Batched(self._load_miner_money)
        self._money: dict[str, tuple[datetime, tuple]] = {}  # address -> (earnings since, money)
        self._money_valid = False
        self._money_generation = 0
        self._money_dirty = asyncio.Event()
        self.top_miners = Cached(self._load_top_miners, ttl, "top miners")
        self._day: tuple[datetime, dict[tuple[str, str], tuple[float, float | None]]] | None = None
        self.series_10m = Cached(self._load_series_10m, max(ttl, PERFORMANCE_10M_TTL_S), "10-minute series")
        self.series_1h = Cached(self._load_series_1h, max(ttl, PERFORMANCE_1H_TTL_S), "hourly series")
        self.ledger_counts = Cached(self._load_ledger_counts, ttl, "ledger counts")
        self.network = NetworkState()
        self._pool_json: tuple[tuple, bytes] | None = None
        self._block_pages: dict[tuple, tuple[float, bytes]] = {}
        self._block_refreshing: set[tuple] = set()
        payouts = config.payouts
        recipients = sum((Fraction(p) for _, p in payouts.fee_recipients), Fraction(0))
        self.fee_percent = Fraction(payouts.pool_fee_percent) + recipients
        self.recipients_percent = recipients

    async def close(self) -> None:
        for cached in (self.summary, self.workers, self.top_miners, self.series_10m, self.series_1h, self.ledger_counts):
            await cached.close()

    # -- time ----------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _minute(self) -> datetime:
        """Start of the current (incomplete) minute: windows end here."""
        return self._now().replace(second=0, microsecond=0)

    def rate(self, difficulty_sum: float, window_s: float) -> float:
        return _finite(difficulty_sum) * self.hashes_per_difficulty / window_s

    # -- the pool --------------------------------------------------------------------------------------

    async def _load_summary(self) -> dict[str, Any]:
        minute = self._minute()
        online_after = self._now() - timedelta(seconds=ONLINE_S)
        async with self.db.acquire() as connection:
            sums = await connection.fetchrow(
                """SELECT coalesce(sum(difficulty_sum) FILTER (WHERE minute >= $2::timestamptz - interval '5 minutes'), 0) AS d5m,
                          coalesce(sum(difficulty_sum), 0) AS d1h
                   FROM worker_minutes WHERE pool = $1 AND minute >= $2::timestamptz - interval '1 hour' AND minute < $2""",
                self.pool, minute)
            online = await connection.fetchrow(
                """SELECT count(DISTINCT (address, worker)) AS workers, count(DISTINCT address) AS miners
                   FROM worker_minutes WHERE pool = $1 AND minute >= date_trunc('minute', $2::timestamptz)
                   AND last_share > $2""", self.pool, online_after)
            last_block = await connection.fetchrow(
                """SELECT height, hash, status, effort, created FROM blocks
                   WHERE pool = $1 AND status <> 'rejected' ORDER BY height DESC, id DESC LIMIT 1""", self.pool)
            round_row = await connection.fetchrow("SELECT work, shares, started FROM rounds WHERE pool = $1", self.pool)
            totals = await connection.fetchrow(
                """SELECT (SELECT coalesce(sum(paid), 0) FROM balances WHERE pool = $1)::bigint AS paid,
                          (SELECT count(*) FROM blocks WHERE pool = $1 AND status IN ('pending', 'confirmed')) AS blocks,
                          (SELECT coalesce(sum(reward), 0) FROM blocks WHERE pool = $1 AND status = 'pending')::bigint
                              AS pending_reward""", self.pool)
            reserve = None
            if self.config.payouts.scheme in ("pps", "fpps"):
                reserve = await connection.fetchval(
                    """SELECT ((SELECT coalesce(sum(reward), 0) FROM blocks WHERE pool = $1 AND status = 'confirmed')
                             - (SELECT coalesce(sum(amount), 0) FROM journal WHERE pool = $1 AND reason = 'pps_credit')
                            )::bigint""", self.pool)
            if self.network.source != "daemon":
                await self._network_from_ledger(connection)
        return {
            "hashrate_5m": self.rate(sums["d5m"], 300),
            "hashrate_1h": self.rate(sums["d1h"], 3600),
            "workers_online": online["workers"],
            "miners_online": online["miners"],
            "last_block": None if last_block is None else {
                "height": last_block["height"], "hash": last_block["hash"], "status": last_block["status"],
                "effort": last_block["effort"], "time": unix(last_block["created"]),
            },
            "round": {
                "effort": _finite(round_row["work"]) if round_row else 0.0,
                "shares": round_row["shares"] if round_row else 0,
                "started": unix(round_row["started"]) if round_row else None,
            },
            "total_paid": totals["paid"],
            "blocks_found": totals["blocks"],
            "pending_reward": totals["pending_reward"],
            "pps_reserve": reserve,
        }

    async def _network_from_ledger(self, connection: asyncpg.Connection) -> None:
        row = await connection.fetchrow(
            """SELECT height, network_difficulty, created FROM blocks WHERE pool = $1 AND network_difficulty > 0
               ORDER BY id DESC LIMIT 1""", self.pool)
        if row is not None and self.network.source != "daemon":
            difficulty = _finite(row["network_difficulty"])
            self.network = NetworkState(
                difficulty=difficulty, height=row["height"],
                hashrate=self._network_hashrate(difficulty), source="ledger", updated=unix(row["created"]))

    def _network_hashrate(self, difficulty: float) -> float:
        return difficulty * self.hashes_per_difficulty / self.coin.block_time_s

    def apply_mining_info(self, info: dict[str, Any]) -> None:
        """Take getmininginfo's answer (difficulty relative to Bitcoin's difficulty 1, as every
        daemon reports it) into Stratum units of this coin."""
        daemon_difficulty = _finite(info.get("difficulty"))
        if daemon_difficulty <= 0:
            return
        difficulty = daemon_difficulty * self.coin.diff1_target / DAEMON_DIFF1_TARGET
        hashrate = _finite(info.get("networkhashps")) or self._network_hashrate(difficulty)
        height = info.get("blocks")
        self.network = NetworkState(difficulty=difficulty, height=height if isinstance(height, int) else None,
                                    hashrate=hashrate, source="daemon", updated=self.clock())

    async def pool_view_json(self) -> bytes:
        """`pool_view` as JSON, made once per new summary, series or network figures."""
        summary = await self.summary.get()
        series = await self.series_10m.get()
        key = (summary, series, self.network)
        cached = self._pool_json
        if cached is None or any(new is not old for new, old in zip(key, cached[0], strict=True)):
            cached = self._pool_json = (key, dump_json(await self.pool_view()))
        return cached[1]

    async def pool_view(self) -> dict[str, Any]:
        summary = await self.summary.get()
        series = await self.series_10m.get()
        config = self.config
        payouts = config.payouts
        hashrate_24h = sum(point[1] for point in series["sums"]) * self.hashes_per_difficulty / 86400
        network = self.network
        scheme: dict[str, Any] = {"name": payouts.scheme}
        if payouts.scheme == "pplns":
            scheme["pplns_factor"] = payouts.pplns_factor
        return {
            "id": self.pool,
            "coin": {"name": self.coin.name, "symbol": self.coin.symbol, "algorithm": self.coin.algorithm.name,
                     "block_time_s": self.coin.block_time_s, "coinbase_maturity": config.maturity},
            "scheme": scheme,
            "fee": {
                "pool_percent": payouts.pool_fee_percent,
                "recipients_percent": _percent_text(self.recipients_percent),
                "total_percent": _percent_text(self.fee_percent),
                "recipients": [{"address": address, "percent": percent}
                               for address, percent in payouts.fee_recipients],
            },
            "minimum_payout": _minimum_payout(config),
            "ports": [
                {"port": port.port, "name": port.name, "difficulty": port.initial_difficulty,
                 "min_difficulty": port.min_difficulty, "max_difficulty": port.max_difficulty,
                 "vardiff": port.vardiff}
                for port in config.stratum.ports
            ],
            "hashrate": {"5m": summary["hashrate_5m"], "1h": summary["hashrate_1h"], "24h": hashrate_24h},
            "miners_online": summary["miners_online"],
            "workers_online": summary["workers_online"],
            "network": {"difficulty": network.difficulty, "height": network.height, "hashrate": network.hashrate,
                        "source": network.source},
            "last_block": summary["last_block"],
            "blocks_found": summary["blocks_found"],
            "round": summary["round"],
            "total_paid": summary["total_paid"],
            "total_paid_coins": coins(summary["total_paid"]),
            "pps_reserve": summary["pps_reserve"],
        }

    # -- series ----------------------------------------------------------------------------------------

    async def _series(self, width_s: int, points: int) -> dict[str, Any]:
        now = self.clock()
        end_bucket = int(now // width_s)  # the bucket being filled: not shown
        first_bucket = end_bucket - points
        rows = await self.db.fetch(
            """SELECT (floor(extract(epoch FROM minute) / $4))::bigint AS bucket, sum(difficulty_sum) AS d,
                      count(DISTINCT (address, worker)) AS workers
               FROM worker_minutes WHERE pool = $1 AND minute >= $2 AND minute < $3
               GROUP BY 1""",
            self.pool, datetime.fromtimestamp(first_bucket * width_s, UTC),
            datetime.fromtimestamp(end_bucket * width_s, UTC), width_s)
        by_bucket = {row["bucket"]: (_finite(row["d"]), row["workers"]) for row in rows}
        sums = []
        for bucket in range(first_bucket, end_bucket):
            difficulty, workers = by_bucket.get(bucket, (0.0, 0))
            sums.append((bucket * width_s, difficulty, workers))
        return {"width_s": width_s, "sums": sums}

    async def _load_series_10m(self) -> dict[str, Any]:
        return await self._series(TEN_MINUTES_S, SERIES_10M_POINTS)

    async def _load_series_1h(self) -> dict[str, Any]:
        return await self._series(HOUR_S, SERIES_1H_POINTS)

    def _points(self, series: dict[str, Any]) -> list[dict[str, Any]]:
        width = series["width_s"]
        return [{"time": start, "hashrate": self.rate(difficulty, width), "workers": workers}
                for start, difficulty, workers in series["sums"]]

    async def performance(self) -> dict[str, Any]:
        return {"pool": self.pool, "ten_minutes": self._points(await self.series_10m.get()),
                "hourly": self._points(await self.series_1h.get())}

    # -- miners ----------------------------------------------------------------------------------------

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
                day = self._day = (floor, {(row[0], row[1]): (_finite(row[2]), row[3]) for row in rows})
        by_address: dict[str, dict[str, tuple]] = {}
        for (address, worker), (d24h, last) in day[1].items():
            by_address.setdefault(address, {})[worker] = [0.0, 0.0, d24h, last]
        for address, worker, d5m, d1h, last in recent:
            workers = by_address.setdefault(address, {})
            figures = workers.get(worker)
            if figures is None:
                workers[worker] = [_finite(d5m), _finite(d1h), 0.0, last]
            else:
                figures[0] = _finite(d5m)
                figures[1] = _finite(d1h)
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
        """A transaction that changed money committed: forget what was read of the miner it names
        ("POOL ADDRESS"), or of everyone ("": then read them all again soon, `_prefetch_money`). A read
        that was running meanwhile is not kept (the generation moved on)."""
        self._money_generation += 1
        if payload:
            pool, _, address = payload.partition(" ")
            if pool == self.pool:
                self._money.pop(address, None)
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
        by_bucket = {row["bucket"]: (_finite(row["d"]), row["workers"]) for row in rows}
        sums = [(bucket * TEN_MINUTES_S, *by_bucket.get(bucket, (0.0, 0)))
                for bucket in range(first_bucket, end_bucket)]
        return {"pool": self.pool, "address": address,
                "ten_minutes": self._points({"width_s": TEN_MINUTES_S, "sums": sums})}

    # -- blocks, payouts, payments ---------------------------------------------------------------------

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
                "SELECT count(*) FROM blocks WHERE pool = $1 AND ($2::text IS NULL OR status = $2)", self.pool, status)
            rows = await connection.fetch(
                """SELECT height, hash, status, confirmations, reward, effort, finder_address, created, credited
                   FROM blocks WHERE pool = $1 AND ($2::text IS NULL OR status = $2)
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

    # -- the estimate ----------------------------------------------------------------------------------

    def estimate(self, hashrate: float, power_w: float, price_kwh: float, coin_price: float | None
                 ) -> dict[str, Any] | None:
        network = self.network
        if not network.difficulty or network.height is None:
            return None
        hashes_per_block = network.difficulty * self.hashes_per_difficulty
        blocks_per_day = hashrate * 86400 / hashes_per_block
        reward = self.coin.block_subsidy(network.height + 1)
        miners_part = 1 - float(self.fee_percent) / 100
        expected = blocks_per_day * reward * miners_part
        # A hashrate far beyond the network's would "earn" more than exists: capped at a bigint.
        satoshis = min(math.floor(expected), MAX_SATOSHIS) if math.isfinite(expected) else MAX_SATOSHIS
        power_cost = power_w / 1000 * 24 * price_kwh
        revenue = None if coin_price is None else satoshis / SATOSHIS_PER_COIN * coin_price
        return {
            "pool": self.pool,
            "hashrate": hashrate,
            "network_difficulty": network.difficulty,
            "network_hashrate": network.hashrate,
            "block_reward": reward,
            "block_reward_coins": coins(reward),
            "fee_percent": _percent_text(self.fee_percent),
            "blocks_per_day": blocks_per_day,
            "satoshis_per_day": satoshis,
            "coins_per_day": coins(satoshis),
            "power_cost_per_day": power_cost,
            "revenue_per_day": revenue,
            "profit_per_day": None if revenue is None else revenue - power_cost,
            "note": "expected value: block subsidy only (no transaction fees), at the current network difficulty",
        }

    # -- for the metrics and the feed ------------------------------------------------------------------

    async def _load_ledger_counts(self) -> dict[str, Any]:
        async with self.db.acquire() as connection:
            blocks = await connection.fetch(
                "SELECT status, count(*) AS n FROM blocks WHERE pool = $1 GROUP BY status", self.pool)
            payments = await connection.fetch(
                """SELECT status, count(*) AS n, coalesce(sum(amount), 0)::bigint AS amount FROM payments
                   WHERE pool = $1 GROUP BY status""", self.pool)
        return {"blocks": {row["status"]: row["n"] for row in blocks},
                "payments": {row["status"]: (row["n"], row["amount"]) for row in payments}}


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


def _percent_text(value: Fraction) -> str:
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _minimum_payout(config: PoolConfig) -> int | None:
    """The payment sender's minimum, when the configuration has one (satoshis)."""
    for section in (getattr(config, "payments", None), config.payouts):
        value = getattr(section, "minimum_payout", None) if section is not None else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
