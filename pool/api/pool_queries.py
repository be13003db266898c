"""The pool's figures: its page (hashrate, workers, last block, round, totals), the network, the
performance series, the earnings estimate and the ledger counts of the metrics.

Pool-wide figures cost a scan of many aggregate rows of ``worker_minutes``, so they are computed at
most once per ``cache_s`` by one task (`Cached`: single flight, the old value is served while the new
one is computed). The pool's 24 h figures come from the 10-minute series, refreshed once a minute.

Windows follow `pool.stats.hashrate`: the 5 min and 1 h windows are the last 5 or 60 *complete*
minutes before the current one; the 24 h window is the last 144 complete 10-minute buckets.
``hashrate = sum(credited difficulty) * hashes_per_difficulty / window_s``.

Blocks are the pool's own: a stale candidate (a solution found after the pool knew the tip had
moved, submitted anyway) is shown and counted only once the chain has taken it (``confirmed``).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import asyncpg

from pool.api.caches import Cached
from pool.api.formats import SATOSHIS_PER_COIN, coins, dump_json, finite, unix
from pool.config import PoolConfig
from pool.stats.hashrate import ONLINE_S, hashes_per_difficulty

MAX_SATOSHIS = 2**63 - 1
#: The rows of ``blocks`` that are the pool's blocks: a stale candidate only once the chain took it.
POOL_BLOCK = "(NOT stale OR status = 'confirmed')"
TEN_MINUTES_S = 600
HOUR_S = 3600
SERIES_10M_POINTS = 144  # 24 h
SERIES_1H_POINTS = 720  # 30 days
PERFORMANCE_10M_TTL_S = 60.0
PERFORMANCE_1H_TTL_S = 600.0
NETWORK_POLL_S = 30.0
#: Bitcoin-style difficulty 1 (what getmininginfo's "difficulty" is relative to, for every coin).
DAEMON_DIFF1_TARGET = 0xFFFF << 208


@dataclass
class NetworkState:
    """The coin network as last seen: difficulty in Stratum units, height of the chain tip."""
    difficulty: float | None = None
    height: int | None = None
    hashrate: float | None = None
    source: str = "none"  # "daemon" (getmininginfo) or "ledger" (the latest block the pool stored)
    updated: float | None = None


class PoolQueries:
    """The pool's queries on an asyncpg pool, and what the miner and block queries share: the
    configuration, the database, the clock and the hashrate of a difficulty sum."""

    def __init__(self, config: PoolConfig, db: asyncpg.Pool, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.db = db
        self.pool = config.pool_name
        self.coin = config.coin
        self.clock = clock
        self.hashes_per_difficulty = float(hashes_per_difficulty(config.coin.diff1_target))
        ttl = config.api.cache_s
        self.summary = Cached(self._load_summary, ttl, "pool summary")
        self.series_10m = Cached(self._load_series_10m, max(ttl, PERFORMANCE_10M_TTL_S), "10-minute series")
        self.series_1h = Cached(self._load_series_1h, max(ttl, PERFORMANCE_1H_TTL_S), "hourly series")
        self.ledger_counts = Cached(self._load_ledger_counts, ttl, "ledger counts")
        self.network = NetworkState()
        self._pool_json: tuple[tuple, bytes] | None = None
        payouts = config.payouts
        recipients = sum((Fraction(p) for _, p in payouts.fee_recipients), Fraction(0))
        self.fee_percent = Fraction(payouts.pool_fee_percent) + recipients
        self.recipients_percent = recipients

    async def close(self) -> None:
        for cached in (self.summary, self.series_10m, self.series_1h, self.ledger_counts):
            await cached.close()

    # -- time ----------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _minute(self) -> datetime:
        """Start of the current (incomplete) minute: windows end here."""
        return self._now().replace(second=0, microsecond=0)

    def rate(self, difficulty_sum: float, window_s: float) -> float:
        return finite(difficulty_sum) * self.hashes_per_difficulty / window_s

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
                f"""SELECT height, hash, status, effort, created FROM blocks
                   WHERE pool = $1 AND status <> 'rejected' AND {POOL_BLOCK}
                   ORDER BY height DESC, id DESC LIMIT 1""", self.pool)
            round_row = await connection.fetchrow("SELECT work, shares, started FROM rounds WHERE pool = $1", self.pool)
            totals = await connection.fetchrow(
                f"""SELECT (SELECT coalesce(sum(paid), 0) FROM balances WHERE pool = $1)::bigint AS paid,
                          (SELECT count(*) FROM blocks WHERE pool = $1 AND status IN ('pending', 'confirmed')
                              AND {POOL_BLOCK}) AS blocks,
                          (SELECT coalesce(sum(reward), 0) FROM blocks WHERE pool = $1 AND status = 'pending'
                              AND NOT stale)::bigint AS pending_reward""", self.pool)
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
                "effort": finite(round_row["work"]) if round_row else 0.0,
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
            difficulty = finite(row["network_difficulty"])
            self.network = NetworkState(
                difficulty=difficulty, height=row["height"],
                hashrate=self._network_hashrate(difficulty), source="ledger", updated=unix(row["created"]))

    def _network_hashrate(self, difficulty: float) -> float:
        return difficulty * self.hashes_per_difficulty / self.coin.block_time_s

    def apply_mining_info(self, info: dict[str, Any]) -> None:
        """Take getmininginfo's answer (difficulty relative to Bitcoin's difficulty 1, as every
        daemon reports it) into Stratum units of this coin."""
        daemon_difficulty = finite(info.get("difficulty"))
        if daemon_difficulty <= 0:
            return
        difficulty = daemon_difficulty * self.coin.diff1_target / DAEMON_DIFF1_TARGET
        hashrate = finite(info.get("networkhashps")) or self._network_hashrate(difficulty)
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
        by_bucket = {row["bucket"]: (finite(row["d"]), row["workers"]) for row in rows}
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
                f"""SELECT status, {POOL_BLOCK} AS pools, count(*) AS n FROM blocks WHERE pool = $1
                    GROUP BY status, pools""", self.pool)
            payments = await connection.fetch(
                """SELECT status, count(*) AS n, coalesce(sum(amount), 0)::bigint AS amount FROM payments
                   WHERE pool = $1 GROUP BY status""", self.pool)
        return {"blocks": {row["status"]: row["n"] for row in blocks if row["pools"]},
                "stale_candidates": {row["status"]: row["n"] for row in blocks if not row["pools"]},
                "payments": {row["status"]: (row["n"], row["amount"]) for row in payments}}


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
