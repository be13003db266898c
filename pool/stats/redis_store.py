"""`RedisStats`: the live statistics in Redis, shared by every pool node writing to it.

Key layout (``P`` = ``key_prefix:pool``, default prefix ``quarry:stats``; every write is an addition, a
maximum or a reset keyed by the block, so several pool nodes share the keys)::

    P:m1:<unix // 60>      hash, one per minute, expires 2 h after the minute:
    P:m10:<unix // 600>    hash, one per 10 minutes, expires 25 h after them:
                             d                      difficulty sum of the pool
                             n                      shares of the pool
                             a:<address>            difficulty sum of a miner
                             w:["address","worker"] difficulty sum of a worker (JSON array)
    P:seen:workers         sorted set ["address","worker"] -> unix time of the last share (25 h)
    P:seen:miners          sorted set address -> unix time of the last share (25 h)
    P:seen:miner:<address> sorted set worker -> unix time of the last share (25 h)
    P:round                hash work, shares, started, height, hash (the block that started it)
    P:round:last           hash: the previous round as it ended, and the block that ended it
    P:flush:<node>:<seq>   a flush's marker (1 h): after an ambiguous failure (timeout mid-EXEC) it
                           tells whether that flush was applied, so a retry never counts twice

A flush is one MULTI/EXEC: one Lua call adds all bucket sums (one JSON document per key, cheap to pack),
one sets all last-share times (ZADD GT, Redis >= 6.2), then the round and the marker. Sums are doubles
stored with 17 significant digits (HINCRBYFLOAT would keep only 17 digits after the point, losing small
round-work increments), so Redis and `MemoryStats` give bit-identical answers for the same input. All
keys of a flush are declared to the scripts; on Redis Cluster give the pool a ``key_prefix`` ending in
a ``{hash tag}`` so they share a slot.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import orjson

from pool.stats.batch import StatsBatch
from pool.stats.store import BufferedStats, StatsUnavailable

try:  # the client library is needed only by RedisStats
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ExecAbortError, RedisError, ResponseError
except ImportError:  # pragma: no cover - exercised only without the package
    aioredis = None

logger = logging.getLogger(__name__)

MARKER_TTL_S = 3600

# Float sums are doubles stored with 17 significant digits (HINCRBYFLOAT would add in long double and
# store 17 digits after the point, losing the small round-work increments).
# The bulk operations carry one JSON document per key (orjson writes the shortest round-trip form of
# a double, cjson reads it back exactly): far cheaper to pack than one argument per field.

# ARGV[i] = [{field: increment}, shares, ttl] for KEYS[i]
_BUCKETS_ADD = """
for i = 1, #KEYS do
  local bucket = cjson.decode(ARGV[i])
  for field, increment in pairs(bucket[1]) do
    local current = tonumber(redis.call('HGET', KEYS[i], field)) or 0
    redis.call('HSET', KEYS[i], field, string.format('%.17g', current + increment))
  end
  redis.call('HINCRBY', KEYS[i], 'n', string.format('%d', bucket[2]))
  redis.call('EXPIRE', KEYS[i], string.format('%d', bucket[3]))
end
return 0
"""

# ARGV[i] = [{field: value}, ttl] for KEYS[i]
_BUCKETS_MAX = """
for i = 1, #KEYS do
  local bucket = cjson.decode(ARGV[i])
  for field, value in pairs(bucket[1]) do
    local current = tonumber(redis.call('HGET', KEYS[i], field))
    if current == nil or value > current then
      redis.call('HSET', KEYS[i], field, string.format('%.17g', value))
    end
  end
  redis.call('EXPIRE', KEYS[i], string.format('%d', bucket[2]))
end
return 0
"""

# ARGV[i] = {member: unix time} for KEYS[i]; then cutoff ('' for none) and ttl. ZADD GT: Redis >= 6.2.
_SEEN = """
local cutoff = ARGV[#KEYS + 1]
local ttl = ARGV[#KEYS + 2]
for i = 1, #KEYS do
  for member, score in pairs(cjson.decode(ARGV[i])) do
    redis.call('ZADD', KEYS[i], 'GT', string.format('%.17g', score), member)
  end
  if cutoff ~= '' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. cutoff)
  end
  redis.call('EXPIRE', KEYS[i], ttl)
end
return 0
"""

_ROUND_ADD = """
local work = tonumber(redis.call('HGET', KEYS[1], 'work')) or 0
redis.call('HSET', KEYS[1], 'work', string.format('%.17g', work + tonumber(ARGV[1])))
redis.call('HINCRBY', KEYS[1], 'shares', ARGV[2])
redis.call('HSETNX', KEYS[1], 'started', ARGV[3])
return 0
"""

# KEYS: round, last round; ARGV: height, hash, created. A block already seen (another node reported
# it) or older than the one that started the round changes nothing.
_ROUND_RESET = """
local current_hash = redis.call('HGET', KEYS[1], 'hash')
local current_height = tonumber(redis.call('HGET', KEYS[1], 'height')) or -1
if current_hash == ARGV[2] or tonumber(ARGV[1]) < current_height then return 0 end
local work = redis.call('HGET', KEYS[1], 'work') or '0'
local shares = redis.call('HGET', KEYS[1], 'shares') or '0'
local started = redis.call('HGET', KEYS[1], 'started') or ''
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'work', work, 'shares', shares, 'started', started, 'ended', ARGV[3],
           'height', ARGV[1], 'hash', ARGV[2])
redis.call('HSET', KEYS[1], 'work', '0', 'shares', '0', 'started', ARGV[3],
           'height', ARGV[1], 'hash', ARGV[2])
return 1
"""

_ROUND_REBUILD = """
if redis.call('HEXISTS', KEYS[1], 'hash') == 1 then return 0 end
if tonumber(ARGV[1]) > (tonumber(redis.call('HGET', KEYS[1], 'work')) or 0) then
  redis.call('HSET', KEYS[1], 'work', ARGV[1])
end
if tonumber(ARGV[2]) > (tonumber(redis.call('HGET', KEYS[1], 'shares')) or 0) then
  redis.call('HSET', KEYS[1], 'shares', ARGV[2])
end
redis.call('HSET', KEYS[1], 'started', ARGV[3])
return 1
"""

_HSUM = """
local total = 0
for i = 1, #KEYS do
  local value = tonumber(redis.call('HGET', KEYS[i], ARGV[1]))
  if value and value == value and value ~= math.huge and value ~= -math.huge then
    total = total + value
  end
end
return string.format('%.17g', total)
"""


class RedisStats(BufferedStats):
    """The statistics in Redis, shared by every pool node writing to it.

    `redis` is a ``redis.asyncio.Redis``; it should not retry commands itself (a MULTI retried after a
    timeout could be applied twice; the flusher retries with its own marker check) and should have a
    socket timeout. `from_url` builds such a client.
    """

    def __init__(self, redis: Any, pool: str, *, push_timeout_s: float = 5.0, owns_client: bool = False,
                 **options: Any) -> None:
        if aioredis is None:
            raise RuntimeError("RedisStats needs the redis package: pip install 'redis>=5'")
        super().__init__(pool, **options)
        self.redis = redis
        self.push_timeout_s = push_timeout_s
        self._owns_client = owns_client
        self._node = secrets.token_hex(6)
        self._sequence = 0
        self._in_doubt: tuple[str, StatsBatch] | None = None

    async def store_lost(self) -> bool:
        """True when Redis no longer holds this node's rebuild marker (restarted empty, or flushed)."""
        return not await self.redis.exists(self._base(self.pool) + "rebuilt")

    async def mark_rebuilt(self) -> None:
        await self.redis.set(self._base(self.pool) + "rebuilt", str(self.clock()))

    @classmethod
    def from_url(cls, url: str, pool: str, *, socket_timeout_s: float = 2.0, **options: Any) -> RedisStats:
        """A RedisStats with its own client for `url` (``redis://host:port/db``), closed by `stop`."""
        if aioredis is None:
            raise RuntimeError("RedisStats needs the redis package: pip install 'redis>=5'")
        client = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s, retry=Retry(NoBackoff(), 0),
        )
        return cls(client, pool, owns_client=True, **options)

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            if self._owns_client:
                await self.redis.aclose()

    @property
    def pending_entries(self) -> int:
        doubtful = len(self._in_doubt[1].workers) if self._in_doubt else 0
        return len(self._pending.workers) + doubtful

    async def _push(self) -> bool:
        try:
            async with asyncio.timeout(self.push_timeout_s):
                if self._in_doubt is not None:
                    marker, doubtful = self._in_doubt
                    if not await self.redis.exists(marker):
                        # Never applied: it goes out again, in front of what came since.
                        self._pending.absorb_older(doubtful)
                        self.counters["shares_dropped"] += self._pending.trim(self.max_pending_entries)
                    self._in_doubt = None
                batch = self._pending
                if not batch:
                    if not self.healthy:
                        await self.redis.ping()  # back only when Redis says so
                        self._succeeded()
                    return True
                self._pending = StatsBatch()
                self._sequence += 1
                marker = f"{self._base(self.pool)}flush:{self._node}:{self._sequence}"
                self._in_doubt = (marker, batch)
                ops = self._ops_for(batch, self.clock())
                ops.append(("marker", marker, MARKER_TTL_S))
                try:
                    results = await self._execute(ops, transaction=True)
                except ResponseError as error:
                    if isinstance(error, ExecAbortError) or isinstance(error.__cause__, ExecAbortError):
                        self._in_doubt = None  # refused as a whole: nothing was applied
                        self._pending.absorb_older(batch)
                        self.counters["shares_dropped"] += self._pending.trim(self.max_pending_entries)
                    raise
                self._in_doubt = None
                errors = [result for result in results if isinstance(result, Exception)]
                self.counters["shares_pushed"] += batch.shares
                if errors:  # partly applied; sending it again would count the rest twice
                    self._failed(errors[0], "Redis refused part of a flush; that part is lost")
                    return False
                self._succeeded()
                return True
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error, "Redis is not taking statistics; shares are kept (bounded) and pushed "
                                "when it is back")
            return False
        except Exception as error:  # a bug: do not retry the same batch forever
            if self._in_doubt is not None:
                self.counters["shares_dropped"] += self._in_doubt[1].shares
                self._in_doubt = None
            logger.exception("live stats for %s: flush failed", self.pool)
            self._failed(error, "flush failed; its shares are dropped")
            return False

    async def _execute(self, ops: list[tuple], *, transaction: bool) -> list[Any]:
        async with self.redis.pipeline(transaction=transaction) as pipe:
            for op in ops:
                kind, key = op[0], op[1]
                if kind == "buckets" or kind == "buckets_max":
                    keys = list(op[1])
                    pipe.eval(_BUCKETS_ADD if kind == "buckets" else _BUCKETS_MAX, len(keys), *keys,
                              *(orjson.dumps(value) for value in op[1].values()))
                elif kind == "seen":
                    _, sets, cutoff, ttl = op
                    keys = list(sets)
                    pipe.eval(_SEEN, len(keys), *keys, *(orjson.dumps(value) for value in sets.values()),
                              "" if cutoff is None else repr(cutoff), ttl)
                elif kind == "round_add":
                    pipe.eval(_ROUND_ADD, 1, key, op[2], op[3], op[4])
                elif kind == "round_reset":
                    pipe.eval(_ROUND_RESET, 2, key, op[2], op[3], op[4], op[5])
                elif kind == "round_rebuild":
                    pipe.eval(_ROUND_REBUILD, 1, key, op[2], op[3], op[4])
                elif kind == "marker":
                    pipe.set(key, 1, ex=op[2])
                else:  # pragma: no cover - a programming error
                    raise ValueError(f"unknown operation {kind!r}")
            return await pipe.execute(raise_on_error=False)

    async def _write_now(self, ops: list[tuple]) -> None:
        try:
            async with asyncio.timeout(self.push_timeout_s * 4):
                results = await self._execute(ops, transaction=True)
        except (RedisError, OSError, TimeoutError) as error:
            raise StatsUnavailable(f"Redis: {type(error).__name__}: {error}") from error
        errors = [result for result in results if isinstance(result, Exception)]
        if errors:
            raise StatsUnavailable(f"Redis refused part of the write: {errors[0]}")

    async def _read(self, queries: list[tuple]) -> list[Any]:
        try:
            async with asyncio.timeout(self.push_timeout_s):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for query in queries:
                        kind = query[0]
                        if kind == "hsum":
                            pipe.eval(_HSUM, len(query[1]), *query[1], query[2])
                        elif kind == "zcount_above":
                            pipe.zcount(query[1], f"({query[2]!r}", "+inf")
                        elif kind == "zscore":
                            pipe.zscore(query[1], query[2])
                        elif kind == "hgetall":
                            pipe.hgetall(query[1])
                        elif kind == "exists":
                            pipe.exists(query[1])
                        else:  # pragma: no cover
                            raise ValueError(f"unknown query {kind!r}")
                    results = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            raise StatsUnavailable(f"Redis: {type(error).__name__}: {error}") from error
        return [_decoded(result) for result in results]


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_decoded(key): _decoded(item) for key, item in value.items()}
    return value
